"""The fleet supervisor: `python -m worker.supervisor` on every host that runs workers.

It reads the desired worker pools from the database and makes the `celery worker` processes of
this host match them (DESIGN rule 8):

* Each copy of a pool is a *slot* (a `worker_slots` row, unique per pool and copy number). A
  supervisor runs a worker only for slots it has claimed with a conditional UPDATE (or the INSERT
  that the unique constraint lets only one supervisor win). The claim is a lease that every tick
  renews; when a supervisor dies its leases expire and another host takes the slots over. Two
  supervisors therefore never run the same worker, and `name@host` node names stay unique.
* Workers are started with the pool's queues, concurrency and per-child limits; a crashed worker
  is restarted with exponential backoff; an unwanted one is stopped warm (SIGTERM: Celery finishes
  the running task, and with acks_late + reject_on_worker_lost an unfinished message goes back to
  the queue). A stop that overruns its deadline escalates to SIGKILL; the task's lease then
  expires and the reconciler requeues it.
* Live changes go through Celery's remote control, addressed to the one node: concurrency with
  pool_grow/pool_shrink, pause/resume with cancel_consumer/add_consumer. Changed queues or limits
  and a "restart" request restart the worker warm.
* Each tick reports pid, host, queues, concurrency, start time, heartbeat, the tasks the worker
  holds (from the task leases) and the memory RSS of the worker and its pool children (/proc).

Workers get SIGTERM when the supervisor dies (Linux PR_SET_PDEATHSIG), so a killed supervisor
does not leave workers that another host would duplicate.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from webapp.catalog import TaskStatus
from webapp.extensions import db
from webapp.models import FleetSupervisor, RenderTask, WorkerPool, WorkerSlot
from webapp.models.workers import ANY_HOST
from webapp.timeutil import utcnow

log = logging.getLogger("aura.supervisor")
ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
PAUSED_QUEUE_PREFIX = "aura.paused."
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a worker that ran this long resets its crash backoff

try:
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: no parent-death signal
    _LIBC = None


def _child_setup() -> None:
    """In the forked child: SIGTERM the worker when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError):
                continue
    return found


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a worker and its pool children, from /proc/<pid>/status (VmRSS)."""
    total, seen = 0, False
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        seen = True
                        break
        except (OSError, ValueError):
            continue
    return total if seen else None


@dataclass
class Settings:
    """How this supervisor behaves; every value has an environment default."""

    host: str
    interval: float
    lease_seconds: float
    stop_timeout: float
    max_workers: int | None
    log_dir: Path
    celery_args: list[str] = field(default_factory=list)


@dataclass
class Managed:
    """A slot this supervisor holds and the worker process it runs for it."""

    slot_id: int
    pool_id: int
    slot: int
    name: str
    node: str
    proc: subprocess.Popen | None = None
    spec: tuple[Any, ...] | None = None
    generation: int = 0
    concurrency: int = 0
    paused: bool = False
    ready: bool = False
    started: float = 0.0
    started_at: datetime | None = None
    stop_deadline: float | None = None
    after_stop: str = ""  # "release", "restart" or "drop" (the lease was lost)
    failures: int = 0
    backoff_until: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    message: str = ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None


def pool_spec(pool: WorkerPool) -> tuple[Any, ...]:
    """What needs a restart to change: queues and per-child limits."""
    return (tuple(pool.queues), pool.max_memory_mb, pool.max_tasks_per_child)


class Supervisor:
    """Makes this host's worker processes match the desired pools it may run."""

    def __init__(self, app: Flask, settings: Settings, ident: str | None = None):
        self.app = app
        self.settings = settings
        self.ident = ident or f"{settings.host}:{os.getpid()}:{os.urandom(3).hex()}"
        self.hostname = socket.gethostname()
        self.managed: dict[int, Managed] = {}
        self.pending_since: dict[tuple[int, int], float] = {}
        self.shutting_down = False
        self.celery = app.extensions["celery"]

    # --- database -----------------------------------------------------------------------------

    def lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.lease_seconds)

    def heartbeat(self) -> dict[int, WorkerSlot]:
        """Renew this supervisor's row and all its slot leases; return the slots still held."""
        now = utcnow()
        until = self.lease_until()
        session = db.session
        renewed = session.execute(update(FleetSupervisor).where(FleetSupervisor.id == self.ident)
                                  .values(heartbeat_at=now, lease_expires_at=until,
                                          max_workers=self.settings.max_workers)).rowcount
        if not renewed:
            session.add(FleetSupervisor(id=self.ident, host=self.settings.host, pid=os.getpid(), started_at=now,
                                        heartbeat_at=now, lease_expires_at=until,
                                        max_workers=self.settings.max_workers))
        session.execute(update(WorkerSlot).where(WorkerSlot.owner == self.ident)
                        .values(lease_expires_at=until, heartbeat_at=now))
        session.commit()
        return {s.id: s for s in session.scalars(select(WorkerSlot).where(WorkerSlot.owner == self.ident))}

    def visible_pools(self) -> dict[int, WorkerPool]:
        query = select(WorkerPool).where(WorkerPool.host.in_([ANY_HOST, self.settings.host]))
        return {p.id: p for p in db.session.scalars(query)}

    def claim(self, pool: WorkerPool, index: int) -> bool:
        """Take slot `index` of `pool`: insert it, or take it over when free or its lease expired."""
        now = utcnow()
        values = dict(owner=self.ident, lease_expires_at=self.lease_until(), host=self.settings.host,
                      node=f"{pool.slot_name(index)}@{self.hostname}", state="starting", pid=None,
                      heartbeat_at=now, message="Claimed", current_tasks=[], rss_bytes=None,
                      paused=False)
        engine = db.engine
        try:
            with engine.begin() as conn:
                conn.execute(insert(WorkerSlot).values(pool_id=pool.id, slot=index, name=pool.slot_name(index),
                                                       generation=pool.generation, restarts=0, **values))
            return True
        except IntegrityError:
            pass  # the slot exists: take it only if nobody holds a live lease on it
        with engine.begin() as conn:
            taken = conn.execute(
                update(WorkerSlot)
                .where(WorkerSlot.pool_id == pool.id, WorkerSlot.slot == index,
                       or_(WorkerSlot.owner.is_(None), WorkerSlot.lease_expires_at < now))
                .values(**values)).rowcount
        return bool(taken)

    def release(self, slot_id: int, last_exit: str | None, message: str) -> None:
        """Give a slot back after its worker stopped (only while this supervisor holds it)."""
        now = utcnow()
        db.session.execute(update(WorkerSlot).where(WorkerSlot.id == slot_id, WorkerSlot.owner == self.ident)
                           .values(owner=None, lease_expires_at=None, state="stopped", pid=None,
                                   stopped_at=now, heartbeat_at=now, current_tasks=[], rss_bytes=None,
                                   last_exit=last_exit, message=message[:255], paused=False))
        db.session.commit()

    def live_supervisors(self) -> int:
        return db.session.scalar(select(func.count()).select_from(FleetSupervisor)
                                 .where(FleetSupervisor.lease_expires_at >= utcnow())) or 1

    # --- processes ----------------------------------------------------------------------------

    def command(self, m: Managed, pool: WorkerPool) -> list[str]:
        queues = [PAUSED_QUEUE_PREFIX + pool.name] if pool.paused else list(pool.queues)
        return [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
                "-n", f"{m.name}@%h", "-Q", ",".join(queues),
                "--concurrency", str(pool.concurrency),
                "--max-memory-per-child", str(pool.max_memory_mb * 1024),
                "--max-tasks-per-child", str(pool.max_tasks_per_child),
                "--loglevel", "INFO", *self.settings.celery_args]

    def spawn(self, m: Managed, pool: WorkerPool) -> None:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.settings.log_dir / f"worker-{m.name}.log", "ab") as out:
            m.proc = subprocess.Popen(self.command(m, pool), cwd=ROOT, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True, preexec_fn=_child_setup)
        m.spec = pool_spec(pool)
        m.generation = pool.generation
        m.concurrency = pool.concurrency
        m.paused = pool.paused
        m.ready = False
        m.started = time.monotonic()
        m.started_at = utcnow()
        m.message = "Starting"
        log.info("started %s (pid %s) on %s", m.node, m.proc.pid, ",".join(pool.queues))

    def begin_stop(self, m: Managed, after: str, why: str) -> None:
        """Warm stop: SIGTERM to the worker's main process; Celery finishes the running task."""
        m.after_stop = after
        if not m.alive:
            m.stop_deadline = time.monotonic()
            return
        m.stop_deadline = time.monotonic() + self.settings.stop_timeout
        m.message = f"Stopping: {why}"
        log.info("stopping %s (pid %s): %s", m.node, m.proc.pid, why)
        try:
            m.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill_group(self, m: Managed) -> None:
        """SIGKILL the worker and any pool children it left behind."""
        if m.proc is None:
            return
        try:
            os.killpg(m.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self, m: Managed) -> None:
        """Handle a worker process that exited: a finished stop, or a crash to restart."""
        if m.proc is None or m.proc.poll() is None:
            return
        code = m.proc.returncode
        m.last_exit = describe_exit(code)
        self.kill_group(m)  # pool children orphaned by a crash must not keep running
        m.proc.wait()
        m.proc = None
        if m.stopping:
            after, m.after_stop, m.stop_deadline = m.after_stop, "", None
            log.info("%s stopped (%s)", m.node, m.last_exit)
            if after == "release":
                self.release(m.slot_id, m.last_exit, "Stopped")
                self.managed.pop(m.slot_id, None)
            elif after == "drop":
                self.managed.pop(m.slot_id, None)
            return  # "restart": converge() starts it again
        ran = time.monotonic() - m.started
        m.failures = 0 if ran > STABLE_SECONDS else m.failures + 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** m.failures)
        m.backoff_until = time.monotonic() + delay
        m.restarts += 1
        m.message = f"Crashed ({m.last_exit}) after {ran:.0f}s; restarting in {delay:.0f}s"
        log.warning("%s crashed: %s", m.node, m.message)

    def escalate(self, m: Managed) -> None:
        if m.stopping and m.alive and time.monotonic() > m.stop_deadline:
            log.warning("%s did not stop within %.0fs; killing it", m.node, self.settings.stop_timeout)
            m.message = f"Killed after {self.settings.stop_timeout:.0f}s stop deadline"
            self.kill_group(m)

    # --- remote control -----------------------------------------------------------------------

    def _replied(self, replies: Iterable[dict[str, Any]] | None, node: str) -> bool:
        return any(node in reply for reply in replies or [])

    def check_ready(self, nodes: list[Managed]) -> None:
        """Ping the workers that have not answered yet, in one broadcast."""
        if not nodes:
            return
        try:
            replies = self.celery.control.ping(destination=[m.node for m in nodes], timeout=0.5)
        except Exception as exc:
            log.debug("ping failed: %s", exc)
            return
        for m in nodes:
            if self._replied(replies, m.node):
                m.ready = True
                m.message = "Running"

    def adjust_live(self, m: Managed, pool: WorkerPool) -> None:
        """Concurrency and pause changes of a running worker, through remote control."""
        control = self.celery.control
        try:
            if pool.concurrency != m.concurrency:
                delta = pool.concurrency - m.concurrency
                call = control.pool_grow if delta > 0 else control.pool_shrink
                if self._replied(call(n=abs(delta), destination=[m.node], reply=True, timeout=1.0), m.node):
                    log.info("%s concurrency %s -> %s", m.node, m.concurrency, pool.concurrency)
                    m.concurrency = pool.concurrency
            if pool.paused != m.paused:
                ok = True
                for queue in pool.queues:
                    call = control.cancel_consumer if pool.paused else control.add_consumer
                    ok &= self._replied(call(queue, destination=[m.node], reply=True, timeout=1.0), m.node)
                if ok:
                    m.paused = pool.paused
                    m.message = "Paused" if m.paused else "Running"
                    log.info("%s %s", m.node, "paused" if m.paused else "resumed")
        except Exception as exc:  # the broker is away: try again next tick
            log.warning("remote control of %s failed: %s", m.node, exc)

    # --- the loop -----------------------------------------------------------------------------

    def converge(self, m: Managed, pool: WorkerPool) -> None:
        """One wanted slot: start, restart or adjust its worker."""
        if m.stopping:
            return
        if not m.alive:
            if time.monotonic() >= m.backoff_until:
                self.spawn(m, pool)
            return
        if pool_spec(pool) != m.spec or pool.generation != m.generation:
            why = "restart requested" if pool.generation != m.generation else "queues or limits changed"
            self.begin_stop(m, "restart", why)
            return
        if m.ready:
            self.adjust_live(m, pool)

    def claim_new(self, pools: dict[int, WorkerPool], held: dict[int, WorkerSlot]) -> None:
        """Claim wanted slots nobody runs, within max_workers and a fair share of the fleet."""
        held_keys = {(s.pool_id, s.slot) for s in held.values()}
        wanted = [(p, i) for p in sorted(pools.values(), key=lambda p: p.name)
                  for i in range(1, p.desired_count + 1) if (p.id, i) not in held_keys]
        now = time.monotonic()
        self.pending_since = {k: v for k, v in self.pending_since.items()
                              if k in {(p.id, i) for p, i in wanted}}
        if not wanted:
            return
        mine = sum(1 for s in held.values() if s.pool_id in pools and s.slot <= pools[s.pool_id].desired_count)
        total = sum(p.desired_count for p in pools.values())
        share = math.ceil(total / self.live_supervisors())
        for pool, index in wanted:
            if self.settings.max_workers is not None and mine >= self.settings.max_workers:
                return
            first_seen = self.pending_since.setdefault((pool.id, index), now)
            # Above its fair share a supervisor leaves new slots to the others for a few ticks.
            if mine >= share and pool.host == ANY_HOST and now - first_seen < 3 * self.settings.interval:
                continue
            if self.claim(pool, index):
                mine += 1
                log.info("claimed %s", pool.slot_name(index))

    def current_tasks(self) -> dict[str, list[str]]:
        rows = db.session.execute(select(RenderTask.id, RenderTask.lease_owner).where(
            RenderTask.status == TaskStatus.PROCESSING.value, RenderTask.lease_owner.is_not(None)))
        by_node: dict[str, list[str]] = {}
        for task_id, owner in rows:
            by_node.setdefault(owner.split(":", 1)[0], []).append(task_id)
        return by_node

    def report(self) -> None:
        """Write what runs into each held slot's row."""
        tasks = self.current_tasks()
        now = utcnow()
        for m in self.managed.values():
            if m.after_stop == "drop":
                continue
            if m.stopping:
                state = "stopping"
            elif m.alive:
                state = "running" if m.ready else "starting"
            else:
                state = "backoff"
            pid = m.proc.pid if m.alive else None
            db.session.execute(
                update(WorkerSlot).where(WorkerSlot.id == m.slot_id, WorkerSlot.owner == self.ident)
                .values(state=state, pid=pid, node=m.node, host=self.settings.host,
                        queues=list(m.spec[0]) if m.spec else None,
                        concurrency=m.concurrency or None, generation=m.generation, paused=m.paused,
                        started_at=m.started_at, heartbeat_at=now, restarts=m.restarts,
                        last_exit=m.last_exit, current_tasks=tasks.get(m.node, []),
                        rss_bytes=rss_bytes(pid) if pid else None, message=m.message[:255]))
        db.session.commit()

    def tick(self) -> None:
        """One pass: heartbeat, reap, stop the unwanted, start the missing, report."""
        held = self.heartbeat()
        pools = self.visible_pools()
        for m in list(self.managed.values()):
            self.reap(m)
        for m in list(self.managed.values()):
            if m.slot_id not in held and not m.stopping:
                # Our lease lapsed and the slot may be someone else's now: stop, write nothing.
                self.begin_stop(m, "drop", "lease lost")
        for slot in held.values():
            pool = pools.get(slot.pool_id)
            m = self.managed.get(slot.id)
            wanted = pool is not None and slot.slot <= pool.desired_count and not self.shutting_down
            if not wanted:
                if m is None or not m.alive:
                    self.release(slot.id, m.last_exit if m else slot.last_exit, "Stopped")
                    self.managed.pop(slot.id, None)
                elif m.stopping:
                    m.after_stop = "release"  # a restart under way becomes a stop
                else:
                    self.begin_stop(m, "release", "supervisor shutting down" if self.shutting_down else "no longer wanted")
                continue
            if m is None:
                m = Managed(slot_id=slot.id, pool_id=slot.pool_id, slot=slot.slot, name=slot.name,
                            node=f"{slot.name}@{self.hostname}", restarts=slot.restarts or 0)
                self.managed[slot.id] = m
            self.converge(m, pool)
        if not self.shutting_down:
            self.claim_new(pools, held)
        self.check_ready([m for m in self.managed.values() if m.alive and not m.ready and not m.stopping])
        for m in self.managed.values():
            self.escalate(m)
        self.report()

    def run(self) -> int:
        log.info("supervisor %s on host %s", self.ident, self.settings.host)

        def request_stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping workers warm", signum)
            self.shutting_down = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        while True:
            started = time.monotonic()
            with self.app.app_context():
                try:
                    self.tick()
                except SQLAlchemyError as exc:
                    log.warning("database unavailable this tick: %s", exc)
                    db.session.rollback()
                except Exception:
                    log.exception("supervisor tick failed")
                    db.session.rollback()
                finally:
                    db.session.remove()
            if self.shutting_down and not any(m.alive for m in self.managed.values()):
                break
            time.sleep(max(0.05, self.settings.interval - (time.monotonic() - started)))
        with self.app.app_context():
            try:
                for m in self.managed.values():
                    self.release(m.slot_id, m.last_exit, "Supervisor stopped")
                db.session.execute(delete(FleetSupervisor).where(FleetSupervisor.id == self.ident))
                db.session.commit()
            except SQLAlchemyError as exc:
                log.warning("could not release slots on exit: %s", exc)
        log.info("supervisor %s stopped", self.ident)
        return 0


