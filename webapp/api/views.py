"""The JSON API of SPEC.md, for scripts. Thin: parse, call a service, answer JSON."""

from __future__ import annotations

import json
import re

from flask import Blueprint, current_app, g, jsonify, request
from flask_babel import gettext as _

from webapp.api import contract as c
from webapp.api.auth import api_error
from webapp.api.contract import operation
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.limits import SubmissionRefused, check_submission
from webapp.messages import localized_message
from webapp.services import assets as asset_service
from webapp.services import queues as queue_service
from webapp.services import tasks as task_service
from webapp.services import variants as variant_service
from webapp.services import webhooks
from webapp.services.validation import BriefError, json_has_surrogates, validate_brief

bp = Blueprint("api", __name__, url_prefix="/tasks")
#: Retry-After of a submission refused for too many active tasks.
ACTIVE_RETRY_SECONDS = 30
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,128}")
csrf.exempt(bp)


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def api_actor():
    """The request's token as the media library sees it (whose assets it may use)."""
    from webapp.api.assets import token_principal

    token = g.get("api_token")
    return asset_service.Actor(token_principal(token), token.can(Role.ADMIN))


def refused(exc: SubmissionRefused):
    """The answer to a brief over the submitter's caps: 400, or 429 with Retry-After."""
    response = api_error(exc.status, exc.error, exc.message, exc.fields)
    if exc.status == 429:
        response.headers["Retry-After"] = str(ACTIVE_RETRY_SECONDS)
    return response


def _task_or_404(task_id: str):
    task = task_service.get_task(task_id)
    if task is None:
        return None, api_error(404, "not_found", _("No task with id %(id)s.", id=task_id))
    return task, None


