"""Batches in the API: `POST /tasks/video/batch` (operator) and `GET /tasks/batches/{id}`."""

from __future__ import annotations

import json

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from webapp.api.auth import api_error, require_role
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.services import batches

bp = Blueprint("api_batches", __name__, url_prefix="/tasks")
csrf.exempt(bp)
MAX_BATCH_BYTES = 4 * 1024 * 1024  # 500 briefs of up to 8 KB each


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def read_batch_body() -> object:
    """The JSON body of a batch (up to 4 MB); raises BatchError otherwise."""
    request.max_content_length = MAX_BATCH_BYTES
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise batches.BatchError(_("The body is empty; send a JSON object."), {"body": _("JSON object expected")})
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise batches.BatchError(_("The body is not valid JSON."), {"body": str(exc)}) from None


def batch_error(exc: batches.BatchError):
    response = api_error(400, "invalid_request", exc.message, exc.fields)
    body = response.get_json()
    body["errors"] = exc.errors
    response.set_data(json.dumps(body, ensure_ascii=False))
    return response


@bp.post("/video/batch")
@require_role(Role.OPERATOR)
def submit_batch():
    """Up to 500 briefs: 202 with batch_id and the task of each index (200 on an idempotent replay)."""
    key = (request.headers.get("Idempotency-Key") or "").strip() or None
    if key is not None and len(key) > 128:
        return api_error(400, "invalid_request", _("Idempotency-Key is too long (128 at most)."),
                         {"Idempotency-Key": _("At most 128 characters.")})
    try:
        checked = batches.check(read_batch_body())
        body, created = batches.submit(checked, submitted_by=_principal(), idempotency_key=key)
    except batches.BatchError as exc:
        return batch_error(exc)
    except batches.BatchConflict as exc:
        return api_error(409, "idempotency_conflict",
                         _("This Idempotency-Key was used for a different batch (%(id)s).", id=exc.batch_id))
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/tasks/batches/{body['batch_id']}"
    return response


@bp.get("/batches/<batch_id>")
@require_role(Role.VIEWER)
def show_batch(batch_id: str):
    """The batch's tasks by index with their state and progress, and the totals."""
    batch = batches.get_batch(batch_id)
    if batch is None:
        return api_error(404, "not_found", _("No batch with id %(id)s.", id=batch_id))
    return jsonify(batches.progress_of(batch))
