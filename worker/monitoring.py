"""Alerts on queue backlog and failure rate, computed from the task rows and broker depths.

Beat runs `check` every MONITOR_SECONDS; the alert state (fired, resolved, cooldown) lives in the
database (webapp.services.alerts), and every change is sent as an alert.fired / alert.resolved
webhook event.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from webapp.catalog import TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask, WebhookEndpoint
from webapp.services import alerts, broker
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
KINDS = {"backlog", "failure_rate", "webhook_disabled"}


def observe() -> tuple[dict[str, tuple[str, dict[str, Any]]], set[str]]:
    """The conditions that hold now, by alert key, and the kinds that could be evaluated."""
    cfg = current_app.config
    now = utcnow()
    observed: dict[str, tuple[str, dict[str, Any]]] = {}
    depths = broker.queue_depths()
    backlog_limit = cfg.get("ALERT_BACKLOG", 100)
    for queue, levels in (depths or {}).items():
        waiting = sum(levels.values())
        if waiting > backlog_limit:
            observed[f"backlog:{queue}"] = ("backlog", {"queue": queue, "waiting": waiting, "limit": backlog_limit})
    window = cfg.get("ALERT_FAILURE_WINDOW_MINUTES", 15)
    rows = dict(db.session.execute(
        select(RenderTask.status, func.count())
        .where(RenderTask.finished_at >= now - timedelta(minutes=window),
               RenderTask.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]))
        .group_by(RenderTask.status)).all())
    db.session.rollback()
    finished = sum(rows.values())
    failed = rows.get(TaskStatus.FAILED.value, 0)
    rate_limit = cfg.get("ALERT_FAILURE_RATE", 0.2)
    if finished >= cfg.get("ALERT_FAILURE_MIN_TASKS", 5) and failed / finished > rate_limit:
        observed["failure_rate"] = ("failure_rate", {"failed": failed, "finished": finished,
                                                     "rate": round(failed / finished, 3), "limit": rate_limit,
                                                     "window_minutes": window})
    for endpoint in db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(False),
                                                                     WebhookEndpoint.disabled_reason.is_not(None))):
        observed[f"webhook_disabled:{endpoint.id}"] = ("webhook_disabled", {
            "endpoint_id": endpoint.id, "url": endpoint.url, "error": endpoint.disabled_reason})
    db.session.rollback()
    # With the broker unreachable, backlog alerts stay as they are rather than resolve blind.
    return observed, (KINDS if depths is not None else KINDS - {"backlog"})


def check() -> dict[str, Any]:
    """Evaluate the alerts and record changes (the alert rows are what pages and webhooks read)."""
    observed, kinds = observe()
    changes = alerts.reconcile(observed, kinds)
    current = [{"kind": kind, **details} for kind, details in observed.values()]
    for key in changes["fired"]:
        log.warning("ALERT fired %s %s", key, observed[key][1])
    for key in changes["resolved"]:
        log.warning("ALERT resolved %s", key)
    return {"alerts": current, **changes}
