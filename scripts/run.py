"""Run Aura Render on one machine: Redis (embedded when needed), database upgrade, an admin
user and an API token, the supervisor with one worker per queue group, beat and the web app."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from embedded_redis import RedisProcess, reachable  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def choose_redis(env: dict[str, str], instance: Path) -> tuple[str, RedisProcess | None]:
    """A configured, reachable Redis; otherwise an embedded one started here."""
    from webapp.config import redis_url_from

    configured = any(env.get(k) for k in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT"))
    if configured:
        url = redis_url_from(env)
        parsed = urlparse(url)
        if reachable(parsed.hostname or "localhost", parsed.port or 6379):
            return url, None
        print(f"Configured Redis {parsed.hostname}:{parsed.port} is not reachable; starting an embedded one.")
    server = RedisProcess(data_dir=instance / "redis").start()
    return server.url, server


def prepare(env: dict[str, str]) -> tuple[str, str | None]:
    """Upgrade the database; create the first admin and a fresh local API token."""
    os.environ.update(env)
    from flask_migrate import upgrade
    from sqlalchemy import select, update

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import ApiToken, User
    from webapp.services import auth
    from webapp.timeutil import utcnow

    app = create_app()
    with app.app_context():
        upgrade()
        password = None
        if db.session.scalar(select(User).limit(1)) is None:
            password = secrets.token_urlsafe(12)
            auth.create_user("admin", password, "admin")
        db.session.execute(update(ApiToken).where(ApiToken.name == "local-run", ApiToken.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        db.session.commit()
        _token, raw = auth.create_token("local-run", "admin")
    return raw, password


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-supervisor", action="store_true",
                        help="start one worker per queue group directly instead of through the supervisor")
    args = parser.parse_args()

    instance = Path(os.environ.get("AURA_INSTANCE", ROOT / "var")).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("AURA_INSTANCE", str(instance))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    redis_url, redis_server = choose_redis(env, instance)
    env["REDIS_URL"] = redis_url
    token, password = prepare(env)

    from webapp.catalog import WORKER_GROUPS

    procs: list[tuple[str, subprocess.Popen]] = []
    logs = instance / "logs"
    logs.mkdir(exist_ok=True)

    def spawn(name: str, cmd: list[str]) -> None:
        out = open(logs / f"{name}.log", "ab")
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)))

    celery = [str(VENV_BIN / "celery"), "-A", "worker.celery_app:app"]
    supervisor = (ROOT / "worker" / "supervisor.py").exists() and not args.no_supervisor
    if supervisor:
        spawn("supervisor", [sys.executable, "-m", "worker.supervisor", "--ensure-defaults"])
    else:
        for group, queues in WORKER_GROUPS.items():
            spawn(f"worker-{group}", celery + ["worker", "-Q", ",".join(queues), "-n", f"{group}@%h",
                                               "--concurrency", "2" if group != "ops" else "1",
                                               "--loglevel", "INFO"])
    spawn("beat", celery + ["beat", "--loglevel", "INFO", "-s", str(instance / "celerybeat-schedule")])
    spawn("web", [str(VENV_BIN / "gunicorn"), "wsgi:app", "-b", f"{args.host}:{args.port}",
                  "-w", "4", "-k", "gthread", "--threads", "8", "--access-logfile", "-"])

    url = f"http://{args.host}:{args.port}/"
    print()
    print(f"Aura Render is running at {url}")
    print(f"  Redis: {redis_url}{' (embedded)' if redis_server else ''}")
    print(f"  Database: {env.get('DATABASE_URL') or instance / 'aura.db'}    Logs: {logs}")
    if password:
        print(f"  Sign in as 'admin' with password: {password}   (shown once; change it in Settings)")
    else:
        print("  Sign in with your existing user (create one: flask --app wsgi users create NAME --role admin)")
    print(f"  API token (admin role): {token}")
    print(f"  Try: curl -H 'Authorization: Bearer {token}' {url}tasks/queue/status")
    print("Press Ctrl+C to stop.")
    sys.stdout.flush()

    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {logs / (name + '.log')}")
                    stopping = True
            time.sleep(0.5)
    finally:
        for _name, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if redis_server:
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
