"""The reconciler: closes every gap between the task rows and the broker (DESIGN rule 3)."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from flask import current_app
from sqlalchemy import and_, delete, or_, select, update

from webapp.catalog import FINAL_STATES, TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask, TaskEvent
from webapp.services import broker, dispatch, notify
from webapp.services.tasks import add_event
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
PENDING_GRACE = timedelta(seconds=2)  # the submit path publishes right after its commit
BATCH = 500


def _publish(tasks: list[RenderTask], kind: str, why: str) -> int:
    """Publish each task's current attempt; mark it queued (or leave retry) and record why."""
    sent = 0
    now = utcnow()
    for task in tasks:
        if not dispatch.publish_render(task.id, task.attempt, task.priority, task.queue):
            break  # the broker is down: try again next round
        values: dict[str, Any] = {"dispatched_at": now, "updated_at": now}
        if task.status == TaskStatus.PENDING.value:
            values["status"] = TaskStatus.QUEUED.value
        db.session.execute(
            update(RenderTask).where(RenderTask.id == task.id, RenderTask.status == task.status,
                                     RenderTask.attempt == task.attempt).values(**values))
        add_event(task.id, kind, why)
        sent += 1
    db.session.commit()
    return sent


def reconcile() -> dict[str, int]:
    """One pass: undispatched rows, lost broker data, expired leases, due retries."""
    now = utcnow()
    report = {"dispatched": 0, "redispatched": 0, "requeued": 0, "expired_failed": 0,
              "retried": 0, "cancelled": 0, "audited": 0}

    # The broker lost its data: every waiting message is gone, publish them again.
    try:
        lost, run_id = broker.check_sentinel()
    except redis.RedisError as exc:
        log.warning("reconcile: broker unreachable: %s", exc)
        lost, run_id = False, None
    if lost:
        waiting = list(db.session.scalars(
            select(RenderTask).where(
                or_(RenderTask.status == TaskStatus.QUEUED.value,
                    and_(RenderTask.status == TaskStatus.RETRY.value, RenderTask.dispatched_at.is_not(None))))
            .order_by(RenderTask.created_at)))
        report["redispatched"] = _publish(waiting, "redispatched",
                                          f"Broker lost its data (run id {run_id}); published again")

    # Rows whose publish never happened (the broker was down at submit, or the web died).
    pending = list(db.session.scalars(
        select(RenderTask).where(RenderTask.status == TaskStatus.PENDING.value,
                                 RenderTask.created_at < now - PENDING_GRACE)
        .order_by(RenderTask.created_at).limit(BATCH)))
    report["dispatched"] = _publish(pending, "dispatched", "Published by the reconciler")

    # Broker audit (at most once a minute): queued rows that waited a while but have no message
    # in the broker, e.g. the web process died between its commit and its publish.
    if lost is False and run_id is not None:
        report["audited"] = _audit_queued(now)

    # Expired leases: the worker died or hung. Requeue while attempts remain, else fail.
    expired = list(db.session.scalars(
        select(RenderTask).where(RenderTask.status == TaskStatus.PROCESSING.value,
                                 RenderTask.lease_expires_at < now).limit(BATCH)))
    for task in expired:
        if task.cancel_requested:
            target = dict(status=TaskStatus.CANCELLED.value, finished_at=now, message="Cancelled")
            kind, why = "cancelled", "Worker lost while cancelling"
            report["cancelled"] += 1
        elif task.attempt < task.max_attempts:
            target = dict(status=TaskStatus.QUEUED.value, dispatched_at=None, message="Requeued: worker lost")
            kind, why = "lease_expired", f"Lease of {task.lease_owner} expired; requeued"
        else:
            target = dict(status=TaskStatus.FAILED.value, finished_at=now,
                          message="Failed: worker lost on the last attempt",
                          error={"type": "LeaseExpired", "message": f"worker {task.lease_owner} stopped "
                                 "renewing its lease on the last attempt", "stage": task.stage,
                                 "traceback": ""})
            kind, why = "failed", "Lease expired on the last attempt"
            report["expired_failed"] += 1
        moved = db.session.execute(
            update(RenderTask).where(RenderTask.id == task.id, RenderTask.status == TaskStatus.PROCESSING.value,
                                     RenderTask.lease_owner == task.lease_owner)
            .values(lease_owner=None, lease_expires_at=None, updated_at=now, **target)).rowcount
        if moved:
            add_event(task.id, kind, why, target["status"])
            if target["status"] != TaskStatus.QUEUED.value:
                notify.task_changed(db.session, task.id, f"task.{target['status']}")
        db.session.commit()
        notify.after_commit()
        if moved and target["status"] == TaskStatus.QUEUED.value:
            db.session.refresh(task)
            report["requeued"] += _publish([task], "dispatched", "Published after lease expiry")

    # Retries whose backoff is over.
    due = list(db.session.scalars(
        select(RenderTask).where(RenderTask.status == TaskStatus.RETRY.value,
                                 RenderTask.dispatched_at.is_(None), RenderTask.retry_at <= now)
        .limit(BATCH)))
    report["retried"] = _publish(due, "dispatched", "Retry published")
    return report


AUDIT_EVERY_SECONDS = 60
AUDIT_MIN_AGE = timedelta(seconds=30)


def _audit_queued(now: Any) -> int:
    """Publish queued rows older than AUDIT_MIN_AGE whose message the broker does not hold."""
    stale = list(db.session.scalars(
        select(RenderTask).where(RenderTask.status == TaskStatus.QUEUED.value,
                                 RenderTask.dispatched_at < now - AUDIT_MIN_AGE)
        .order_by(RenderTask.created_at).limit(BATCH)))
    if not stale:
        return 0
    try:
        if not broker.audit_due(AUDIT_EVERY_SECONDS):
            return 0
        present: set[str] = set()
        for queue in {task.queue for task in stale}:
            present |= broker.task_ids_in_broker(queue)
    except redis.RedisError as exc:
        log.warning("reconcile: broker audit failed: %s", exc)
        return 0
    missing = [task for task in stale if task.id not in present]
    return _publish(missing, "redispatched", "Queued without a message in the broker; published again")


def cleanup(max_age_days: int | None = None) -> dict[str, int]:
    """Delete finished tasks older than the retention period, their events and their media."""
    days = current_app.config["RETENTION_DAYS"] if max_age_days is None else max_age_days
    cutoff = utcnow() - timedelta(days=days)
    final = [s.value for s in FINAL_STATES]
    media_root = Path(current_app.config["MEDIA_ROOT"])
    removed = 0
    while True:
        ids = list(db.session.scalars(
            select(RenderTask.id).where(RenderTask.status.in_(final), RenderTask.finished_at < cutoff)
            .limit(BATCH)))
        if not ids:
            break
        for task_id in ids:
            shutil.rmtree(media_root / task_id, ignore_errors=True)
            shutil.rmtree(media_root / "work" / task_id, ignore_errors=True)
        db.session.execute(delete(TaskEvent).where(TaskEvent.task_id.in_(ids)))
        db.session.execute(delete(RenderTask).where(RenderTask.id.in_(ids)))
        db.session.commit()
        removed += len(ids)
    return {"removed": removed}
