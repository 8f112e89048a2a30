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


# --- previews and variants on the dashboard ------------------------------------------------------


@bp.app_context_processor
def variant_helpers() -> dict:
    from webapp.services import variants as variant_service

    def variants_view(task):
        parent, family = variant_service.family_of(task)
        if parent is None:
            return None
        return {"parent": parent, "tasks": family, "kept": variant_service.kept_id(parent)}

    return {"variants_view": variants_view}


@bp.post("/preview")
@role_required(Role.OPERATOR)
def preview():
    """The submit form's Preview button: a preview task of the brief, played inline when ready."""
    from webapp.dashboard.forms import BriefForm
    from webapp.services import tasks as task_service
    from webapp.services import variants as variant_service
    from webapp.services.validation import BriefError

    form = BriefForm.from_request(request.form)
    if not form.errors and form.brief is not None:
        try:
            asset_service.check_asset_refs(form.brief, actor())
        except BriefError as exc:
            form.errors.update(exc.fields)
    if not form.errors:
        from webapp.limits import SubmissionRefused, check_submission

        try:
            check_submission(form.brief, current_user.role, actor().principal)
        except SubmissionRefused as exc:
            form.errors.update(exc.fields or {"brief": exc.message})
    if form.errors:
        return render_template("library/_preview.html", errors=form.errors, task=None), 400
    task, _created = task_service.submit(variant_service.preview_brief(form.brief),
                                         submitted_by=actor().principal)
    if not is_fragment_request():
        return redirect(url_for("dashboard.task_page", task_id=task.id))
    return render_template("library/_preview.html", task=task_service.get_task(task.id), errors={})


@bp.get("/preview/<task_id>")
@login_required
def preview_status(task_id: str):
    """The preview box's poll: 286 (stop polling) once the preview is final."""
    from flask_htmx.constants import HTMX_STOP_POLLING

    from webapp.services import tasks as task_service

    task = task_service.get_task(task_id)
    if task is None or not (task.request.get("config") or {}).get("preview"):
        abort(404)
    html = render_template("library/_preview.html", task=task, errors={})
    return html, 200 if task.is_live else HTMX_STOP_POLLING


@bp.post("/videos/<task_id>/keep")
@role_required(Role.OPERATOR)
def keep_variant(task_id: str):
    """Keep one of a set of variants; the others still waiting or running are cancelled."""
    from webapp.services import tasks as task_service
    from webapp.services import variants as variant_service

    task = task_service.get_task(task_id)
    if task is None:
        abort(404)
    try:
        variant_service.keep(task, by=actor().principal)
    except ValueError:
        abort(400)
    flash(_("Kept %(id)s.", id=task.id), "success")
    return redirect(url_for("dashboard.task_page", task_id=task.id))
