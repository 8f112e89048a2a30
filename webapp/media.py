"""Rendered media under /media/<task id>/<name>, for signed-in users and API tokens.

The bytes come from the storage backend (webapp/storage.py): the local backend is streamed here
with HTTP Range support; for S3 the caller is redirected to a short-lived presigned URL.
"""

from __future__ import annotations

import posixpath

from flask import Blueprint, abort, current_app, redirect, send_file

from webapp.access import require_session_or_token
from webapp.storage import LocalStorage, get_storage, public_key

bp = Blueprint("media", __name__)


@bp.get("/media/<path:filename>")
def media_file(filename: str):
    """Serve one rendered file to a signed-in user or a valid API token."""
    require_session_or_token()
    # Normalize first (x/../work is work), then check: no way up, none into a private folder.
    clean = posixpath.normpath("/" + filename).lstrip("/")
    if not clean or any(part.startswith(".") for part in clean.split("/")):
        abort(404)
    key = public_key(clean)
    if key is None:
        abort(404)
    storage = get_storage()
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            abort(404)
        response = send_file(path, conditional=True, max_age=3600)
        response.headers["Accept-Ranges"] = "bytes"
        response.cache_control.public = False
        response.cache_control.private = True  # signed-in content: browsers may keep it, shared caches not
        return response
    if not storage.exists(key):
        abort(404)
    url = storage.signed_url(key, current_app.config["MEDIA_URL_SECONDS"], filename=key.rsplit("/", 1)[1])
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "private, no-store"
    return response
