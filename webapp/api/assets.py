"""The media library's JSON API under /assets, for scripts (bearer token) and the dashboard's library
page (signed-in session, CSRF header). Thin: parse, call webapp/services/assets.py, answer JSON.
Each operation is declared in the contract (webapp/api/contract.py) with `actor_required` as its guard."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, redirect, request, send_file
from flask_babel import gettext as _
from flask_login import current_user

from webapp.api import contract as c
from webapp.api.auth import api_error, bearer_token
from webapp.api.contract import operation
from webapp.catalog import Role
from webapp.extensions import csrf, db
from webapp.limits import api_read_limit, api_write_limit
from webapp.models import ApiToken, User
from webapp.services import assets as asset_service
from webapp.services.auth import authenticate
from webapp.storage import LocalStorage, StorageError, get_storage

bp = Blueprint("assets", __name__, url_prefix="/assets")
csrf.exempt(bp)  # bearer requests carry no cookie; session requests are checked in `actor_required`
#: Room for the multipart envelope around the largest accepted file.
ENVELOPE_BYTES = 1024 * 1024


@bp.before_request
def allow_uploads() -> None:
    """The app refuses bodies over 64 KB; an upload may be as large as ASSET_MAX_BYTES. Set before
    anything (the session's CSRF check included) reads the form."""
    if request.method == "POST" and request.endpoint == "assets.upload":
        request.max_content_length = current_app.config["ASSET_MAX_BYTES"] + ENVELOPE_BYTES


def token_principal(token) -> str:
    """A token made by a dashboard user acts as that user; other tokens as themselves."""
    row = db.session.get(ApiToken, token.id)
    if row is not None and row.user_id is not None:
        user = db.session.get(User, row.user_id)
        if user is not None:
            return f"user:{user.username}"
    return f"token:{token.name}"


def actor_required(role: Role) -> Callable:
    """Decorator: a bearer token or a signed-in user whose role includes `role`; sets g.actor."""

    def decorator(view: Callable) -> Callable:
        limited = api_write_limit(api_read_limit(view))  # a token's read and write rates, as elsewhere

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            raw = bearer_token()
            token = None
            if raw:
                token = authenticate(raw)
                if token is None:
                    return api_error(401, "unauthorized", _("A valid API token is required (Authorization: Bearer <token>)."))
                have, principal = token.role, token_principal(token)
            elif current_user.is_authenticated:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    csrf.protect()
                have, principal = current_user.role, f"user:{current_user.username}"
            else:
                return api_error(401, "unauthorized", _("A valid API token is required (Authorization: Bearer <token>)."))
            if not Role(have).allows(role):
                return api_error(403, "forbidden", _("This token's role (%(have)s) cannot do this; it needs %(need)s.",
                                                     have=have, need=role.value))
            g.actor = asset_service.Actor(principal, Role(have).allows(Role.ADMIN))
            if token is not None:
                g.api_token = token
                return limited(*args, **kwargs)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _not_found(asset_id: str):
    return api_error(404, "not_found", _("No asset with id %(id)s.", id=asset_id))


NOT_FOUND = {404: c.ErrorOut}


@operation(bp, "POST", "", role=Role.OPERATOR, guard=actor_required, form=c.AssetUploadForm,
           responses={201: c.AssetOut}, summary="Upload a file to the media library")
def upload():
    """Take in one file (multipart field `file`, optional `tags`, `shared`, `kind`, `text`)."""
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return api_error(400, "invalid_request", _("Send the file as multipart/form-data in the field 'file'."),
                         {"file": _("A file is required.")})
    try:
        asset = asset_service.ingest_stream(
            upload_file.stream, upload_file.filename, g.actor, tags=request.form.get("tags"),
            shared=request.form.get("shared"), kind=request.form.get("kind"), text=request.form.get("text"))
    except asset_service.AssetRejected as exc:
        error = "payload_too_large" if exc.status == 413 else "invalid_asset"
        return api_error(exc.status, error, exc.message, {exc.field: exc.message})
    response = jsonify(asset.to_dict())
    response.status_code = 201
    response.headers["Location"] = f"/assets/{asset.id}"
    return response


@operation(bp, "GET", "", role=Role.VIEWER, guard=actor_required, query=c.AssetsArgs,
           responses={200: c.AssetsOut}, summary="Visible assets, newest first")
def listing(query: c.AssetsArgs):
    """Visible assets, newest first, filtered by kind, tag and text, paged by limit/offset."""
    try:
        rows, total, next_offset = asset_service.list_assets(
            g.actor, kind=query.kind, tag=query.tag, text=query.q or query.text, limit=query.limit,
            offset=query.offset)
    except asset_service.ListError as exc:
        return api_error(400, "invalid_request", _("Invalid filter."), exc.fields)
    return jsonify({"assets": [a.to_dict() for a in rows], "count": len(rows), "total": total,
                    "next_offset": next_offset})


@operation(bp, "GET", "/<asset_id>", role=Role.VIEWER, guard=actor_required,
           responses={200: c.AssetDetailOut, **NOT_FOUND}, summary="One asset and the active tasks using it")
def detail(asset_id: str):
    asset = asset_service.get_asset(asset_id, g.actor)
    if asset is None:
        return _not_found(asset_id)
    body = asset.to_dict()
    body["used_by"] = asset_service.tasks_using(asset.id)
    return jsonify(body)


@operation(bp, "DELETE", "/<asset_id>", role=Role.OPERATOR, guard=actor_required,
           responses={200: c.AssetDeletedOut, **NOT_FOUND, 409: c.ErrorOut}, summary="Delete an asset")
def delete(asset_id: str):
    """Delete one's own asset (admins: any); 409 while a waiting or running task uses it."""
    asset = asset_service.get_asset(asset_id, g.actor)
    if asset is None:
        return _not_found(asset_id)
    if not (g.actor.is_admin or asset.owner == g.actor.principal):
        return api_error(403, "forbidden", _("Only the owner of a shared asset may delete it."))
    try:
        asset_service.delete_asset(asset)
    except asset_service.AssetInUse as exc:
        return api_error(409, "asset_in_use",
                         _("The asset is used by tasks that are waiting or running: %(ids)s.", ids=", ".join(exc.task_ids)),
                         {"asset": ", ".join(exc.task_ids)})
    return jsonify({"id": asset_id, "deleted": True})


FILE_ANSWERS = {200: c.Binary, 302: None, **NOT_FOUND}


@operation(bp, "GET", "/<asset_id>/file", role=Role.VIEWER, guard=actor_required, responses=FILE_ANSWERS,
           summary="The asset's bytes (Range requests; a presigned URL from object storage)")
def file(asset_id: str):
    return content(asset_id, "file")


@operation(bp, "GET", "/<asset_id>/thumbnail", role=Role.VIEWER, guard=actor_required, responses=FILE_ANSWERS,
           summary="The asset's JPEG thumbnail (a presigned URL from object storage)")
def thumbnail(asset_id: str):
    return content(asset_id, "thumbnail")


def content(asset_id: str, part: str):
    """The asset's bytes or thumbnail: streamed with Range from a local store, else a presigned URL."""
    asset = asset_service.get_asset(asset_id, g.actor)
    if asset is None or (part == "thumbnail" and not asset.has_thumbnail):
        abort(404)
    key = asset.storage_key if part == "file" else asset.thumbnail_key
    name = asset.original_name if part == "file" else f"{asset.id}-thumb.jpg"
    storage = get_storage()
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            abort(404)
        response = send_file(path, conditional=True, max_age=3600, download_name=name)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response
    try:
        url = storage.signed_url(key, current_app.config["MEDIA_URL_SECONDS"], filename=name)
    except StorageError:
        abort(404)
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "private, no-store"
    return response
