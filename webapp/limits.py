"""Abuse limits: request rates (flask-limiter, counted in Redis) and what one submitter may ask for.

- Sign-in: failed attempts per client address and per user name (`LOGIN_RATE_IP`, `LOGIN_RATE_USER`).
- API: every bearer-token request counts against its token, reads (GET) and writes separately
  (`RATELIMIT_READ`, `RATELIMIT_SUBMIT`); `require_role` applies them, so a new endpoint has them.
- Submissions: active tasks per submitter (`MAX_ACTIVE_TASKS_PER_USER`) and, per role, the largest
  resolution and the longest duration (`OPERATOR_MAX_RESOLUTION`, `OPERATOR_MAX_DURATION`, ...).

A breach answers 429 with `Retry-After` (JSON under /tasks, the error page elsewhere).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from webapp.catalog import Role

# No X-RateLimit-* headers on every answer (each costs Redis round trips); a breach gets Retry-After.
limiter = Limiter(key_func=get_remote_address, headers_enabled=False, swallow_errors=True)


def retry_after_seconds() -> int:
    """Seconds until the breached limit of this request resets (at least 1)."""
    import time

    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()) + 1)


def init_limits(app: Flask) -> None:
    """Count in the app's Redis unless RATELIMIT_STORAGE_URI says otherwise."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 2})
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "aura:limits")
    limiter.init_app(app)


def _config(name: str):
    return lambda: current_app.config[name]


def _login_name() -> str:
    return "user:" + (request.form.get("username") or "").strip().lower()[:80]


def _failed(response: Any) -> bool:
    return response.status_code in (400, 401)


#: Failed sign-ins, per client address and per user name; successes cost nothing.
login_limits = [
    limiter.limit(_config("LOGIN_RATE_IP"), methods=["POST"], deduct_when=_failed, scope="login-ip"),
    limiter.limit(_config("LOGIN_RATE_USER"), methods=["POST"], deduct_when=_failed, key_func=_login_name,
                  scope="login-user"),
]


def _token_key() -> str:
    from flask import g

    token = g.get("api_token")
    return f"token:{token.id}" if token is not None else get_remote_address()


def _is_read() -> bool:
    return request.method in ("GET", "HEAD", "OPTIONS")


api_read_limit = limiter.shared_limit(_config("RATELIMIT_READ"), scope="api-read", key_func=_token_key,
                                      exempt_when=lambda: not _is_read())
api_write_limit = limiter.shared_limit(_config("RATELIMIT_SUBMIT"), scope="api-write", key_func=_token_key,
                                       exempt_when=_is_read)


def parse_size(text: str) -> tuple[int, int]:
    width, _x, height = str(text).lower().partition("x")
    return int(width), int(height)


def role_caps(role: Role | str) -> tuple[tuple[int, int], int]:
    """(largest WIDTHxHEIGHT by pixel count, longest duration in seconds) one role may submit."""
    name = Role(role).name  # VIEWER / OPERATOR / ADMIN
    config = current_app.config
    return parse_size(config[f"{name}_MAX_RESOLUTION"]), int(config[f"{name}_MAX_DURATION"])


class SubmissionRefused(Exception):
    """A brief over the submitter's caps: `status` 400 (a field over the role's cap) or 429 (too many
    active tasks), with the API's error code, a message and field errors."""

    def __init__(self, status: int, error: str, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.fields = status, error, message, fields or {}


def check_submission(brief: dict[str, Any], role: Role | str, submitted_by: str) -> None:
    """Refuse a validated brief over the role's resolution or duration cap, or when the submitter
    already has MAX_ACTIVE_TASKS_PER_USER tasks waiting or running."""
    from flask_babel import gettext as _

    fields = over_role_caps(brief, role)
    if fields:
        raise SubmissionRefused(400, "invalid_request", _("The brief is over your role's limits."), fields)
    check_active_tasks(submitted_by)


def over_role_caps(brief: dict[str, Any], role: Role | str,
                   caps: tuple[tuple[int, int], int] | None = None) -> dict[str, str]:
    """The fields of a validated brief over the role's resolution or duration cap (empty: none).
    `caps`: the role's `role_caps`, when the caller checks many briefs."""
    from flask_babel import gettext as _

    (max_w, max_h), max_seconds = caps or role_caps(role)
    fields: dict[str, str] = {}
    width, height = parse_size(brief["config"]["resolution"])
    if width * height > max_w * max_h or max(width, height) > max(max_w, max_h):
        fields["config.resolution"] = _("Your role (%(role)s) renders at most %(size)s.", role=Role(role).value,
                                        size=f"{max_w}x{max_h}")
    if brief["target_duration_id"] > max_seconds:
        fields["target_duration_id"] = _("Your role (%(role)s) renders at most %(n)s seconds.",
                                         role=Role(role).value, n=max_seconds)
    return fields


def check_active_tasks(submitted_by: str, adding: int = 1) -> None:
    """Refuse (429) `adding` more tasks when the submitter would pass MAX_ACTIVE_TASKS_PER_USER."""
    from flask_babel import gettext as _
    from sqlalchemy import select

    from webapp.catalog import ACTIVE_STATES
    from webapp.extensions import db
    from webapp.models import RenderTask

    cap = current_app.config["MAX_ACTIVE_TASKS_PER_USER"]
    if cap <= 0:  # 0: no cap
        return
    # At most `cap` index entries read (ix_render_tasks_submitter_status), however many tasks wait.
    active = select(RenderTask.id).where(RenderTask.submitted_by == submitted_by,
                                         RenderTask.status.in_([s.value for s in ACTIVE_STATES])).limit(cap)
    if len(db.session.scalars(active).all()) + adding > cap:
        raise SubmissionRefused(429, "too_many_active_tasks",
                                _("You have %(n)s tasks waiting or running, the most allowed; submit more when "
                                  "some finish.", n=cap))
