"""A worker host cut off the network mid-render, not killed (Linux network namespaces).

Two worker "hosts" as in test_multihost, but hostB runs inside a network namespace joined to the
root namespace by a veth pair. Redis, PostgreSQL and moto listen on 127.0.0.1 only, so hostB
reaches them through TCP relays this test runs on the root side of the pair. Mid-render the root
side of the pair goes down and the relays drop their connections (the servers see the peer gone,
as they would once their keepalives fire): hostB's processes keep running, its ffmpeg keeps
rendering, but it can reach nothing. Its stages are taken over by hostA; once the task completed,
hostB is reconnected and its late work must change nothing a user sees."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_multihost import _host_env, brief, submit

pytestmark = pytest.mark.integration

STAGE_LINE = re.compile(r"Task aura\.stage\.run\[(?P<id>[^\]]+)\] (?P<what>\w+)")


class Relay:
    """Forwards every TCP connection accepted on (host, free port) to 127.0.0.1:target."""

    def __init__(self, host: str, target: int):
        self.target = ("127.0.0.1", target)
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, self.listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"relay-{target}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._conns.update((downstream, upstream))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump blocked on it
            except OSError:
                pass
            sock.close()

    def drop(self) -> int:
        """Close every relayed connection, both sides; the listener stays."""
        with self._lock:
            conns = list(self._conns)
        self._close(*conns)
        return len(conns) // 2

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.drop()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


class Namespace:
    """A network namespace joined to the root one by a veth pair (root side `.1`, inside `.2`)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name, self.outer, self.inner = f"aura-part-{tag}", f"apr{tag}", f"apn{tag}"
        used = _ip("-4", "-o", "addr").stdout
        octet = next(n for n in (secrets.randbelow(250) + 1 for _ in range(50)) if f"10.231.{n}." not in used)
        self.root_ip, self.ns_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
        self.created = False

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self.created = True
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{self.root_ip}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.inner)
        _ip("-n", self.name, "link", "set", self.inner, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def link(self, up: bool) -> None:
        _ip("link", "set", self.outer, "up" if up else "down")

    def remove(self) -> None:
        _ip("link", "del", self.outer, check=False)  # takes its peer with it
        if self.created:
            _ip("netns", "del", self.name, check=False)


@pytest.fixture
def partitioned_hosts(app, stack, s3_server, db_backend, redis_server, tmp_path) -> Iterator[dict]:
    """hostA in the root namespace; hostB in a namespace of its own, reaching Redis, PostgreSQL
    and S3 only through relays on the veth pair."""
    if db_backend != "postgresql":
        pytest.skip("the multi-host run uses PostgreSQL")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    netns = Namespace()
    try:
        netns.create()
    except subprocess.CalledProcessError as exc:
        netns.remove()
        pytest.skip(f"cannot create a network namespace with a veth pair: {exc.stderr.strip()}")
    relays: list[Relay] = []
    try:
        settings = s3_server.config(f"partition-{secrets.token_hex(4)}")
        # A stage message a host took off the broker just as it was cut off is lost with it; the
        # reconciler publishes it again once it has waited this long in `queued`.
        settings["STAGE_PICKUP_SECONDS"] = "10"
        app.config.update(settings, STAGE_PICKUP_SECONDS=10)
        stack.env.update(settings)

        def relay(port: int) -> str:
            relays.append(Relay(netns.root_ip, port))
            return f"{netns.root_ip}:{relays[-1].port}"

        pg_host = re.search(r"@([\d.]+:\d+)/", stack.env["DATABASE_URL"]).group(1)
        redis_host = re.search(r"//([\d.]+:\d+)/", stack.env["REDIS_URL"]).group(1)
        cut_env = {
            **_host_env(tmp_path, "hostB"),
            "DATABASE_URL": stack.env["DATABASE_URL"].replace(pg_host, relay(int(pg_host.split(":")[1]))),
            "REDIS_URL": stack.env["REDIS_URL"].replace(redis_host, relay(redis_server.port)),
            "S3_ENDPOINT_URL": f"http://{relay(s3_server.port)}",
        }
        nodes = {"hostA": stack.start_worker(name="hostA", node="render@hostA", concurrency=2,
                                             env=_host_env(tmp_path, "hostA"))}
        from webapp.catalog import QUEUES

        nodes["hostB"] = "render@hostB"
        stack.spawn("hostB", ["ip", "netns", "exec", netns.name, *stack.celery(
            "worker", "-Q", ",".join(QUEUES), "-n", nodes["hostB"], "--concurrency", "2", "--loglevel", "INFO",
            "--without-mingle", "--without-gossip")], cut_env)
        stack.wait_for(lambda: "ready." in stack.log_text("hostB"), 60, "worker hostB (in its namespace) ready")
        stack.start_beat()
        yield {"nodes": nodes, "netns": netns, "relays": relays}
    finally:
        # Whatever happened: reconnect hostB so it can stop cleanly, stop it, remove the pair and
        # the namespace, close the relays.
        try:
            netns.link(True)
        except (subprocess.SubprocessError, OSError):
            pass
        stack.stop("hostB", signal.SIGTERM, timeout=10)
        netns.remove()
        for r in relays:
            r.close()


def _stage_calls(log: str) -> tuple[set[str], set[str]]:
    """(ids of stage messages the worker received, ids of those it has finished with)."""
    received, ended = set(), set()
    for match in STAGE_LINE.finditer(log):
        (received if match["what"] == "received" else ended).add(match["id"])
    return received, ended


def test_a_host_cut_off_mid_render_is_survived_and_its_late_work_changes_nothing(
        app, client, stack, make_token, partitioned_hosts, tmp_path):
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderStage
    from webapp.services.reconcile import sweep_orphans
    from webapp.services.tasks import events_of
    from webapp.storage import get_storage

    nodes, netns, relays = partitioned_hosts["nodes"], partitioned_hosts["netns"], partitioned_hosts["relays"]
    cut, survivor = nodes["hostB"], nodes["hostA"]
    token = make_token("operator")
    auth = {"Authorization": f"Bearer {token}"}
    storage = get_storage()

    # 720p: a 360p chunk renders in about 0.3 s, too short to be caught mid-render.
    task_id = submit(client, token, brief(40, "1280x720"))

    def chunk_on_cut_host():
        db.session.rollback()
        return db.session.scalars(select(RenderStage).where(
            RenderStage.task_id == task_id, RenderStage.kind == "render", RenderStage.status == "running",
            RenderStage.runner == cut, RenderStage.progress > 0.0, RenderStage.progress < 0.8)).first()

    stack.wait_for(chunk_on_cut_host, 180, "a chunk to be rendering on the host to cut off", interval=0.2)
    netns.link(False)
    for r in relays:
        r.drop()
    # What hostB held once it was cut off is what it lost (a chunk may have finished in the moment
    # between the look and the cut; that one is simply done).
    db.session.rollback()
    lost = db.session.scalars(select(RenderStage.stage_id).where(
        RenderStage.task_id == task_id, RenderStage.status == "running", RenderStage.runner == cut)).all()
    assert lost, "the cut host held no running stage"
    assert stack.procs["hostB"].poll() is None, "the cut host's worker must still be running"

    stack.wait_status(task_id, "completed", timeout=150)
    assert stack.procs["hostB"].poll() is None, "the cut host's worker must still be running"
    status = client.get(f"/tasks/status/{task_id}", headers=auth).get_json()
    assert status["attempt"] == 1  # the attempt went on: only the lost stages ran again
    for stage_id in lost:
        again = next(s for s in status["stages"] if s["stage"] == stage_id)
        assert again["runner"] == survivor and again["tries"] == 2 and again["status"] == "done", again
    kinds = [e.kind for e in events_of(task_id)]
    assert kinds.count("completed") == 1 and "stage_lease_expired" in kinds
    outputs = sorted(storage.list(f"{task_id}/"))
    assert outputs == sorted(f"{task_id}/{f['name']}" for f in status["result"]["files"])
    assert [k for k in outputs if k.endswith(".mp4")] == [f"{task_id}/video.mp4"]
    stack.wait_artifacts_removed(task_id)
    assert sweep_orphans()["orphan_objects"] == 0
    video = storage.read_bytes(f"{task_id}/video.mp4")
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-"],
                           input=video, capture_output=True, check=True).stdout
    assert abs(float(probe) - 40) < 0.2 and len(video) > 100_000
    before = {
        "sizes": {key: storage.size(key) for key in outputs},
        "video": hashlib.sha256(video).hexdigest(),
        "stages": sorted((s["stage"], s["status"], s["runner"], s["tries"]) for s in status["stages"]),
        "finished": stack.task(task_id).finished_at,
        "events": len(kinds),
    }

    # Reconnect hostB and let its late work end: every stage message it had must be over.
    netns.link(True)
    received, _ = _stage_calls(stack.log_text("hostB"))
    stack.wait_for(lambda: received <= _stage_calls(stack.log_text("hostB"))[1], 90,
                   "the reconnected host to finish with its stage messages", interval=0.5)
    time.sleep(3)  # a few reconciler passes
    status = client.get(f"/tasks/status/{task_id}", headers=auth).get_json()
    assert status["status"] == "completed" and status["attempt"] == 1
    assert stack.task(task_id).finished_at == before["finished"] is not None
    assert sorted((s["stage"], s["status"], s["runner"], s["tries"]) for s in status["stages"]) == before["stages"]
    kinds = [e.kind for e in events_of(task_id)]
    assert kinds.count("completed") == 1 and len(kinds) == before["events"], kinds
    outputs = sorted(storage.list(f"{task_id}/"))
    assert {key: storage.size(key) for key in outputs} == before["sizes"]
    assert hashlib.sha256(storage.read_bytes(f"{task_id}/video.mp4")).hexdigest() == before["video"]
    # A late runner's upload (the artifact of a stage it lost, keyed by its inputs) may land after
    # the task ended; the runner then removes it, as the task's end did.
    assert list(storage.list(f"work/{task_id}/")) == []
    assert sweep_orphans()["orphan_objects"] == 0
    assert sorted(storage.list(f"{task_id}/")) == outputs
    assert stack.procs["hostB"].poll() is None
