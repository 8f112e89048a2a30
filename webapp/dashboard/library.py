"""The dashboard's media library page: upload (drag and drop, a progress bar per file), a grid of
thumbnails with playback, tags, filters and delete. Uploads go to the JSON API (`POST /assets`)
from static/library.js; this module renders the page and its grid fragment."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from webapp.catalog import Role
from webapp.dashboard.views import is_fragment_request, role_required
from webapp.services import assets as asset_service

bp = Blueprint("library", __name__)

KIND_LABELS = {"image": _l("image"), "clip": _l("clip"), "audio": _l("audio"), "logo": _l("logo"),
               "font": _l("font")}


@bp.app_context_processor
def library_helpers() -> dict:
    return {"asset_kind_label": lambda kind: str(KIND_LABELS.get(kind, kind))}


def actor() -> asset_service.Actor:
    return asset_service.Actor(f"user:{current_user.username}", current_user.can(Role.ADMIN))


@bp.get("/library")
@login_required
def library():
    """The library: every asset the user may see, newest first, filtered by kind, tag and text."""
    args = request.args
    errors: dict[str, str] = {}
    try:
        rows, total, next_offset = asset_service.list_assets(
            actor(), kind=args.get("kind") or None, tag=args.get("tag"), text=args.get("q"),
            limit=args.get("limit"), offset=args.get("offset"))
    except asset_service.ListError as exc:
        errors = exc.fields
        rows, total, next_offset = [], 0, None
    context = dict(assets=rows, total=total, next_offset=next_offset, args=args, errors=errors,
                   kinds=asset_service.KINDS, me=actor().principal,
                   accept=",".join(f".{ext}" for ext in sorted(asset_service.EXTENSIONS)))
    if is_fragment_request():
        return render_template("library/_grid.html", **context)
    return render_template("library/library.html", **context), 400 if errors else 200


@bp.post("/library/<asset_id>/delete")
@role_required(Role.OPERATOR)
def delete(asset_id: str):
    """Delete one asset from the page (the owner, or an admin)."""
    me = actor()
    asset = asset_service.get_asset(asset_id, me)
    if asset is None:
        abort(404)
    if not (me.is_admin or asset.owner == me.principal):
        abort(403)
    try:
        asset_service.delete_asset(asset)
    except asset_service.AssetInUse as exc:
        flash(_("%(name)s is used by tasks that are waiting or running: %(ids)s.", name=asset.original_name,
                ids=", ".join(exc.task_ids)), "error")
    else:
        flash(_("Deleted %(name)s.", name=asset.original_name), "success")
    return redirect(url_for("library.library"))
