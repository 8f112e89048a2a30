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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from exc


def _list(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in (env.get(name) or "").split(",") if part.strip()]


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
        "WORKER_OFFLINE_PURGE_SECONDS": _int(env, "WORKER_OFFLINE_PURGE_SECONDS", 3600),
        # Webhooks: hosts (names, addresses or CIDR ranges) allowed although private or loopback.
        "WEBHOOK_ALLOWED_HOSTS": _list(env, "WEBHOOK_ALLOWED_HOSTS"),
        "WEBHOOK_TIMEOUT_SECONDS": _float(env, "WEBHOOK_TIMEOUT_SECONDS", 5.0),
        # An endpoint failing for this long is disabled (and an alert fires).
        "WEBHOOK_DISABLE_AFTER_SECONDS": _int(env, "WEBHOOK_DISABLE_AFTER_SECONDS", 3600),
        # Deliveries are retried with backoff for this long, then marked failed.
        "WEBHOOK_RETRY_HOURS": _float(env, "WEBHOOK_RETRY_HOURS", 24.0),
        "WEBHOOK_SWEEP_SECONDS": _float(env, "WEBHOOK_SWEEP_SECONDS", 2.0),
        # /metrics: any valid API token, or these client addresses / CIDR ranges without one.
        "METRICS_ALLOWED_IPS": _list(env, "METRICS_ALLOWED_IPS"),
        "PROMETHEUS_MULTIPROC_DIR": env.get("PROMETHEUS_MULTIPROC_DIR", ""),
        # Alerts of beat's monitor: thresholds and the quiet time before one is sent again.
        "ALERT_BACKLOG": _int(env, "ALERT_BACKLOG", 100),
        "ALERT_FAILURE_RATE": _float(env, "ALERT_FAILURE_RATE", 0.2),
        "ALERT_FAILURE_WINDOW_MINUTES": _int(env, "ALERT_FAILURE_WINDOW_MINUTES", 15),
        "ALERT_FAILURE_MIN_TASKS": _int(env, "ALERT_FAILURE_MIN_TASKS", 5),
        "ALERT_COOLDOWN_SECONDS": _int(env, "ALERT_COOLDOWN_SECONDS", 300),
        "MONITOR_SECONDS": _int(env, "MONITOR_SECONDS", 30),
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
