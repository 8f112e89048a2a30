"""The JSON API of SPEC.md, for scripts. Thin: parse, call a service, answer JSON."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify, request
from flask_babel import gettext as _

from webapp.api.auth import api_error, require_role
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.messages import localized_message
from webapp.services import assets as asset_service
from webapp.services import queues as queue_service
from webapp.services import tasks as task_service
from webapp.services import variants as variant_service
from webapp.services.validation import BriefError, validate_brief

bp = Blueprint("api", __name__, url_prefix="/tasks")
csrf.exempt(bp)


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def api_actor():
    """The request's token as the media library sees it (whose assets it may use)."""
    from webapp.api.assets import token_principal

    token = g.get("api_token")
    return asset_service.Actor(token_principal(token), token.can(Role.ADMIN))


def _task_or_404(task_id: str):
    task = task_service.get_task(task_id)
    if task is None:
        return None, api_error(404, "not_found", _("No task with id %(id)s.", id=task_id))
    return task, None


def read_json_body() -> object:
    """The request body parsed as JSON; raises BriefError with a clear message otherwise."""
    raw = request.get_data(cache=False)
    if len(raw) > current_app.config["MAX_CONTENT_LENGTH"]:
        raise BriefError({"body": _("The body is larger than 64 KB.")})
    if not raw.strip():
        raise BriefError({"body": _("The body is empty; send a JSON object.")},
                         _("The body must be a JSON object."))
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BriefError({"body": str(exc)}, _("The body is not valid JSON.")) from None


@bp.post("/video/async")
@require_role(Role.OPERATOR)
def video_submit():
    """Submit a brief: 202 with the new task, 200 when an Idempotency-Key replays one."""
    try:
        brief = validate_brief(read_json_body())
        asset_service.check_asset_refs(brief, api_actor())
    except BriefError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    key = (request.headers.get("Idempotency-Key") or "").strip() or None
    if key is not None and len(key) > 128:
        return api_error(400, "invalid_request", _("Idempotency-Key is too long (128 at most)."),
                         {"Idempotency-Key": _("At most 128 characters.")})
    try:
        task, created = task_service.submit(brief, submitted_by=_principal(), idempotency_key=key)
    except task_service.IdempotencyConflict as exc:
        return api_error(409, "idempotency_conflict",
                         _("This Idempotency-Key was used for a different request (task %(id)s).", id=exc.task_id))
    body = {
        "task_id": task.id,
        "status": task.status,
        "priority": task.priority,
        "estimated_duration": task.estimated_duration,
        "message": _("Video generation task submitted, priority: %(p)s", p=task.priority.upper()),
        "timestamp": task_service.api_timestamp(),
    }
    if brief["config"].get("variants", 1) > 1:
        body["variants"] = (variant_service.spawn_variants(task, _principal()) if created
                            else variant_service.variant_ids(task))
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/tasks/status/{task.id}"
    return response


@bp.post("/video/preview")
@require_role(Role.OPERATOR)
def video_preview():
    """A preview of a brief (the same body as a submit): its first 10 s at 360 px on the short side."""
    try:
        brief = validate_brief(read_json_body())
        asset_service.check_asset_refs(brief, api_actor())
    except BriefError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    task, _created = task_service.submit(variant_service.preview_brief(brief), submitted_by=_principal())
    response = jsonify({"task_id": task.id, "status": task.status, "priority": task.priority,
                        "resolution": task.resolution, "preview_seconds": variant_service.PREVIEW_SECONDS,
                        "estimated_duration": task.estimated_duration,
                        "timestamp": task_service.api_timestamp()})
    response.status_code = 202
    response.headers["Location"] = f"/tasks/status/{task.id}"
    return response


@bp.get("/status/<task_id>")
@require_role(Role.VIEWER)
def task_status(task_id: str):
    """The status document of one task."""
    task, error = _task_or_404(task_id)
    if error:
        return error
    body = task.to_status()
    body["message"] = localized_message(task)
    return jsonify(body)


@bp.get("/<task_id>/events")
@require_role(Role.VIEWER)
def task_events(task_id: str):
    """A task's timeline, oldest first."""
    task, error = _task_or_404(task_id)
    if error:
        return error
    return jsonify({"task_id": task.id, "events": [e.to_dict() for e in task_service.events_of(task.id)]})


@bp.post("/<task_id>/cancel")
@require_role(Role.OPERATOR)
def task_cancel(task_id: str):
    """Cancel a waiting or running task."""
    task, error = _task_or_404(task_id)
    if error:
        return error
    if not task_service.cancel(task, by=_principal()):
        return api_error(409, "not_cancellable",
                         _("Task %(id)s is already %(status)s.", id=task.id, status=task.status))
    message = _("Cancelled.") if task.status == "cancelled" else _("Cancellation requested; the worker stops within seconds.")
    return jsonify({"task_id": task.id, "status": task.status, "cancel_requested": True, "message": message})


@bp.get("/queue/status")
@require_role(Role.VIEWER)
def queue_status():
    """Every queue's depth, workers, wait age and throughput."""
    return jsonify(queue_service.queue_status())


@bp.get("/history")
@require_role(Role.VIEWER)
def task_history():
    """Past and present tasks, newest first, filtered, with a cursor for the next page."""
    try:
        query = task_service.HistoryQuery.from_args(request.args)
    except task_service.HistoryError as exc:
        return api_error(400, "invalid_request", _("Invalid history filter."), exc.fields)
    rows, next_cursor = task_service.history(query)
    return jsonify({"tasks": [t.to_summary() for t in rows], "count": len(rows),
                    "limit": query.limit, "next_cursor": next_cursor})
