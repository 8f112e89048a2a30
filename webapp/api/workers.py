"""Worker fleet endpoints of the JSON API (admin role): control, queue targets, policies, logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, jsonify

from webapp.admin.forms import form_value
from webapp.api import contract as c
from webapp.api.auth import api_error
from webapp.api.contract import operation
from webapp.catalog import FLEET_OUTCOME_STATUS, Role
from webapp.extensions import csrf
from webapp.services import autoscale
from webapp.services import workers as fleet

bp = Blueprint("api_workers", __name__, url_prefix="/tasks/workers")
csrf.exempt(bp)


def actor() -> str:
    """Who acts: the API token's name."""
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def fleet_error(exc: fleet.FleetError):
    """The API's answer to a refused fleet request: the status its outcome code maps to."""
    return api_error(FLEET_OUTCOME_STATUS[exc.error], exc.error, exc.message, exc.fields)


def _audit_refused(action: str) -> Callable[[Any], None]:
    """A body the contract refuses is audited like one a service refuses."""

    def audit(raw: Any) -> None:
        target = raw.get("worker_id") if isinstance(raw, dict) and isinstance(raw.get("worker_id"), str) else None
        fleet.audit(actor(), action, target, raw if isinstance(raw, dict) else None, "invalid_request",
                    "The body does not match the API contract.")

    return audit


@operation(bp, "GET", "", role=Role.ADMIN, query=c.WorkersArgs, responses={200: c.FleetOut},
           summary="The worker fleet: pools, workers, supervisors")
def workers_list(query: c.WorkersArgs):
    """Every worker with its desired and actual state; offline ones marked."""
    return jsonify(fleet.fleet_status(with_ping=query.ping in ("1", "true")))


@operation(bp, "POST", "/control", role=Role.ADMIN, body=c.ControlIn, body_errors=_audit_refused("control"),
           responses={202: c.ControlOut, 404: c.ErrorOut, 409: c.ErrorOut},
           summary="Start, stop, restart, pause, resume or resize a worker")
def workers_control(body: c.ControlIn, raw_body: Any):
    """start / stop / restart / pause / resume one worker."""
    try:
        answer = fleet.control(raw_body, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    response = jsonify(answer)
    response.status_code = FLEET_OUTCOME_STATUS["accepted"]
    return response


@operation(bp, "POST", "/autoscale", role=Role.ADMIN, query=c.AutoscaleArgs, body=c.AutoscaleIn,
           body_optional=True, responses={202: c.AutoscaleOut},
           summary="Set how many workers serve a queue (body, or query parameters)")
def workers_autoscale(query: c.AutoscaleArgs, body: c.AutoscaleIn | None, raw_body: Any):
    """Set how many workers serve a queue; the answer lists what starts and stops."""
    queue = query.queue if query.queue is not None else (body.queue if body else None)
    target: Any = body.target_workers if body else None
    if query.target_workers is not None:  # query text: whole numbers become integers, the rest is refused
        target = form_value("target_workers", query.target_workers)
    try:
        answer = autoscale.manual_target(queue, target, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    response = jsonify(answer)
    response.status_code = 202
    return response


@operation(bp, "GET", "/policies", role=Role.ADMIN, responses={200: c.PoliciesOut},
           summary="Autoscale policies")
def policies_list():
    """Autoscale policies, one per queue at most."""
    return jsonify({"policies": [p.to_dict() for p in autoscale.policies()]})


@operation(bp, "POST", "/policies", role=Role.ADMIN, body=c.PolicyIn, body_errors=_audit_refused("policy"),
           responses={200: c.PolicyOut}, summary="Create or replace a queue's autoscale policy")
def policy_save(body: c.PolicyIn, raw_body: Any):
    """Create or replace a queue's autoscale policy."""
    try:
        policy = autoscale.save_policy(raw_body, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    return jsonify(policy.to_dict())


@operation(bp, "DELETE", "/policies/<queue>", role=Role.ADMIN,
           responses={200: c.PolicyDeletedOut, 400: c.ErrorOut, 404: c.ErrorOut},
           summary="Remove a queue's autoscale policy")
def policy_delete(queue: str):
    try:
        autoscale.delete_policy(queue, actor())
    except fleet.FleetError as exc:
        return fleet_error(exc)
    return jsonify({"queue": queue, "deleted": True})


@operation(bp, "GET", "/decisions", role=Role.ADMIN, query=c.DecisionArgs, responses={200: c.DecisionsOut},
           summary="The scaling decision log, newest first")
def decisions_list(query: c.DecisionArgs):
    """The scaling decision log, newest first."""
    rows = autoscale.recent_decisions(query.limit, query.queue or None)
    return jsonify({"decisions": [d.to_dict() for d in rows]})


@operation(bp, "GET", "/audit", role=Role.ADMIN, query=c.LimitArgs, responses={200: c.AuditListOut},
           summary="The fleet audit log, newest first")
def audit_list(query: c.LimitArgs):
    """The fleet audit log, newest first."""
    return jsonify({"entries": [a.to_dict() for a in fleet.recent_audit(query.limit)]})
