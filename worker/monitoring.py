"""Alerts on queue backlog and failure rate, computed from the task rows and broker depths."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from webapp.catalog import TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.services import broker
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


def check() -> dict[str, Any]:
    """Compute alerts and log them (the task's result in Flower shows the latest set)."""
    cfg = current_app.config
    now = utcnow()
    alerts: list[dict[str, Any]] = []
    depths = broker.queue_depths() or {}
    backlog_limit = cfg.get("ALERT_BACKLOG", 100)
    for queue, levels in depths.items():
        waiting = sum(levels.values())
        if waiting > backlog_limit:
            alerts.append({"kind": "backlog", "queue": queue, "waiting": waiting, "limit": backlog_limit})
    rows = dict(db.session.execute(
        select(RenderTask.status, func.count())
        .where(RenderTask.finished_at >= now - timedelta(minutes=15),
               RenderTask.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]))
        .group_by(RenderTask.status)).all())
    finished = sum(rows.values())
    failed = rows.get(TaskStatus.FAILED.value, 0)
    rate_limit = cfg.get("ALERT_FAILURE_RATE", 0.2)
    if finished >= 5 and failed / finished > rate_limit:
        alerts.append({"kind": "failure_rate", "failed": failed, "finished": finished,
                       "rate": round(failed / finished, 3), "limit": rate_limit})
    for alert in alerts:
        log.warning("ALERT %s", alert)
    return {"alerts": alerts}
