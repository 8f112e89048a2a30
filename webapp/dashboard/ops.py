"""Pages for operators and admins: webhooks in Settings, batch uploads on the dashboard, alerts and
deliveries shown where people look. Thin: the same services as the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.catalog import Role
from webapp.dashboard.views import is_fragment_request, principal, role_required
from webapp.limits import SubmissionRefused, check_active_tasks
from webapp.services import alerts, batches, webhooks

bp = Blueprint("ops", __name__)
HTMX_STOP_POLLING = 286
MAX_UPLOAD_BYTES = 4 * 1024 * 1024


# --- webhooks (Settings, admin) ----------------------------------------------------------------------

def render_webhooks(status: int = 200, **context: Any):
    return render_template("ops/webhooks.html", endpoints=webhooks.list_endpoints(), events=webhooks.EVENTS,
                           default_events=webhooks.DEFAULT_EVENTS, **context), status


@bp.get("/settings/webhooks")
@role_required(Role.ADMIN)
def webhooks_page():
    return render_webhooks()


@bp.post("/settings/webhooks")
@role_required(Role.ADMIN)
def webhooks_create():
    body = {"url": request.form.get("url", "").strip(), "events": request.form.getlist("events"),
            "description": request.form.get("description", "").strip()}
    try:
        values = webhooks.parse_endpoint(body)
    except webhooks.WebhookError as exc:
        return render_webhooks(400, error=exc.message, form=body)
    endpoint, secret = webhooks.create_endpoint(values, principal())
    return render_webhooks(201, created=endpoint, secret=secret)


def _endpoint(endpoint_id: str):
    endpoint = webhooks.get_endpoint(endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.post("/settings/webhooks/<endpoint_id>/<action>")
@role_required(Role.ADMIN)
def webhooks_action(endpoint_id: str, action: str):
    """enable, disable, rotate, test or delete one endpoint."""
    endpoint = _endpoint(endpoint_id)
    if action == "rotate":
        return render_webhooks(created=endpoint, secret=webhooks.rotate_secret(endpoint), rotated=True)
    if action in ("enable", "disable"):
        webhooks.update_endpoint(endpoint, {"enabled": action == "enable"})
        flash(_("Webhook enabled.") if action == "enable" else _("Webhook disabled."), "success")
    elif action == "test":
        delivery = webhooks.send_test(endpoint)
        if delivery.status == "delivered":
            flash(_("Test ping delivered (HTTP %(code)s).", code=delivery.response_code), "success")
        else:
            flash(_("Test ping failed: %(error)s", error=delivery.last_error or "?"), "error")
    elif action == "delete":
        webhooks.delete_endpoint(endpoint)
        flash(_("Webhook deleted."), "success")
    else:
        abort(404)
    return redirect(url_for("ops.webhooks_page"))


@bp.get("/settings/webhooks/<endpoint_id>")
@role_required(Role.ADMIN)
def webhook_deliveries(endpoint_id: str):
    endpoint = _endpoint(endpoint_id)
    return render_template("ops/deliveries.html", endpoint=endpoint,
                           deliveries=webhooks.deliveries_of(endpoint_id=endpoint.id, limit=200))


@bp.post("/settings/webhooks/<endpoint_id>/deliveries/<delivery_id>/redeliver")
@role_required(Role.ADMIN)
def webhook_redeliver(endpoint_id: str, delivery_id: str):
    delivery = webhooks.get_delivery(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        abort(404)
    webhooks.redeliver(delivery)
    flash(_("Delivery %(id)s queued again.", id=delivery.id), "success")
    back = request.form.get("next") or url_for("ops.webhook_deliveries", endpoint_id=endpoint_id)
    return redirect(back if back.startswith("/") and not back.startswith("//") else url_for("ops.webhooks_page"))


# --- batches (dashboard) ------------------------------------------------------------------------------

@bp.post("/batches/preview")
@role_required(Role.OPERATOR)
def batch_preview():
    """Validate an uploaded CSV or JSON file; show the rows that do not validate, queue nothing."""
    request.max_content_length = MAX_UPLOAD_BYTES
    upload = request.files.get("file")
    context: dict[str, Any] = {}
    status = 200
    if upload is None or not upload.filename:
        context["error"] = _("Choose a CSV or JSON file of briefs.")
        status = 400
    else:
        try:
            briefs = batches.briefs_from_file(upload.filename, upload.read())
            checked = batches.check({"briefs": briefs, "mode": "each"})
            batches.within_caps(checked, current_user.role)
        except batches.BatchError as exc:
            context["error"] = exc.message
            status = 400
        else:
            context.update(checked=checked, filename=upload.filename,
                           upload_key=batches.stash_upload(checked) if checked.valid else None)
    html = render_template("ops/_batch_preview.html", **context)
    if is_fragment_request():
        return html, status
    return render_template("ops/batch_page.html", preview_html=html), status


@bp.post("/batches")
@role_required(Role.OPERATOR)
def batch_queue():
    """Queue the valid briefs of a previewed upload as one batch."""
    checked = batches.take_upload(request.form.get("upload", ""))
    if checked is None:
        message = _("This upload has expired or was queued already; upload the file again.")
        if is_fragment_request():
            return render_template("ops/_batch_preview.html", error=message), 400
        flash(message, "error")
        return redirect(url_for("dashboard.index"))
    try:
        check_active_tasks(principal(), adding=len(checked.valid))
    except SubmissionRefused as exc:
        if is_fragment_request():
            return render_template("ops/_batch_preview.html", error=exc.message), 429
        flash(exc.message, "error")
        return redirect(url_for("dashboard.index"))
    body, _created = batches.submit(checked, submitted_by=principal())
    batch = batches.get_batch(body["batch_id"])
    if is_fragment_request():
        response = make_response(render_template("ops/_batch_line.html", batch=batch,
                                                 info=batches.progress_of(batch, with_tasks=False)))
        response.headers["HX-Trigger"] = "aura:refresh"
        return response
    flash(_("Queued %(n)s videos as %(id)s.", n=body["count"], id=body["batch_id"]), "success")
    return redirect(url_for("dashboard.index"))


@bp.get("/batches/<batch_id>/line")
@login_required
def batch_line(batch_id: str):
    """One batch as a line with a progress bar (polled until every task has ended)."""
    batch = batches.get_batch(batch_id)
    if batch is None:
        abort(404)
    info = batches.progress_of(batch, with_tasks=False)
    html = render_template("ops/_batch_line.html", batch=batch, info=info)
    return make_response(html, HTMX_STOP_POLLING if info["done"] else 200)


# --- helpers for the templates of other areas ---------------------------------------------------------

@bp.app_context_processor
def ops_helpers() -> dict[str, Any]:
    def batch_lines(limit: int = 3) -> list[tuple[Any, dict[str, Any]]]:
        return [(b, batches.progress_of(b, with_tasks=False)) for b in batches.recent(limit)]

    def task_deliveries(task_id: str) -> list[Any]:
        if not (current_user.is_authenticated and current_user.can(Role.ADMIN)):
            return []
        return webhooks.deliveries_of(task_id=task_id, limit=50)

    return {"active_alerts": alerts.active, "alert_text": alerts.describe, "batch_lines": batch_lines,
            "task_deliveries": task_deliveries}
