"""The admin page: the worker fleet, live, with its controls, queue targets, policies and logs.

Thin: every action goes through the same services as the JSON API (webapp/services/workers.py
and autoscale.py), which validate, write desired state and audit. htmx requests get fragments;
plain form posts (no JavaScript) redirect back to the page with a flash message.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from webapp.access import role_required
from webapp.admin.forms import control_body, form_value, policy_body
from webapp.catalog import QUEUES, Role
from webapp.dashboard.views import is_fragment_request
from webapp.services import autoscale, broker
from webapp.services import workers as fleet

bp = Blueprint("admin", __name__, url_prefix="/admin")
#: Seconds between refreshes of the fleet table and the logs (workers are always live).
FLEET_POLL_SECONDS = 3
LOG_POLL_SECONDS = 6
FLEET_CHANGED = "aura:fleet-changed"


def actor() -> str:
    return f"user:{current_user.username}"


def fleet_context() -> dict[str, Any]:
    status = fleet.fleet_status(with_ping=False)
    rows: list[dict[str, Any]] = []
    for pool in status["pools"]:
        slots = [w for w in status["workers"] if w["pool"] == pool["worker_id"]]
        rows.append({"pool": pool, "slots": slots})
    return {"status": status, "rows": rows, "fleet_poll": FLEET_POLL_SECONDS}


def queues_context() -> dict[str, Any]:
    depths = broker.queue_depths()
    policies = {p.queue: p for p in autoscale.policies()}
    serving = {q: fleet.workers_serving(q) for q in QUEUES}
    queues = [{"name": name, "spec": spec, "waiting": sum(depths[name].values()) if depths else None,
               "workers": serving[name], "policy": policies.get(name)}
              for name, spec in sorted(QUEUES.items(), key=lambda kv: -kv[1].priority)]
    return {"queues": queues}


def logs_context() -> dict[str, Any]:
    return {"decisions": autoscale.recent_decisions(30), "audit": fleet.recent_audit(30),
            "log_poll": LOG_POLL_SECONDS}


@bp.get("")
@role_required(Role.ADMIN)
def fleet_page():
    """The whole admin page."""
    return render_template("admin/page.html", queue_names=list(QUEUES), **fleet_context(),
                           **queues_context(), **logs_context())


@bp.get("/fleet")
@role_required(Role.ADMIN)
def fleet_fragment():
    """The polled fleet table."""
    if not is_fragment_request():
        return redirect(url_for("admin.fleet_page"))
    return render_template("admin/_fleet.html", **fleet_context())


@bp.get("/logs")
@role_required(Role.ADMIN)
def logs_fragment():
    """The polled decision and audit logs."""
    if not is_fragment_request():
        return redirect(url_for("admin.fleet_page"))
    return render_template("admin/_logs.html", **logs_context())


def answer(template: str, context: dict[str, Any], notice: str, ok: bool):
    """The fragment with a notice for htmx (and a refresh of the others); else a redirect."""
    if not is_fragment_request():
        flash(notice, "success" if ok else "error")
        return redirect(url_for("admin.fleet_page"))
    response = make_response(render_template(template, notice=notice, notice_ok=ok, **context))
    response.headers["HX-Trigger"] = FLEET_CHANGED
    return response


@bp.post("/control")
@role_required(Role.ADMIN)
def workers_control():
    """Start, stop, restart, pause or resume a worker from the page."""
    try:
        result = fleet.control(control_body(request.form), actor())
        notice, ok = result["message"], True
    except fleet.FleetError as exc:
        notice, ok = exc.message, False
    return answer("admin/_fleet.html", fleet_context(), notice, ok)


@bp.post("/queues/<queue>/target")
@role_required(Role.ADMIN)
def queue_target(queue: str):
    """Set how many workers serve one queue."""
    try:
        result = autoscale.manual_target(queue, form_value("target_workers", request.form.get("target_workers", "")),
                                         actor())
        notice, ok = result["message"], True
    except fleet.FleetError as exc:
        notice, ok = exc.message, False
    return answer("admin/_queues.html", queues_context(), notice, ok)


@bp.post("/queues/<queue>/policy")
@role_required(Role.ADMIN)
def queue_policy(queue: str):
    """Save (or remove) the autoscale policy of one queue."""
    try:
        if request.form.get("remove"):
            autoscale.delete_policy(queue, actor())
            notice = _("Autoscale policy of %(q)s removed.", q=queue)
        else:
            policy = autoscale.save_policy(policy_body(queue, request.form), actor())
            notice = _("Autoscale policy of %(q)s saved (%(state)s).", q=queue,
                       state=_("enabled") if policy.enabled else _("disabled"))
        ok = True
    except fleet.FleetError as exc:
        notice, ok = exc.message, False
    return answer("admin/_queues.html", queues_context(), notice, ok)
