"""Fixtures of the worker fleet tests: real supervisors driving real `celery worker` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Stack, small_brief

#: Short periods so the fleet converges in a second or two.
FLEET_ENV = {
    "SUPERVISOR_INTERVAL": "0.5",
    "SUPERVISOR_LEASE_SECONDS": "3",
    "WORKER_STOP_TIMEOUT": "90",
    "AUTOSCALE_SECONDS": "2",
    "STAGE_PICKUP_SECONDS": "5",
}


class Fleet:
    """Supervisors as subprocesses, plus helpers that read the fleet through the JSON API."""

    def __init__(self, stack: Stack, client: Any, token: str):
        self.stack = stack
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.count = 0

    def start_supervisor(self, *args: str, env: dict[str, str] | None = None, name: str | None = None) -> str:
        self.count += 1
        name = name or f"supervisor{self.count}"
        self.stack.spawn(name, [sys.executable, "-m", "worker.supervisor", *args], {**FLEET_ENV, **(env or {})})
        return name

    def wait_supervisors(self, count: int, timeout: float = 30) -> None:
        """Until `count` supervisors have registered (they need a second or two to import)."""
        self.stack.wait_for(lambda: len(self.client.get("/tasks/workers", headers=self.headers)
                                        .get_json()["supervisors"]) == count, timeout, f"{count} supervisors")

    def proc(self, name: str) -> subprocess.Popen:
        return self.stack.procs[name]

    def control(self, **body: Any):
        return self.client.post("/tasks/workers/control", json=body, headers=self.headers)

    def autoscale(self, queue: str, target: int):
        return self.client.post(f"/tasks/workers/autoscale?target_workers={target}&queue={queue}",
                                headers=self.headers)

    def workers(self) -> dict[str, dict[str, Any]]:
        from webapp.extensions import db

        db.session.expire_all()
        body = self.client.get("/tasks/workers", headers=self.headers).get_json()
        return {w["worker_id"]: w for w in body["workers"]}

    def wait_running(self, names: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        def ready() -> dict[str, dict[str, Any]] | None:
            workers = self.workers()
            if all(workers.get(n, {}).get("state") == "running" for n in names):
                return workers
            return None

        try:
            return self.stack.wait_for(ready, timeout, f"workers {names} running", interval=0.3)
        except AssertionError:
            raise AssertionError(f"{self.workers()}\n{self.logs()}") from None

    def wait_gone(self, names: list[str], timeout: float = 60) -> None:
        self.stack.wait_for(lambda: all(self.workers().get(n, {}).get("state") in (None, "stopped")
                                        for n in names), timeout, f"workers {names} stopped", interval=0.3)

    def stage_worker(self) -> str:
        """A worker for the stage queues: a `video_generation` worker only plans a render, its
        stages run on image_processing, audio_processing and video_processing."""
        return self.stack.start_worker(["image_processing", "audio_processing", "video_processing"],
                                       name="stages", concurrency=2)

    def submit(self, **overrides: Any) -> str:
        response = self.client.post("/tasks/video/async", data=json.dumps(small_brief(**overrides)),
                                    content_type="application/json", headers=self.headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["task_id"]

    def logs(self) -> str:
        parts = [f"--- {n}\n{self.stack.log_text(n)[-3000:]}" for n in self.stack.procs]
        log_dir = self.stack.app.config["INSTANCE_DIR"] + "/logs"
        if os.path.isdir(log_dir):
            for entry in sorted(os.listdir(log_dir)):
                with open(os.path.join(log_dir, entry), errors="replace") as handle:
                    parts.append(f"--- {entry}\n{handle.read()[-2000:]}")
        return "\n".join(parts)


@pytest.fixture
def fleet(app, client, stack, make_token) -> Iterator[Fleet]:
    """Supervisors stop warm at the end (they stop their workers); stragglers are killed."""
    running = Fleet(stack, client, make_token("admin", name="fleet-admin"))
    yield running
    for name in list(stack.procs):
        proc = stack.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name in list(stack.procs):
        stack.stop(name, signal.SIGTERM, timeout=30)
    for pid, _ppid, _node in worker_processes(stack.env["AURA_INSTANCE"]):
        # A worker whose supervisor was killed gets SIGTERM from the kernel; make sure it is gone.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def worker_processes(instance: str) -> list[tuple[int, int, str]]:
    """(pid, ppid, node name) of the supervisor-started celery worker processes of one test
    (matched by its AURA_INSTANCE, so parallel test runs never see each other's workers)."""
    marker = f"AURA_INSTANCE={instance}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if marker not in environ or "worker.celery_app:app" not in args or "-n" not in args or "-m" not in args:
            continue
        found.append((int(entry), ppid, args[args.index("-n") + 1]))
    return found


def worker_mains(instance: str) -> list[tuple[int, int, str]]:
    """Main processes of the supervisor-started workers (not their pool children)."""
    procs = worker_processes(instance)
    pids = {pid for pid, _ppid, _node in procs}
    return [p for p in procs if p[1] not in pids]


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    return Stack.wait_for
