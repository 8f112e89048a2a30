"""Children of a worker (ffmpeg, espeak-ng) end when the process that started them dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a worker process: it starts a long ffmpeg encode through run_child and waits.
WORKER = """
import sys
sys.path.insert(0, {root!r})
from worker.pipeline.proc import run_ffmpeg
run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "600", "-f", "null", "-"],
           "render", lambda: False)
"""


def _ffmpeg_children(parent: int) -> list[int]:
    """The worker's children that are the long encode itself (exec'd, running), not a passing helper."""
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    found = []
    for pid in (int(p) for p in out.split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"testsrc" in cmdline and b"ffmpeg" in cmdline and _alive(pid):
            found.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _start_worker() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER.format(root=str(ROOT))], start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = _ffmpeg_children(proc.pid)
        if children:
            return proc, children[0]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("ffmpeg did not start")


def test_kill_9_of_the_worker_ends_its_ffmpeg():
    proc, child = _start_worker()
    assert _alive(child)
    os.kill(proc.pid, signal.SIGKILL)  # only the worker: its child is not signalled by us
    proc.wait(timeout=10)
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "ffmpeg outlived its worker"


def test_a_stop_of_the_worker_group_reaches_ffmpeg():
    """The supervisor stops a worker by its process group; the child is in that group."""
    proc, child = _start_worker()
    assert os.getpgid(child) == os.getpgid(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
