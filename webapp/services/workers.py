"""The worker fleet's desired state: pools, control actions, queue targets, status and audit.

Views (JSON and admin page) call `control()` and `set_queue_target()`; they only write desired
state. Supervisors (worker/supervisor.py) make the running processes match and report back into
`worker_slots`, which `fleet_status()` reads. Nothing here broadcasts to workers per request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import delete, or_, select

from webapp.catalog import FLEET_OUTCOME_STATUS, QUEUES, WORKER_GROUPS
from webapp.extensions import db
from webapp.models import FleetSupervisor, WorkerAudit, WorkerPool, WorkerSlot
from webapp.models.workers import ANY_HOST
from webapp.services import broker, dispatch
from webapp.timeutil import iso, utcnow

log = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "restart", "pause", "resume", "resize")
CONCURRENCY_RANGE = (1, 32)  # the widest WORKER_MAX_CONCURRENCY may allow


def concurrency_range() -> tuple[int, int]:
    """Pool processes one worker may run: 1 to WORKER_MAX_CONCURRENCY (default 8)."""
    from flask import current_app

    return 1, max(1, min(CONCURRENCY_RANGE[1], current_app.config["WORKER_MAX_CONCURRENCY"]))
TARGET_RANGE = (0, 64)
MEMORY_RANGE = (64, 65536)
TASKS_PER_CHILD_RANGE = (1, 100000)
WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PING_CACHE_KEY = "aura:cache:fleet_ping"
PING_CACHE_SECONDS = 5
#: Slot states a supervisor reports while it holds a slot.
LIVE_SLOT_STATES = ("starting", "running", "stopping", "backoff")


class FleetError(Exception):
    """A fleet request that cannot be done: its outcome code (a key of FLEET_OUTCOME_STATUS), a
    message and field errors. It carries no HTTP status: the views map the code."""

    def __init__(self, error: str, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.error = error
        self.message = message
        self.fields = fields or {}


# --- validation -------------------------------------------------------------------------------

def parse_int(value: Any, name: str, bounds: tuple[int, int], default: int | None = None) -> int:
    """An integer within `bounds`; a JSON bool, a string or a float with a fraction is not one."""
    if value is None or value == "":
        if default is not None:
            return default
        raise FleetError("invalid_request", f"{name} is required.", {name: "Required."})
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        number = None
    low, high = bounds
    if number is None or not low <= number <= high:
        raise FleetError("invalid_request", f"{name} must be an integer from {low} to {high}.",
                         {name: f"An integer from {low} to {high}."})
    return number


def parse_queues(value: Any, name: str = "queue") -> list[str]:
    """A queue name, a comma-separated list or a JSON list, every one of them known."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        items = [part.strip() for part in value if part.strip()]
    else:
        items = []
    if not items:
        raise FleetError("invalid_request", f"{name} is required: one of {', '.join(QUEUES)}.",
                         {name: "Required."})
    unknown = [q for q in items if q not in QUEUES]
    if unknown:
        raise FleetError("unknown_queue", f"Unknown queue {unknown[0]!r}; known: {', '.join(QUEUES)}.",
                         {name: f"Unknown queue {unknown[0]!r}."})
    return list(dict.fromkeys(items))


def parse_worker_name(value: Any) -> str:
    if not isinstance(value, str) or not WORKER_NAME.fullmatch(value.strip()):
        raise FleetError("invalid_request",
                         "worker_id must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit.",
                         {"worker_id": "Invalid worker name."})
    return value.strip()


def default_concurrency(queues: Iterable[str]) -> int:
    """The suggested concurrency of these queues (SPEC table), capped by CELERY_WORKER_CONCURRENCY."""
    suggested = max(QUEUES[q].concurrency[0] for q in queues)
    return max(1, min(current_app.config["CELERY_WORKER_CONCURRENCY"], suggested))


# --- audit ------------------------------------------------------------------------------------

def audit(actor: str, action: str, target: str | None, params: dict[str, Any] | None,
          outcome: str, message: str) -> None:
    """Append one entry to the fleet audit log (its own commit, so rejections are kept too);
    `outcome` is a key of FLEET_OUTCOME_STATUS."""
    status_code = FLEET_OUTCOME_STATUS[outcome]
    result = "ok" if status_code < 400 else "rejected"
    db.session.add(WorkerAudit(actor=actor[:120], action=action[:32], target=(target or None) and target[:80],
                               params=params, status_code=status_code, result=result,
                               message=message[:2000], at=utcnow()))
    db.session.commit()


