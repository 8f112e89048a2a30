"""Settings read from the environment, with the names of SPEC.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"
ROOT = Path(__file__).resolve().parent.parent


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc


def redis_url_from(env: Mapping[str, str]) -> str:
    """REDIS_URL when set, else a URL built from REDIS_HOST/PORT/DB/PASSWORD."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST", "localhost")
    port = _int(env, "REDIS_PORT", 6379)
    db = _int(env, "REDIS_DB", 0)
    password = env.get("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def load_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask configuration mapping from environment variables."""
    env = os.environ if env is None else env
    environment = env.get("ENVIRONMENT", "development")
    instance = Path(env.get("AURA_INSTANCE", ROOT / "var"))
    media_root = Path(env.get("MEDIA_ROOT", instance / "media")).resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'aura.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    time_limit = _int(env, "TASK_TIME_LIMIT", 600)
    return {
        "ENVIRONMENT": environment,
        "SECRET_KEY": env.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url_from(env),
        "MEDIA_ROOT": str(media_root),
        # Where outputs and stage artifacts live (webapp/storage.py); empty: file:// MEDIA_ROOT.
        "STORAGE_URL": env.get("STORAGE_URL", ""),
        "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL") or None,
        "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID") or None,
        "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY") or None,
        "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION") or None,
        # A worker's per-stage scratch folders; empty: the system's temp folder.
        "SCRATCH_DIR": env.get("SCRATCH_DIR", ""),
        # How long a presigned S3 URL handed out by /media stays valid.
        "MEDIA_URL_SECONDS": _int(env, "MEDIA_URL_SECONDS", 300),
        "INSTANCE_DIR": str(instance),
        "CELERY_WORKER_CONCURRENCY": _int(env, "CELERY_WORKER_CONCURRENCY", 4),
        "CELERY_WORKER_MAX_MEMORY": _int(env, "CELERY_WORKER_MAX_MEMORY", 512),
        "TASK_SOFT_TIME_LIMIT": _int(env, "TASK_SOFT_TIME_LIMIT", 300),
        "TASK_TIME_LIMIT": time_limit,
        "TASK_MAX_RETRIES": _int(env, "TASK_MAX_RETRIES", 3),
        # A claimed task's lease; its heartbeat renews it every third of this.
        "LEASE_SECONDS": _int(env, "LEASE_SECONDS", 30),
        "RETRY_BACKOFF_SECONDS": _int(env, "RETRY_BACKOFF_SECONDS", 10),
        "RECONCILE_SECONDS": _int(env, "RECONCILE_SECONDS", 5),
        # How often beat evaluates the autoscale policies.
        "AUTOSCALE_SECONDS": _int(env, "AUTOSCALE_SECONDS", 10),
        # Longer than the hard limit, so Redis never hands a running task to a second worker.
        "VISIBILITY_TIMEOUT": _int(env, "VISIBILITY_TIMEOUT", time_limit * 2 + 60),
        "RETENTION_DAYS": _int(env, "RETENTION_DAYS", 30),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # The media library (webapp/services/assets.py): the largest upload, the longest clip or
        # audio file and the most pixels of an image it accepts.
        "ASSET_MAX_BYTES": _int(env, "ASSET_MAX_BYTES", 512 * 1024 * 1024),
        "ASSET_MAX_SECONDS": _int(env, "ASSET_MAX_SECONDS", 900),
        "ASSET_MAX_PIXELS": _int(env, "ASSET_MAX_PIXELS", 50_000_000),
        "WORKER_OFFLINE_PURGE_SECONDS": _int(env, "WORKER_OFFLINE_PURGE_SECONDS", 3600),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": environment == "production",
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "BABEL_DEFAULT_LOCALE": "en",
        "LANGUAGES": ["en", "zh"],
        "WTF_CSRF_TIME_LIMIT": None,
    }


def check_production(config: Mapping[str, Any]) -> None:
    """Refuse to run production with the default or a weak secret key."""
    if config.get("ENVIRONMENT") != "production":
        return
    key = config.get("SECRET_KEY") or ""
    if key == DEFAULT_SECRET_KEY or len(key) < 32:
        raise RuntimeError(
            "ENVIRONMENT=production needs SECRET_KEY set to a random value of 32+ characters"
        )
