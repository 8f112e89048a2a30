"""Settings read from the environment, with the names of SPEC.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

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


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from exc


def _size(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().lower()
    width, sep, height = raw.partition("x")
    if not (sep and width.isascii() and width.isdigit() and height.isascii() and height.isdigit()):
        raise RuntimeError(f"{name} must be WIDTHxHEIGHT, got {raw!r}")
    return raw
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


#: ENVIRONMENT values that allow the default secret key; anything else (or nothing) is production.
RELAXED_ENVIRONMENTS = ("development", "testing")


def environment_name(raw: str | None) -> str:
    """`development` or `testing` when ENVIRONMENT says so (any case), else `production`."""
    name = (raw or "").strip().lower()
    return name if name in RELAXED_ENVIRONMENTS else "production"


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise RuntimeError(f"{name} must be true or false, got {raw!r}")


def hide_password(url: str) -> str:
    """A URL safe to print: its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def load_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask configuration mapping from environment variables."""
    env = os.environ if env is None else env
    environment = environment_name(env.get("ENVIRONMENT"))
    instance = Path(env.get("AURA_INSTANCE") or ROOT / "var")
    media_root = Path(env.get("MEDIA_ROOT", instance / "media")).resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'aura.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    time_limit = _int(env, "TASK_TIME_LIMIT", 600)
    return {
        "ENVIRONMENT": environment,
        # Where the run command's web server listens.
        "HOST": env.get("HOST") or "127.0.0.1",
        "PORT": _int(env, "PORT", 8000),
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
        # A published stage nobody claimed within this is published again by the reconciler.
        "STAGE_PICKUP_SECONDS": _int(env, "STAGE_PICKUP_SECONDS", 60),
        # A stage whose lease expired this many times fails its attempt (which may be retried).
        "STAGE_MAX_TRIES": _int(env, "STAGE_MAX_TRIES", 3),
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
        # Secure cookies in production unless configured (the local run command serves plain http).
        "SESSION_COOKIE_SECURE": _bool(env, "SESSION_COOKIE_SECURE", environment == "production"),
        # Abuse limits (webapp/limits.py): rates as "N/second|minute|hour", counted in Redis.
        "LOGIN_RATE_IP": env.get("LOGIN_RATE_IP") or "30/minute",
        "LOGIN_RATE_USER": env.get("LOGIN_RATE_USER") or "5/minute",
        "RATELIMIT_READ": env.get("RATELIMIT_READ") or "600/minute",
        "RATELIMIT_SUBMIT": env.get("RATELIMIT_SUBMIT") or "60/minute",
        "MAX_ACTIVE_TASKS_PER_USER": _int(env, "MAX_ACTIVE_TASKS_PER_USER", 1000),
        "VIEWER_MAX_RESOLUTION": _size(env, "VIEWER_MAX_RESOLUTION", "1280x720"),
        "VIEWER_MAX_DURATION": _int(env, "VIEWER_MAX_DURATION", 60),
        "OPERATOR_MAX_RESOLUTION": _size(env, "OPERATOR_MAX_RESOLUTION", "1920x1080"),
        "OPERATOR_MAX_DURATION": _int(env, "OPERATOR_MAX_DURATION", 300),
        "ADMIN_MAX_RESOLUTION": _size(env, "ADMIN_MAX_RESOLUTION", "3840x2160"),
        "ADMIN_MAX_DURATION": _int(env, "ADMIN_MAX_DURATION", 600),
        # The fleet: most pool processes per worker, most workers one supervisor runs.
        "WORKER_MAX_CONCURRENCY": _int(env, "WORKER_MAX_CONCURRENCY", 8),
        "SUPERVISOR_MAX_WORKERS": _int(env, "SUPERVISOR_MAX_WORKERS", 8),
        "SUPERVISOR_HOST": env.get("AURA_SUPERVISOR_HOST") or None,
        "SUPERVISOR_INTERVAL": _float(env, "SUPERVISOR_INTERVAL", 2.0),
        "SUPERVISOR_LEASE_SECONDS": _float(env, "SUPERVISOR_LEASE_SECONDS", 15.0),
        # Seconds a warm stop may take before SIGKILL (None: the supervisor uses TASK_TIME_LIMIT + 30).
        "WORKER_STOP_TIMEOUT": _float(env, "WORKER_STOP_TIMEOUT", None),
        "K8S_NAMESPACE": env.get("AURA_K8S_NAMESPACE") or None,
        # Flower (scripts/start_celery.py): always 127.0.0.1, basic auth required.
        "FLOWER_PORT": _int(env, "FLOWER_PORT", 5555),
        "FLOWER_BASIC_AUTH": env.get("FLOWER_BASIC_AUTH") or None,
        "K8S_PREFIX": env.get("AURA_K8S_PREFIX") or "aura-worker-",
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "BABEL_DEFAULT_LOCALE": "en",
        "LANGUAGES": ["en", "zh"],
        # A form's CSRF token expires after this many seconds.
        "WTF_CSRF_TIME_LIMIT": _int(env, "CSRF_TIME_LIMIT", 8 * 3600),
    }


def check_production(config: Mapping[str, Any]) -> None:
    """Refuse the default or a weak secret key unless ENVIRONMENT is development or testing."""
    if environment_name(config.get("ENVIRONMENT")) != "production":
        return
    key = config.get("SECRET_KEY") or ""
    if key == DEFAULT_SECRET_KEY or len(key) < 32:
        raise RuntimeError(
            "SECRET_KEY must be set to a random value of 32+ characters (the default key is accepted only "
            "with ENVIRONMENT=development or ENVIRONMENT=testing)"
        )
