"""Run Aura Render on one machine: Redis (embedded when needed), database upgrade, an admin
user and an API token, the supervisor with one worker per queue group, beat and the web app."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from launch import prepare_environment, supervise  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def first_admin_and_token() -> tuple[str, str | None]:
    """Create the first admin (its password is returned once) and a fresh local API token."""
    from sqlalchemy import select, update

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import ApiToken, User
    from webapp.services import auth
    from webapp.timeutil import utcnow

    with create_app().app_context():
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
    from webapp.config import load_config

    config = load_config()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=config["HOST"])
    parser.add_argument("--port", type=int, default=config["PORT"])
    parser.add_argument("--no-supervisor", action="store_true",
                        help="start one worker per queue group directly instead of through the supervisor")
    args = parser.parse_args()

    # The local run serves plain http: session cookies without Secure unless configured otherwise.
    os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
    env, redis_server = prepare_environment(need_redis=True)
    token, password = first_admin_and_token()
    instance = Path(env["AURA_INSTANCE"])

    from webapp.catalog import QUEUES, WORKER_GROUPS
    from webapp.config import hide_password

    celery = [str(VENV_BIN / "celery"), "-A", "worker.celery_app:app"]
    commands: dict[str, list[str]] = {}
    if args.no_supervisor:
        for group, queues in WORKER_GROUPS.items():
            concurrency = max(QUEUES[q].concurrency[0] for q in queues)
            commands[f"worker-{group}"] = celery + ["worker", "-Q", ",".join(queues), "-n", f"{group}@%h",
                                                    "--concurrency", str(concurrency), "--loglevel", "INFO"]
    else:
        commands["supervisor"] = [sys.executable, "-m", "worker.supervisor", "--ensure-defaults"]
    commands["beat"] = celery + ["beat", "--loglevel", "INFO", "-s", str(instance / "celerybeat-schedule")]
    commands["web"] = [str(VENV_BIN / "gunicorn"), "wsgi:app", "-b", f"{args.host}:{args.port}",
                       "-w", "4", "-k", "gthread", "--threads", "8", "--access-logfile", "-"]

    def announce(logs: Path) -> None:
        url = f"http://{args.host}:{args.port}/"
        print()
        print(f"Aura Render is running at {url}")
        print(f"  Redis: {hide_password(env['REDIS_URL'])}{' (embedded)' if redis_server else ''}")
        print(f"  Database: {hide_password(env.get('DATABASE_URL') or str(instance / 'aura.db'))}")
        if password:
            print(f"  Sign in as 'admin' with password: {password}   (shown once; change it in Settings)")
        else:
            print("  Sign in with your existing user (create one: flask --app wsgi users create NAME --role admin)")
        print(f"  API token (admin role): {token}")
        print(f"  Try: curl -H 'Authorization: Bearer {token}' {url}tasks/queue/status")

    return supervise(commands, env, redis_server, announce)


if __name__ == "__main__":
    sys.exit(main())
