"""The hook every task state change calls inside its transaction: webhook outbox rows and task
metrics. `after_commit()` then publishes the deliveries (beat's sweep covers a missed publish)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from webapp.models import RenderTask
from webapp.services import metrics, webhooks


def task_changed(conn: Any, task_id: str, event: str) -> None:
    """Call in the transaction that moved `task_id`; `event` is a webhooks.TASK_EVENTS name."""
    webhooks.record_task_event(conn, task_id, event)
    if event == "task.progress":
        return
    row = conn.execute(select(RenderTask.quality, RenderTask.resolution, RenderTask.actual_duration,
                              RenderTask.estimated_duration).where(RenderTask.id == task_id)).first()
    if row is not None:
        metrics.observe_task(event, row.quality, row.resolution, row.actual_duration, row.estimated_duration)


def after_commit() -> None:
    """Publish the deliveries written by this thread's last transaction."""
    webhooks.publish_pending()
