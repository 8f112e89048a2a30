"""The command-line entry points: start_celery.py and the supervisor's Kubernetes mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.sqlite_only]


def test_start_celery_worker_runs_one_named_worker_in_the_foreground(app, stack):
    proc = stack.spawn("scw", [sys.executable, "scripts/start_celery.py", "worker", "scw", "--queue",
                               "default,maintenance", "--concurrency", "1"])
    stack.wait_for(lambda: "ready." in stack.log_text("scw"), 60, "the worker to be ready")
    replies = app.extensions["celery"].control.inspect(timeout=2).active_queues() or {}
    node = next(n for n in replies if n.startswith("scw@"))
    assert sorted(q["name"] for q in replies[node]) == ["default", "maintenance"]
    # exec: the script's own process became `celery worker`.
    with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:
        argv = handle.read().split(b"\0")
    assert b"celery" in argv and b"worker" in argv and b"scw@%h" in argv


def test_start_celery_rejects_an_unknown_queue():
    done = subprocess.run([sys.executable, "scripts/start_celery.py", "worker", "w", "--queue", "nope"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown queue 'nope'" in done.stderr


def test_kubernetes_mode_prints_replica_changes(fleet):
    fleet.control(worker_id="video", action="start", queue="video_generation", count=3)
    fleet.control(worker_id="idle", action="start", queue="default")
    fleet.control(worker_id="idle", action="stop")
    done = subprocess.run([sys.executable, "-m", "worker.supervisor", "--k8s", "--dry-run", "--once",
                           "--k8s-namespace", "render"], cwd=ROOT, env=fleet.stack.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "kubectl --namespace=render scale deployment/aura-worker-idle --replicas=0",
        "kubectl --namespace=render scale deployment/aura-worker-video --replicas=3",
    ]