def recent_audit(limit: int = 50) -> list[WorkerAudit]:
    return list(db.session.scalars(select(WorkerAudit).order_by(WorkerAudit.id.desc()).limit(limit)))


# --- desired state ----------------------------------------------------------------------------

def pool_by_name(name: str) -> WorkerPool | None:
    return db.session.scalar(select(WorkerPool).where(WorkerPool.name == name))


def all_pools() -> list[WorkerPool]:
    return list(db.session.scalars(select(WorkerPool).order_by(WorkerPool.name)))


def running_slot_names() -> set[str]:
    """Every worker name a pool currently wants running (pool name, name-2, ...)."""
    return {pool.slot_name(i) for pool in all_pools() for i in range(1, pool.desired_count + 1)}


def _touch(pool: WorkerPool) -> None:
    pool.updated_at = utcnow()


def start_worker(name: str, body: dict[str, Any], actor: str) -> tuple[WorkerPool, str]:
    """Create or re-enable a pool; 409 when a worker of that name runs already."""
    queues = parse_queues(body.get("queues", body.get("queue")))
    concurrency = parse_int(body.get("concurrency"), "concurrency", concurrency_range(),
                            default=default_concurrency(queues))
    memory = parse_int(body.get("max_memory_mb"), "max_memory_mb", MEMORY_RANGE,
                       default=current_app.config["CELERY_WORKER_MAX_MEMORY"])
    per_child = parse_int(body.get("max_tasks_per_child"), "max_tasks_per_child", TASKS_PER_CHILD_RANGE,
                          default=100)
    count = parse_int(body.get("count"), "count", (1, TARGET_RANGE[1]), default=1)
    host = body.get("host") or ANY_HOST
    if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", host):
        raise FleetError("invalid_request", "host must be a host name or 'any'.", {"host": "Invalid host."})
    pool = pool_by_name(name)
    if (pool is not None and pool.running) or (pool is None and name in running_slot_names()):
        raise FleetError("already_running", f"Worker {name} is already running; stop it first.",
                         {"worker_id": "Already running."})
    if pool is None:
        pool = WorkerPool(name=name, created_by=actor, created_at=utcnow(), generation=0)
        db.session.add(pool)
    pool.queues = queues
    pool.concurrency = concurrency
    pool.max_memory_mb = memory
    pool.max_tasks_per_child = per_child
    pool.host = host
    pool.desired_count = count
    pool.paused = False
    _touch(pool)
    db.session.commit()
    where = "any host" if host == ANY_HOST else f"host {host}"
    return pool, (f"Worker {name} will start on {where}: queues {', '.join(queues)}, "
                  f"concurrency {concurrency}" + (f", {count} processes" if count > 1 else "") + ".")


def _existing_pool(name: str) -> WorkerPool:
    pool = pool_by_name(name)
    if pool is None:
        owner = _pool_of_slot_name(name)
        hint = f" It is a copy of pool {owner.name}: act on the pool or scale it." if owner else ""
        raise FleetError("not_found", f"No worker named {name}.{hint}", {"worker_id": "Unknown worker."})
    return pool


def _pool_of_slot_name(name: str) -> WorkerPool | None:
    base, sep, number = name.rpartition("-")
    if not sep or not number.isdigit():
        return None
    return pool_by_name(base)


def _running_pool(name: str, action: str) -> WorkerPool:
    pool = _existing_pool(name)
    if not pool.running:
        raise FleetError("not_running", f"Worker {name} is stopped; cannot {action} it.",
                         {"worker_id": "Not running."})
    return pool


def stop_worker(name: str) -> tuple[WorkerPool, str]:
    """Warm stop: the supervisor sends SIGTERM; running tasks finish or go back to the queue."""
    pool = _running_pool(name, "stop")
    pool.desired_count = 0
    _touch(pool)
    db.session.commit()
    return pool, (f"Worker {name} is stopping: its running tasks finish (or are handed back and "
                  f"complete elsewhere); then it exits.")


def restart_worker(name: str) -> tuple[WorkerPool, str]:
    pool = _running_pool(name, "restart")
    pool.generation += 1
    _touch(pool)
    db.session.commit()
    return pool, f"Worker {name} restarts warm: running tasks finish first."


