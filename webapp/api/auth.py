"""Bearer-token authentication and JSON errors for the API blueprint."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, jsonify, request
from flask_babel import gettext as _

from webapp.catalog import Role
from webapp.limits import api_read_limit, api_write_limit
from webapp.services.auth import authenticate


def api_error(status: int, error: str, message: str, fields: dict[str, str] | None = None):
    """The API's error body: {"error", "message", "fields"}."""
    response = jsonify({"error": error, "message": str(message), "fields": fields or {}})
    response.status_code = status
    return response


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_role(role: Role) -> Callable:
    """Decorator: the request needs a valid bearer token whose role includes `role`."""

    def decorator(view: Callable) -> Callable:
        limited = api_write_limit(api_read_limit(view))  # per-token rates, counted after authentication

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            raw = bearer_token()
            token = authenticate(raw) if raw else None
            if token is None:
                response = api_error(401, "unauthorized",
                                     _("A valid API token is required (Authorization: Bearer <token>)."))
                response.headers["WWW-Authenticate"] = 'Bearer realm="aura"'
                return response
            if not token.can(role):
                return api_error(403, "forbidden",
                                 _("This token's role (%(have)s) cannot do this; it needs %(need)s.",
                                   have=token.role, need=role.value))
            g.api_token = token
            return limited(*args, **kwargs)

        return wrapped

    return decorator
