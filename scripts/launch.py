"""What the run command and scripts/start_celery.py share: the environment (a reachable Redis,
an upgraded database) and a small process supervisor that stops everything warm on Ctrl+C."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from embedded_redis import RedisProcess, reachable  # noqa: E402


def choose_redis(env: dict[str, str], instance: Path) -> tuple[str, RedisProcess | None]:
    """The configured Redis (or, with none configured, the default localhost:6379) when it answers;
    otherwise an embedded one started here."""
    from webapp.config import redis_url_from

    configured = any(env.get(k) for k in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT"))
    url = redis_url_from(env)
    parsed = urlparse(url)
    if reachable(parsed.hostname or "localhost", parsed.port or 6379):
        return url, None
    where = "Configured" if configured else "Default"
    print(f"{where} Redis {parsed.hostname}:{parsed.port} is not reachable; starting an embedded one.")
    server = RedisProcess(data_dir=instance / "redis").start()
    return server.url, server


def instance_secret_key(instance: Path) -> str:
    """The instance's random SECRET_KEY, generated on first use and kept (mode 600) in the instance dir."""
    path = instance / "secret_key"
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 32:
            return key
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key


def prepare_environment(need_redis: bool) -> tuple[dict[str, str], RedisProcess | None]:
    """PYTHONPATH, instance dir, a reachable Redis and an upgraded database."""
    from webapp.config import load_config

    instance = Path(load_config()["INSTANCE_DIR"]).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("AURA_INSTANCE", str(instance))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = instance_secret_key(instance)
    # Prometheus multiprocess mode: gunicorn and the workers share a directory emptied at start.
    metrics_dir = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or instance / "prometheus")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    server = None
    if need_redis:
        env["REDIS_URL"], server = choose_redis(env, instance)
    os.environ.update(env)
    from flask_migrate import upgrade

    from webapp import create_app

    with create_app().app_context():
        upgrade()
    return env, server


def supervise(procs: dict[str, list[str]], env: dict[str, str], server: RedisProcess | None,
              announce: Callable[[Path], None] | None = None) -> int:
    """Run the commands until Ctrl+C or one of them exits; then stop the rest warm."""
    logs = Path(env["AURA_INSTANCE"]) / "logs"
    logs.mkdir(exist_ok=True)
    running: dict[str, subprocess.Popen] = {}
    for name, cmd in procs.items():
        out = open(logs / f"{name}.log", "ab")
        running[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        print(f"started {name} (pid {running[name].pid}): {' '.join(cmd[2:])}")
    if announce is not None:
        announce(logs)
    print(f"Logs: {logs}. Press Ctrl+C to stop.")
    sys.stdout.flush()
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    try:
        while not stopping:
            for name, proc in running.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {logs / (name + '.log')}")
                    status, stopping = 1, True
            time.sleep(0.5)
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm: running tasks finish
        from webapp.config import load_config

        deadline = time.monotonic() + (load_config()["WORKER_STOP_TIMEOUT"] or 60.0)
        for proc in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if server is not None:
            server.stop()
    return status
