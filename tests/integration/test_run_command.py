"""The README's run command, as a new user meets it: the printed URL and token, a brief that
becomes a video, and a clean stop on Ctrl+C (scripts/smoke_run.py, which CI also runs on a fresh
clone with runtime requirements only)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

from smoke_run import free_port, run_and_render  # noqa: E402

pytestmark = [pytest.mark.integration]


def test_run_command_embeds_redis_when_the_configured_one_is_down(tmp_path: Path):
    # Like a new user: no ENVIRONMENT (so production rules) and no SECRET_KEY.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "DATABASE_URL", "MEDIA_ROOT", "ENVIRONMENT", "SECRET_KEY"))}
    dead_port = free_port()  # nothing listens here
    env.update({"AURA_INSTANCE": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1",
                "REDIS_PORT": str(dead_port)})
    port = free_port()
    seen = run_and_render([sys.executable, "scripts/run.py", "--port", str(port)], ROOT, env,
                          tmp_path / "run.log", port, start_timeout=90, render_timeout=120)
    text = seen["log"]
    assert f"Aura Render is running at http://127.0.0.1:{port}/" in text
    assert f"Configured Redis localhost:{dead_port} is not reachable" in text
    assert "(embedded)" in text
    assert re.search(r"Sign in as 'admin' with password: \S+", text)
    # The generated key is kept in the instance dir, readable by its owner only; signing in over
    # plain http works (the run command does not force Secure cookies).
    key_file = tmp_path / "instance" / "secret_key"
    assert len(key_file.read_text().strip()) >= 32 and key_file.stat().st_mode & 0o077 == 0
    assert "Sign out" in seen["signed_in_page"]
    video = next(f for f in seen["status"]["result"]["files"] if f["kind"] == "video")
    assert (tmp_path / "instance" / "media" / seen["task_id"] / video["name"]).stat().st_size > 10_000


def test_secret_key_is_generated_once(tmp_path: Path):
    """The run command keeps one random key per instance dir."""
    from launch import instance_secret_key

    first = instance_secret_key(tmp_path)
    assert instance_secret_key(tmp_path) == first  # generated once, then kept


def test_default_redis_is_tried_before_embedding(monkeypatch, tmp_path: Path):
    import launch

    asked = []
    monkeypatch.setattr(launch, "reachable", lambda host, port: asked.append((host, port)) or True)
    url, server = launch.choose_redis({}, tmp_path)
    assert (url, server) == ("redis://localhost:6379/0", None)
    assert asked == [("localhost", 6379)]
