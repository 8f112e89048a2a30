"""Rendered media under /media/..., with HTTP Range support and no way out of MEDIA_ROOT."""

from __future__ import annotations

import posixpath

from flask import Blueprint, abort, current_app, send_from_directory

from webapp.access import require_session_or_token

bp = Blueprint("media", __name__)
PRIVATE_DIRS = {"work", "tmp"}


@bp.get("/media/<path:filename>")
def media_file(filename: str):
    """Serve one rendered file to a signed-in user or a valid API token."""
    require_session_or_token()
    # Normalize first (x/../work is work), then check: no way up, none into a private folder.
    clean = posixpath.normpath("/" + filename).lstrip("/")
    parts = clean.split("/")
    if not clean or parts[0] in PRIVATE_DIRS or any(p.startswith(".") for p in parts):
        abort(404)
    response = send_from_directory(current_app.config["MEDIA_ROOT"], clean, conditional=True,
                                   max_age=3600)
    response.headers["Accept-Ranges"] = "bytes"
    response.cache_control.public = False
    response.cache_control.private = True  # signed-in content: browsers may keep it, shared caches not
    return response