def pause_worker(name: str, paused: bool) -> tuple[WorkerPool, str]:
    pool = _running_pool(name, "pause" if paused else "resume")
    verb = "paused" if paused else "resumed"
    if pool.paused == paused:
        return pool, f"Worker {name} is already {verb}."
    pool.paused = paused
    _touch(pool)
    db.session.commit()
    if paused:
        return pool, f"Worker {name} stops taking new tasks; running tasks finish."
    return pool, f"Worker {name} takes tasks again."


def resize_worker(name: str, concurrency_value: Any) -> tuple[WorkerPool, str]:
    """Change a running worker's concurrency live (pool_grow / pool_shrink, no restart)."""
    concurrency = parse_int(concurrency_value, "concurrency", concurrency_range())
    pool = _running_pool(name, "resize")
    if pool.concurrency == concurrency:
        return pool, f"Worker {name} already runs {concurrency} pool processes."
    before, pool.concurrency = pool.concurrency, concurrency
    _touch(pool)
    db.session.commit()
    return pool, f"Worker {name} goes from {before} to {concurrency} pool processes without a restart."


def control(body: Any, actor: str) -> tuple[int, dict[str, Any]]:
    """Validate and apply one control request; every attempt lands in the audit log."""
    if not isinstance(body, dict):
        raise FleetError("invalid_request", "The body must be a JSON object.")
    action = body.get("action")
    target = body.get("worker_id") if isinstance(body.get("worker_id"), str) else None
    params = {k: v for k, v in body.items() if k not in ("worker_id", "action")}
    try:
        if action not in ACTIONS:
            raise FleetError("unknown_action",
                             f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.",
                             {"action": f"One of {', '.join(ACTIONS)}."})
        name = parse_worker_name(body.get("worker_id"))
        if action == "start":
            pool, message = start_worker(name, body, actor)
        elif action == "stop":
            pool, message = stop_worker(name)
        elif action == "restart":
            pool, message = restart_worker(name)
        elif action == "resize":
            pool, message = resize_worker(name, body.get("concurrency"))
        else:
            pool, message = pause_worker(name, action == "pause")
    except FleetError as exc:
        db.session.rollback()
        audit(actor, str(action)[:32], target, params, exc.error, exc.message)
        raise
    audit(actor, action, name, params, "accepted", message)
    return {"worker_id": name, "action": action, "accepted": True, "message": message,
                 "desired": pool.to_dict()}


# --- queue targets ----------------------------------------------------------------------------

@dataclass
class ScalePlan:
    """What a new queue target changes: pools resized, worker names to start and stop."""

    queue: str
    target: int
    current: int
    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.start or self.stop:
            parts = []
            if self.start:
                parts.append(f"start {', '.join(self.start)}")
            if self.stop:
                parts.append(f"stop {', '.join(self.stop)}")
            message = f"{self.queue}: {self.current} -> {self.target} workers; will " + " and ".join(parts) + "."
        else:
            message = f"{self.queue} already has {self.target} workers; nothing to change."
        also = sorted({q for p in self.pools for q in p["queues"] if q != self.queue})
        if also and (self.start or self.stop):
            message += f" These workers also serve: {', '.join(also)}."
        return {"queue": self.queue, "target_workers": self.target, "current_workers": self.current,
                "start": self.start, "stop": self.stop, "pools": self.pools, "message": message}


def pools_serving(queue: str) -> list[WorkerPool]:
    return [p for p in all_pools() if queue in p.queues]


def workers_serving(queue: str) -> int:
    """Desired processes consuming `queue` (paused pools do not consume)."""
    return sum(p.desired_count for p in pools_serving(queue) if not p.paused)


def _scaling_order(queue: str, pools: list[WorkerPool]) -> list[WorkerPool]:
    """Pools in the order they grow: a pool of just this queue first, then the largest."""
    return sorted(pools, key=lambda p: (p.queues != [queue], -p.desired_count, p.name))