def read_json_body(limit: int | None = None) -> object:
    """The request body (at most `limit` bytes, 64 KB by default) parsed as JSON; raises BriefError
    with a clear message otherwise."""
    raw = request.get_data(cache=False)
    if limit is not None and len(raw) > limit:
        raise BriefError({"body": _("The body is larger than %(n)s MB.", n=limit // (1024 * 1024))})
    if limit is None and len(raw) > current_app.config["MAX_CONTENT_LENGTH"]:
        raise BriefError({"body": _("The body is larger than 64 KB.")})
    if not raw.strip():
        raise BriefError({"body": _("The body is empty; send a JSON object.")},
                         _("The body must be a JSON object."))
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BriefError({"body": str(exc)}, _("The body is not valid JSON.")) from None
    except RecursionError:
        raise BriefError({"body": _("The JSON is nested too deeply.")}, _("The body is not valid JSON.")) from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise BriefError({"body": _("A number in the JSON is too large.")},
                         _("The body is not valid JSON.")) from None
    if json_has_surrogates(raw, body):
        raise BriefError({"body": _("The JSON holds a lone surrogate (\\ud800-\\udfff), which is not text.")},
                         _("The body is not valid JSON.")) from None
    return body


def split_callback(body: object) -> tuple[str, str] | None:
    """Take the optional top-level `callback_url` out of a submit body: (endpoint id, url) of the
    enabled registered endpoint with its origin; BriefError when there is none."""
    if not isinstance(body, dict) or "callback_url" not in body:
        return None
    url = body.pop("callback_url")
    if url is None:
        return None
    try:
        endpoint = webhooks.endpoint_for_callback(url)
    except webhooks.WebhookError as exc:
        raise BriefError(exc.fields, exc.message) from None
    return endpoint.id, url


def brief_errors(raw: object) -> dict[str, str] | None:
    """The brief's own (translated) messages for a body the model refuses."""
    try:
        validate_brief(raw)
    except BriefError as exc:
        return exc.fields
    return None


@operation(bp, "POST", "/video/async", role=Role.OPERATOR, body=c.BriefIn, body_errors=brief_errors,
           headers={"Idempotency-Key": "a retry with the same key returns the same task (200)"},
           responses={202: c.SubmitOut, 200: c.SubmitOut, 409: c.ErrorOut},
           summary="Submit a video brief")
def video_submit(body: c.BriefIn, raw_body: object):
    """Submit a brief: 202 with the new task, 200 when an Idempotency-Key replays one."""
    try:
        callback = split_callback(raw_body)
        brief = validate_brief(raw_body)
        asset_service.check_asset_refs(brief, api_actor())
    except BriefError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    key = request.headers.get("Idempotency-Key") or None  # empty: no key
    if key is not None and len(key) > 128:
        return api_error(400, "invalid_request", _("Idempotency-Key is too long (128 at most)."),
                         {"Idempotency-Key": _("At most 128 characters.")})
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        return api_error(400, "invalid_request", _("Idempotency-Key must be printable ASCII without spaces."),
                         {"Idempotency-Key": _("Printable ASCII without spaces.")})
    try:
        check_submission(brief, g.api_token.role, _principal())
    except SubmissionRefused as exc:
        return refused(exc)
    try:
        task, created = task_service.submit(brief, submitted_by=_principal(), idempotency_key=key,
                                            callback=callback)
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


@operation(bp, "POST", "/video/preview", role=Role.OPERATOR, body=c.BriefIn, body_errors=brief_errors,
           responses={202: c.PreviewOut}, summary="Preview a brief: its first 10 s at 360 px on the short side")
def video_preview(body: c.BriefIn, raw_body: object):
    """A preview of a brief (the same body as a submit): its first 10 s at 360 px on the short side."""
    try:
        brief = validate_brief(raw_body)
        asset_service.check_asset_refs(brief, api_actor())
    except BriefError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    try:
        check_submission(brief, g.api_token.role, _principal())
    except SubmissionRefused as exc:
        return refused(exc)
    task, _created = task_service.submit(variant_service.preview_brief(brief), submitted_by=_principal())
    response = jsonify({"task_id": task.id, "status": task.status, "priority": task.priority,
                        "resolution": task.resolution, "preview_seconds": variant_service.PREVIEW_SECONDS,
                        "estimated_duration": task.estimated_duration,
                        "timestamp": task_service.api_timestamp()})
    response.status_code = 202
    response.headers["Location"] = f"/tasks/status/{task.id}"
    return response


@operation(bp, "GET", "/status/<task_id>", role=Role.VIEWER, responses={200: c.StatusOut, 404: c.ErrorOut},
           summary="One task's status")
def task_status(task_id: str):
    """The status document of one task."""
    task, error = _task_or_404(task_id)
    if error:
        return error
    body = task.to_status(tracebacks=g.api_token.can(Role.ADMIN))
    body["message"] = localized_message(task)
    return jsonify(body)


@operation(bp, "GET", "/<task_id>/events", role=Role.VIEWER, responses={200: c.EventsOut, 404: c.ErrorOut},
           summary="One task's timeline")
def task_events(task_id: str):
    """A task's timeline, oldest first."""
    task, error = _task_or_404(task_id)
    if error:
        return error
    tracebacks = g.api_token.can(Role.ADMIN)
    return jsonify({"task_id": task.id,
                    "events": [e.to_dict(tracebacks) for e in task_service.events_of(task.id)]})


@operation(bp, "POST", "/<task_id>/cancel", role=Role.OPERATOR,
           responses={200: c.CancelOut, 404: c.ErrorOut, 409: c.ErrorOut}, summary="Cancel a task")
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


@operation(bp, "GET", "/queue/status", role=Role.VIEWER, responses={200: c.QueueStatusOut},
           summary="Queues: depth, workers, wait, throughput")
def queue_status():
    """Every queue's depth, workers, wait age and throughput."""
    return jsonify(queue_service.queue_status())


@operation(bp, "GET", "/history", role=Role.VIEWER, query=c.HistoryArgs, responses={200: c.HistoryOut},
           summary="Past and present tasks, newest first")
def task_history(query: c.HistoryArgs):
    """Past and present tasks, newest first, filtered, with a cursor for the next page."""
    try:
        query = task_service.HistoryQuery.from_args(request.args)  # the filters' meaning
    except task_service.HistoryError as exc:
        return api_error(400, "invalid_request", _("Invalid history filter."), exc.fields)
    rows, next_cursor = task_service.history(query)
    return jsonify({"tasks": [t.to_summary() for t in rows], "count": len(rows),
                    "limit": query.limit, "next_cursor": next_cursor})
