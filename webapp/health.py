"""Probes for load balancers and Kubernetes: /healthz (the process answers) and /readyz (the
database is reachable and migrated, and Redis answers). Both without authentication."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, jsonify
from sqlalchemy import text

from webapp.api.contract import HealthOut, operation
from webapp.extensions import csrf, db

bp = Blueprint("health", __name__)
csrf.exempt(bp)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@cache
def migration_heads() -> frozenset[str]:
    """The revisions the code expects the database to be at."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _check_database() -> str | None:
    try:
        rows = db.session.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception as exc:  # any driver error means "not ready"; the name of it is enough here
        db.session.rollback()
        return f"database unreachable or not migrated ({type(exc).__name__})"
    finally:
        db.session.remove()
    if frozenset(rows) != migration_heads():
        return f"database at revision {', '.join(sorted(rows)) or 'none'}, code expects " \
               f"{', '.join(sorted(migration_heads()))} (run: flask --app wsgi db upgrade)"
    return None


def _check_redis() -> str | None:
    import redis

    from webapp.services.broker import redis_client

    try:
        redis_client().ping()
    except redis.RedisError as exc:
        return f"redis unreachable ({type(exc).__name__})"
    return None


@operation(bp, "GET", "/healthz", role=None, responses={200: HealthOut}, summary="Liveness (no token)")
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@operation(bp, "GET", "/readyz", role=None, responses={200: HealthOut, 503: HealthOut},
           summary="Readiness: database migrated, Redis answers (no token)")
def readyz():
    """Readiness: 200 when the database and Redis are usable, 503 naming the failing part."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    failing = {name: problem for name, problem in checks.items() if problem}
    body = {"status": "fail" if failing else "ok",
            "checks": {name: (problem or "ok") for name, problem in checks.items()}}
    return jsonify(body), (503 if failing else 200)