def set_queue_target(queue: str, target: int, actor: str) -> ScalePlan:
    """Make `target` processes serve `queue`: grow the first pool, shrink from the last."""
    pools = [p for p in pools_serving(queue) if not p.paused]
    current = sum(p.desired_count for p in pools)
    plan = ScalePlan(queue=queue, target=target, current=current)
    if target == current:
        return plan
    ordered = _scaling_order(queue, pools)
    before = {p.name: p.desired_count for p in ordered}
    if target > current:
        if ordered:
            pool = ordered[0]
        else:
            pool = pool_by_name(queue)
            if pool is not None and pool.paused:
                pool.paused = False
            if pool is None:
                pool = WorkerPool(name=queue, queues=[queue], concurrency=default_concurrency([queue]),
                                  max_memory_mb=current_app.config["CELERY_WORKER_MAX_MEMORY"],
                                  max_tasks_per_child=100, host=ANY_HOST, desired_count=0,
                                  created_by=actor, created_at=utcnow(), generation=0)
                db.session.add(pool)
            before[pool.name] = pool.desired_count
            ordered = [pool]
        plan.start = [pool.slot_name(i) for i in range(pool.desired_count + 1, pool.desired_count + 1 + target - current)]
        pool.desired_count += target - current
        _touch(pool)
    else:
        excess = current - target
        # Shrink the pool that grows first (the autoscaled one), then the others.
        for pool in ordered:
            if excess == 0:
                break
            cut = min(excess, pool.desired_count)
            plan.stop += [pool.slot_name(i) for i in range(pool.desired_count, pool.desired_count - cut, -1)]
            pool.desired_count -= cut
            excess -= cut
            _touch(pool)
    plan.pools = [{"worker_id": p.name, "queues": list(p.queues), "from": before.get(p.name, 0),
                   "to": p.desired_count} for p in ordered if before.get(p.name, 0) != p.desired_count]
    db.session.commit()
    return plan


def ensure_default_pools() -> list[WorkerPool]:
    """Create one pool per WORKER_GROUPS entry when there are no pools at all."""
    if db.session.scalar(select(WorkerPool.id).limit(1)) is not None:
        return []
    created = []
    for group, queues in WORKER_GROUPS.items():
        pool = WorkerPool(name=group, queues=list(queues), concurrency=default_concurrency(queues),
                          max_memory_mb=current_app.config["CELERY_WORKER_MAX_MEMORY"],
                          max_tasks_per_child=100, host=ANY_HOST, desired_count=1, paused=False,
                          generation=0, created_by="defaults", created_at=utcnow(), updated_at=utcnow())
        db.session.add(pool)
        created.append(pool)
    db.session.commit()
    return created


# --- what runs ----------------------------------------------------------------------------------

def purge_offline() -> int:
    """Forget slots that are stopped or offline and silent longer than WORKER_OFFLINE_PURGE_SECONDS."""
    now = utcnow()
    cutoff = now - timedelta(seconds=current_app.config["WORKER_OFFLINE_PURGE_SECONDS"])
    removed = 0
    for slot in db.session.scalars(select(WorkerSlot).where(
            or_(WorkerSlot.owner.is_(None), WorkerSlot.lease_expires_at < now))):
        last = slot.heartbeat_at or slot.stopped_at or slot.lease_expires_at
        if last is not None and last < cutoff:
            db.session.delete(slot)
            removed += 1
    removed += db.session.execute(
        delete(FleetSupervisor).where(FleetSupervisor.lease_expires_at < cutoff)).rowcount or 0
    db.session.commit()  # always: an open DELETE would hold SQLite's write lock
    return removed


def _slot_view(pool: WorkerPool, index: int, slot: WorkerSlot | None, now: Any,
               responding: dict[str, bool] | None) -> dict[str, Any]:
    wanted = index <= pool.desired_count
    desired = ("paused" if pool.paused else "running") if wanted else "stopped"
    if slot is None or slot.owner is None:
        actual = "pending" if wanted else (slot.state if slot else "stopped")
        online = False
    elif slot.lease_expires_at is not None and slot.lease_expires_at < now:
        actual, online = "offline", False
    else:
        actual = slot.state
        if actual == "running" and slot.paused:
            actual = "paused"
        online = True
    node = slot.node if slot else None
    return {
        "worker_id": pool.slot_name(index),
        "pool": pool.name,
        "slot": index,
        "desired_state": desired,
        "state": actual,
        "online": online,
        "offline": actual == "offline",
        "node": node,
        "host": slot.host if slot else None,
        "pid": slot.pid if slot and online else None,
        "queues": list(slot.queues) if slot and slot.queues else list(pool.queues),
        "desired_queues": list(pool.queues),
        "concurrency": slot.concurrency if slot and slot.concurrency else None,
        "desired_concurrency": pool.concurrency,
        "started_at": iso(slot.started_at) if slot else None,
        "last_heartbeat": iso(slot.heartbeat_at) if slot else None,
        "stopped_at": iso(slot.stopped_at) if slot else None,
        "current_tasks": list(slot.current_tasks or []) if slot and online else [],
        "memory_rss_mb": round(slot.rss_bytes / 1048576, 1) if slot and slot.rss_bytes and online else None,
        "restarts": slot.restarts if slot else 0,
        "last_exit": slot.last_exit if slot else None,
        "message": slot.message if slot else "",
        "supervisor": slot.owner if slot else None,
        "responding": (responding or {}).get(node) if node and responding is not None else None,
    }


