"""Who may do what, in one place: dashboard sessions (Flask-Login), API bearer tokens, role checks
for pages and for the API, access to rendered media, and the 401/403 answers of each.

The data behind it (users, tokens, session epochs) lives in webapp/services/auth.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, flash, g, jsonify, make_response, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from webapp.catalog import Role
from webapp.extensions import htmx, login_manager
from webapp.limits import api_read_limit, api_write_limit
from webapp.models import User
from webapp.services import auth as auth_service

# --- the API: bearer tokens ---------------------------------------------------------------------


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
    """Decorator: the request needs a valid bearer token whose role (capped by its owner's current
    role) includes `role`; the token's read and write rates apply after authentication."""

    def decorator(view: Callable) -> Callable:
        limited = api_write_limit(api_read_limit(view))

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            raw = bearer_token()
            token = auth_service.authenticate(raw) if raw else None
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


# --- the dashboard: sessions ------------------------------------------------------------------------

login_manager.login_view = "dashboard.login"
login_manager.login_message = _l("Please sign in to see this page.")
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user, unless their password, role or active flag changed since it began."""
    return auth_service.session_user(session_id)


@login_manager.unauthorized_handler
def unauthorized():
    """Send people to the sign-in page; an htmx poll gets a full-page redirect instead of a swap."""
    target = url_for("dashboard.login", next=request.full_path.rstrip("?"))
    if htmx:
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(target)


def cached_user_for_polls(view: Callable) -> Callable:
    """Decorator (outside `login_required`): an htmx GET, a poll, gets its session's user from the
    per-process cache (`auth_service.session_viewer`, refused on the request after any change of the
    user) instead of a row load on every poll. With "strong" session protection the full check runs."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any):
        session_id = session.get("_user_id")
        if (session_id is not None and request.method == "GET" and htmx and "_login_user" not in g
                and login_manager.session_protection != "strong"):
            viewer = auth_service.session_viewer(session_id)
            if viewer is not None:
                g._login_user = viewer  # what Flask-Login's current_user returns for this request
        return view(*args, **kwargs)

    return wrapped


def role_required(role: Role) -> Callable:
    """Decorator for pages: a signed-in user whose role includes `role`, else 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# --- media: either ----------------------------------------------------------------------------------


def require_session_or_token() -> None:
    """Rendered files: a signed-in user or a valid API token of any role, else 401."""
    if current_user.is_authenticated:
        return
    raw = bearer_token()
    if not raw or auth_service.authenticate(raw) is None:
        abort(401)
