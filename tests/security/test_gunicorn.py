"""Two gunicorn instances on one host, started as the run command starts its web server, each keep
their own control socket (gunicorn's per-user default would let the second take over the first's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, VENV_BIN

sys.path.insert(0, str(ROOT / "scripts"))

from smoke_run import free_port  # noqa: E402


def test_two_instances_do_not_share_a_control_socket(tmp_path: Path, redis_server):
    procs, ports = [], []
    home = tmp_path / "home"  # one user's home for both, as on a shared host
    try:
        for name in ("a", "b"):
            port = free_port()
            env = {**os.environ, "AURA_INSTANCE": str(tmp_path / name), "HOME": str(home),
                   "REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT)}
            env.pop("XDG_RUNTIME_DIR", None)
            procs.append(subprocess.Popen([str(VENV_BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}",
                                           "-w", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            ports.append(port)
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not answer"
                    time.sleep(0.2)
        sockets = {name: sorted((tmp_path / name).glob("gunicorn-*.ctl")) for name in ("a", "b")}
        assert [p.name for p in sockets["a"]] == [f"gunicorn-{procs[0].pid}.ctl"]
        assert [p.name for p in sockets["b"]] == [f"gunicorn-{procs[1].pid}.ctl"]
        assert not (home / ".gunicorn" / "gunicorn.ctl").exists()
        for proc in procs:
            assert proc.poll() is None
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