def fleet_status(with_ping: bool = False) -> dict[str, Any]:
    """Every pool and every worker slot with its desired and actual state; purges old offline rows."""
    purge_offline()
    now = utcnow()
    pools = all_pools()
    slots: dict[tuple[int, int], WorkerSlot] = {
        (s.pool_id, s.slot): s for s in db.session.scalars(select(WorkerSlot))}
    responding = ping_nodes() if with_ping else None
    workers = []
    for pool in pools:
        highest = max([pool.desired_count] + [i for (pid, i) in slots if pid == pool.id])
        for index in range(1, highest + 1):
            workers.append(_slot_view(pool, index, slots.get((pool.id, index)), now, responding))
    supervisors = [{"id": s.id, "host": s.host, "pid": s.pid, "started_at": iso(s.started_at),
                    "last_heartbeat": iso(s.heartbeat_at), "online": s.lease_expires_at >= now,
                    "max_workers": s.max_workers}
                   for s in db.session.scalars(select(FleetSupervisor).order_by(FleetSupervisor.host))]
    by_queue = {q: sum(p.desired_count for p in pools if q in p.queues and not p.paused) for q in QUEUES}
    return {
        "pools": [p.to_dict() for p in pools],
        "workers": workers,
        "supervisors": supervisors,
        "desired_by_queue": by_queue,
        "online": sum(1 for w in workers if w["online"]),
        "offline": sum(1 for w in workers if w["offline"]),
        "generated_at": iso(now),
    }


def reported_workers_by_queue() -> dict[str, list[str]]:
    """Celery node names per queue, from what supervisors report (no broadcast)."""
    now = utcnow()
    result: dict[str, list[str]] = {q: [] for q in QUEUES}
    rows = db.session.scalars(select(WorkerSlot).where(
        WorkerSlot.owner.is_not(None), WorkerSlot.state == "running", WorkerSlot.lease_expires_at >= now,
        WorkerSlot.paused.is_(False)))
    for slot in rows:
        for queue in slot.queues or []:
            if slot.node:
                result.setdefault(queue, []).append(slot.node)
    return result


# --- cached remote control reads ------------------------------------------------------------------

def cached_broadcast(key: str, ttl: int, call: Any) -> Any:
    """Run a Celery broadcast at most once per `ttl` seconds across all web processes.

    The answer is kept in Redis; while one caller refreshes, the others get None instead of
    broadcasting too. A polled page therefore never broadcasts per request.
    """
    client = broker.redis_client()
    try:
        cached = client.get(key)
        if cached:
            return json.loads(cached)
        if not client.set(key + ":lock", "1", nx=True, ex=max(2, ttl)):
            return None
    except redis.RedisError:
        return None
    try:
        answer = call()
    except Exception as exc:  # the broker went away mid-broadcast
        log.warning("broadcast %s failed: %s", key, exc)
        return None
    try:
        client.set(key, json.dumps(answer), ex=ttl)
    except redis.RedisError:
        pass
    return answer


def ping_nodes() -> dict[str, bool] | None:
    """{node: True} for every worker answering ping within 0.5 s, cached a few seconds."""
    def call() -> dict[str, bool]:
        replies = dispatch.celery_app().control.ping(timeout=0.5) or []
        return {node: True for reply in replies for node in reply}

    return cached_broadcast(PING_CACHE_KEY, PING_CACHE_SECONDS, call)
