"""Worker fleet endpoints of the JSON API (admin role): control, queue targets, policies, logs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from webapp.admin.forms import form_value
from webapp.api.auth import api_error, require_role
from webapp.api.views import read_json_body
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.services import autoscale
from webapp.services import workers as fleet
from webapp.services.validation import BriefError

bp = Blueprint("api_workers", __name__, url_prefix="/tasks/workers")
csrf.exempt(bp)


def actor() -> str:
    """Who acts: the API token's name."""
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def fleet_error(exc: fleet.FleetError):
    return api_error(exc.status, exc.error, exc.message, exc.fields)


def _json_body() -> tuple[Any, Any]:
    try:
        return read_json_body(), None
    except BriefError as exc:
        return None, api_error(400, "invalid_request", exc.message, exc.fields)


def _limit(default: int = 50) -> int:
    try:
        return max(1, min(500, int(request.args.get("limit", default))))
    except ValueError:
        return default


@bp.get("")
@require_role(Role.ADMIN)
def workers_list():
    """Every worker with its desired and actual state; offline ones marked."""
    return jsonify(fleet.fleet_status(with_ping=request.args.get("ping") in ("1", "true")))


@bp.post("/control")
@require_role(Role.ADMIN)
def workers_control():
    """start / stop / restart / pause / resume one worker."""
    body, error = _json_body()
    if error:
        fleet.audit(actor(), "control", None, None, 400, "The body is not a JSON object.")
        return error
    try:
        status, answer = fleet.control(body, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    response = jsonify(answer)
    response.status_code = status
    return response


@bp.post("/autoscale")
@require_role(Role.ADMIN)
def workers_autoscale():
    """Set how many workers serve a queue; the answer lists what starts and stops."""
    body: dict[str, Any] = {}
    if request.get_data(cache=True).strip():
        parsed, error = _json_body()
        if error:
            return error
        body = parsed if isinstance(parsed, dict) else {}
    queue = request.args.get("queue", body.get("queue"))
    target = body.get("target_workers")
    if "target_workers" in request.args:  # a query string carries text: whole numbers become integers
        target = form_value("target_workers", request.args["target_workers"])
    try:
        answer = autoscale.manual_target(queue, target, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    response = jsonify(answer)
    response.status_code = 202
    return response


@bp.get("/policies")
@require_role(Role.ADMIN)
def policies_list():
    """Autoscale policies, one per queue at most."""
    return jsonify({"policies": [p.to_dict() for p in autoscale.policies()]})


@bp.post("/policies")
@require_role(Role.ADMIN)
def policy_save():
    """Create or replace a queue's autoscale policy."""
    body, error = _json_body()
    if error:
        return error
    try:
        policy = autoscale.save_policy(body, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    return jsonify(policy.to_dict())


@bp.delete("/policies/<queue>")
@require_role(Role.ADMIN)
def policy_delete(queue: str):
    try:
        autoscale.delete_policy(queue, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    return jsonify({"queue": queue, "deleted": True})


@bp.get("/decisions")
@require_role(Role.ADMIN)
def decisions_list():
    """The scaling decision log, newest first."""
    rows = autoscale.recent_decisions(_limit(), request.args.get("queue") or None)
    return jsonify({"decisions": [d.to_dict() for d in rows]})


@bp.get("/audit")
@require_role(Role.ADMIN)
def audit_list():
    """The fleet audit log, newest first."""
    return jsonify({"entries": [a.to_dict() for a in fleet.recent_audit(_limit())]})
