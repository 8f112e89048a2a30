"""Flower, as scripts/start_celery.py (and the Procfile through it) starts it: on 127.0.0.1 only, and
only with basic auth from FLOWER_BASIC_AUTH, which never appears on the command line."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

from smoke_run import free_port  # noqa: E402


def test_flower_is_not_started_without_credentials(tmp_path: Path):
    from start_celery import flower_command

    assert flower_command({"AURA_INSTANCE": str(tmp_path)}) is None
    command = flower_command({"AURA_INSTANCE": str(tmp_path), "FLOWER_BASIC_AUTH": "ops:s3cret",
                              "FLOWER_PORT": "5599"})
    assert "--address=127.0.0.1" in command and "--port=5599" in command
    assert not any("s3cret" in part for part in command)


def get(url: str, auth: str | None = None) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_flower_binds_loopback_and_asks_for_basic_auth(tmp_path: Path, redis_server):
    pytest.importorskip("flower")
    port = free_port()
    env = {**os.environ, "AURA_INSTANCE": str(tmp_path), "REDIS_URL": redis_server.url,
           "FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "scripts/start_celery.py", "flower"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = get(f"http://127.0.0.1:{port}/api/workers")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "Flower did not start"
                time.sleep(0.3)
        assert status == 401
        assert get(f"http://127.0.0.1:{port}/api/workers", "ops:wrong") == 401
        assert get(f"http://127.0.0.1:{port}/api/workers", "ops:s3cret") == 200
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local = [line.split()[3] for line in listening.splitlines() if line.strip()]
        assert local and all(addr == f"127.0.0.1:{port}" for addr in local), local
        others = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
        for address in others:
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
