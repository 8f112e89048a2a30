"""The README's run command, as a new user meets it: embedded Redis, the printed URL and token,
a brief that becomes a video, and a clean stop on Ctrl+C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, small_brief

pytestmark = [pytest.mark.integration]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_run_command_serves_the_api_and_renders_a_brief(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_URL", "MEDIA_ROOT"))}
    env.update({"AURA_INSTANCE": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1"})
    port = _free_port()
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen([sys.executable, "scripts/run.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline and "API token" not in text:
            time.sleep(0.3)
            text = (tmp_path / "run.log").read_text()
            assert proc.poll() is None, text
        assert f"Aura Render is running at http://127.0.0.1:{port}/" in text
        assert "(embedded)" in text  # no Redis configured: it started its own
        assert re.search(r"Sign in as 'admin' with password: \S+", text)
        token = re.search(r"API token \(admin role\): (\S+)", text).group(1)
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                _call(f"{base}/tasks/queue/status", token)
                break
            except OSError:
                time.sleep(0.3)
        task_id = _call(f"{base}/tasks/video/async", token, small_brief())["task_id"]
        status = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = _call(f"{base}/tasks/status/{task_id}", token)
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert status["status"] == "completed", status
        video = next(f for f in status["result"]["files"] if f["kind"] == "video")
        assert (tmp_path / "instance" / "media" / task_id / video["name"]).stat().st_size > 10_000
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    # Every process it started (gunicorn, supervisor, workers, beat, Redis) is gone.
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], (tmp_path / "run.log").read_text()[-2000:]