class KubernetesSync:
    """Kubernetes mode: desired pool counts become the replicas of one Deployment per pool.

    Each pool `NAME` maps to Deployment `<prefix>NAME` whose pods run
    `celery -A worker.celery_app:app worker -n NAME@$(HOSTNAME) -Q <queues>`; Kubernetes
    restarts crashed pods and its termination grace period gives the warm stop. Only the replica
    count follows the database: queues, concurrency and limits live in the Deployment spec.
    """

    def __init__(self, app: Flask, namespace: str | None, prefix: str, dry_run: bool):
        self.app = app
        self.namespace = namespace
        self.prefix = prefix
        self.dry_run = dry_run
        self.applied: dict[str, int] = {}

    def commands(self) -> list[list[str]]:
        """`kubectl scale` for every pool whose replica count changed since the last pass."""
        todo = []
        for pool in db.session.scalars(select(WorkerPool).order_by(WorkerPool.name)):
            if self.applied.get(pool.name) == pool.desired_count:
                continue
            cmd = ["kubectl", "scale", f"deployment/{self.prefix}{pool.name}", f"--replicas={pool.desired_count}"]
            if self.namespace:
                cmd.insert(1, f"--namespace={self.namespace}")
            todo.append(cmd)
            self.applied[pool.name] = pool.desired_count
        return todo

    def sync(self) -> None:
        with self.app.app_context():
            try:
                todo = self.commands()
            finally:
                db.session.remove()
        for cmd in todo:
            print(" ".join(cmd), flush=True)
            if not self.dry_run:
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    log.warning("%s failed: %s", " ".join(cmd), done.stderr.strip())
                    self.applied.pop(cmd[-2].split("/", 1)[1][len(self.prefix):], None)

    def run(self, interval: float, once: bool) -> int:
        while True:
            self.sync()
            if once:
                return 0
            time.sleep(interval)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from webapp.config import load_config

    config = load_config()
    parser = argparse.ArgumentParser(prog="python -m worker.supervisor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ensure-defaults", action="store_true",
                        help="create one pool per worker group when no pools exist yet")
    parser.add_argument("--host", default=config["SUPERVISOR_HOST"] or socket.gethostname(),
                        help="host label matched against a pool's host (default: this machine's name)")
    parser.add_argument("--interval", type=float, default=config["SUPERVISOR_INTERVAL"],
                        help="seconds between passes (SUPERVISOR_INTERVAL)")
    parser.add_argument("--lease", type=float, default=config["SUPERVISOR_LEASE_SECONDS"],
                        help="seconds a slot claim lives without a heartbeat (SUPERVISOR_LEASE_SECONDS)")
    parser.add_argument("--stop-timeout", type=float, default=config["WORKER_STOP_TIMEOUT"],
                        help="seconds a warm stop may take before SIGKILL (WORKER_STOP_TIMEOUT; "
                             "default TASK_TIME_LIMIT + 30)")
    parser.add_argument("--max-workers", type=int, default=config["SUPERVISOR_MAX_WORKERS"],
                        help="most worker processes this host runs (SUPERVISOR_MAX_WORKERS, default 8; 0: no cap)")
    parser.add_argument("--fast-start", action=argparse.BooleanOptionalAction, default=True,
                        help="start workers --without-mingle --without-gossip (default on)")
    k8s = parser.add_argument_group("Kubernetes mode (scale Deployments instead of running workers)")
    k8s.add_argument("--k8s", action="store_true", help="patch Deployment replicas with kubectl scale")
    k8s.add_argument("--k8s-namespace", default=config["K8S_NAMESPACE"])
    k8s.add_argument("--k8s-prefix", default=config["K8S_PREFIX"],
                     help="Deployment name = prefix + pool name (default aura-worker-)")
    k8s.add_argument("--once", action="store_true", help="one pass, then exit (with --k8s)")
    k8s.add_argument("--dry-run", action="store_true", help="print the kubectl commands only")
    args = parser.parse_args(argv)
    if args.max_workers is not None and args.max_workers <= 0:
        args.max_workers = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s")
    from webapp import create_app
    from webapp.services import workers as fleet

    app = create_app()
    stop_timeout = args.stop_timeout
    if stop_timeout is None:
        stop_timeout = app.config["TASK_TIME_LIMIT"] + 30
    settings = Settings(host=args.host, interval=args.interval, lease_seconds=max(args.lease, 2 * args.interval),
                        stop_timeout=stop_timeout, max_workers=args.max_workers,
                        log_dir=Path(app.config["INSTANCE_DIR"]) / "logs",
                        celery_args=["--without-mingle", "--without-gossip"] if args.fast_start else [])
    if args.ensure_defaults:
        with app.app_context():
            created = fleet.ensure_default_pools()
            if created:
                log.info("created default pools: %s", ", ".join(p.name for p in created))
    if args.k8s:
        return KubernetesSync(app, args.k8s_namespace, args.k8s_prefix, args.dry_run).run(args.interval, args.once)
    return Supervisor(app, settings).run()


if __name__ == "__main__":
    sys.exit(main())
