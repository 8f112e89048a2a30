"""Batches in the API: `POST /tasks/video/batch` (operator) and `GET /tasks/batches/{id}`."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from webapp.api import contract as c
from webapp.api.auth import api_error
from webapp.api.contract import operation
from webapp.api.views import refused
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.limits import SubmissionRefused, check_active_tasks
from webapp.services import batches

bp = Blueprint("api_batches", __name__, url_prefix="/tasks")
csrf.exempt(bp)
MAX_BATCH_BYTES = 4 * 1024 * 1024  # 500 briefs of up to 8 KB each


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def batch_error(exc: batches.BatchError):
    response = api_error(400, "invalid_request", exc.message, exc.fields)
    body = response.get_json()
    body["errors"] = exc.errors
    response.set_data(json.dumps(body, ensure_ascii=False))
    return response


def envelope_errors(raw: Any) -> dict[str, str] | None:
    """The service's own field messages for an envelope the model refuses."""
    try:
        batches.check(raw)
    except batches.BatchError as exc:
        return exc.fields
    return None


@operation(bp, "POST", "/video/batch", role=Role.OPERATOR, body=c.BatchIn, body_errors=envelope_errors,
           max_body=MAX_BATCH_BYTES,
           headers={"Idempotency-Key": "a retry with the same key returns the same batch (200)"},
           responses={202: c.BatchOut, 200: c.BatchOut, 400: c.BatchErrorOut, 409: c.ErrorOut},
           summary="Submit up to 500 video briefs at once")
def submit_batch(body: c.BatchIn, raw_body: Any):
    """Up to 500 briefs: 202 with batch_id and the task of each index (200 on an idempotent replay)."""
    key = (request.headers.get("Idempotency-Key") or "").strip() or None
    if key is not None and len(key) > 128:
        return api_error(400, "invalid_request", _("Idempotency-Key is too long (128 at most)."),
                         {"Idempotency-Key": _("At most 128 characters.")})
    try:
        checked = batches.check(raw_body)
        batches.within_caps(checked, g.api_token.role)
        if key is None or not batches.key_is_used(key):  # a replay adds no task
            check_active_tasks(_principal(), adding=len(checked.valid))
        answer, created = batches.submit(checked, submitted_by=_principal(), idempotency_key=key)
    except SubmissionRefused as exc:
        return refused(exc)
    except batches.BatchError as exc:
        return batch_error(exc)
    except batches.BatchConflict as exc:
        return api_error(409, "idempotency_conflict",
                         _("This Idempotency-Key was used for a different batch (%(id)s).", id=exc.batch_id))
    response = jsonify(answer)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/tasks/batches/{answer['batch_id']}"
    return response


@operation(bp, "GET", "/batches/<batch_id>", role=Role.VIEWER, responses={200: c.BatchProgressOut, 404: c.ErrorOut},
           summary="A batch's tasks by index, with counts and progress")
def show_batch(batch_id: str):
    """The batch's tasks by index with their state and progress, and the totals."""
    batch = batches.get_batch(batch_id)
    if batch is None:
        return api_error(404, "not_found", _("No batch with id %(id)s.", id=batch_id))
    return jsonify(batches.progress_of(batch))
