"""Rendered media under /media/..., with HTTP Range support and no way out of MEDIA_ROOT."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_from_directory
from flask_login import current_user

from webapp.api.auth import bearer_token
from webapp.services.auth import authenticate

bp = Blueprint("media", __name__)
PRIVATE_DIRS = {"work", "tmp"}


@bp.get("/media/<path:filename>")
def media_file(filename: str):
    """Serve one rendered file to a signed-in user or a valid API token."""
    if not current_user.is_authenticated:
        raw = bearer_token()
        if not raw or authenticate(raw) is None:
            abort(401)
    first = filename.split("/", 1)[0]
    if first in PRIVATE_DIRS or first.startswith("."):
        abort(404)
    response = send_from_directory(current_app.config["MEDIA_ROOT"], filename, conditional=True,
                                   max_age=3600)
    response.headers["Accept-Ranges"] = "bytes"
    return response
