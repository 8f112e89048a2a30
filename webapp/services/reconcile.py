"""The reconciler: closes every gap between the task rows and the broker (DESIGN rule 3)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import and_, delete, or_, select, update

from webapp.catalog import ACTIVE_STATES, FINAL_STATES, StageStatus, TaskStatus
from webapp.extensions import db
from webapp.models import RenderStage, RenderTask, TaskEvent
from webapp.services import broker, dispatch, lifecycle, notify, proxies, stages
from webapp.services.tasks import add_event
from webapp.storage import forget_task_files, get_storage, sweep_scratch, task_ids_in
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
    """One pass: undispatched rows, lost broker data, expired leases, due retries, lost proxy requests."""
    now = utcnow()
    report = {"dispatched": 0, "redispatched": 0, "requeued": 0, "expired_failed": 0,
              "retried": 0, "cancelled": 0, "audited": 0, "stages_republished": 0, "stages_published": 0}

    # The broker lost its data: every waiting message is gone, publish them again.
    try:
        lost, run_id = broker.check_sentinel()
    except redis.RedisError as exc:
        log.warning("reconcile: broker unreachable: %s", exc)
        lost, run_id = False, None
    if lost:
        # Only what was published before this pass looked: a row submitted since went to the
        # broker as it is now.
        waiting = list(db.session.scalars(
            select(RenderTask).where(
                or_(RenderTask.status == TaskStatus.QUEUED.value,
                    and_(RenderTask.status == TaskStatus.RETRY.value, RenderTask.dispatched_at.is_not(None))),
                or_(RenderTask.dispatched_at.is_(None), RenderTask.dispatched_at < now))
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
        if moved and target["status"] != TaskStatus.QUEUED.value:
            forget_task_files(current_app.config, task.id, keep_outputs=False)
        if moved and target["status"] == TaskStatus.QUEUED.value:
            db.session.refresh(task)
            report["requeued"] += _publish([task], "dispatched", "Published after lease expiry")

    # Retries whose backoff is over.
    due = list(db.session.scalars(
        select(RenderTask).where(RenderTask.status == TaskStatus.RETRY.value,
                                 RenderTask.dispatched_at.is_(None), RenderTask.retry_at <= now)
        .limit(BATCH)))
    report["retried"] = _publish(due, "dispatched", "Retry published")
    _reconcile_stages(now, report)
    # Clip proxies asked for but not made (a lost message, a worker that died mid-transcode).
    report["proxies_republished"] = proxies.republish_lost()
    return report


class StageLost(Exception):
    """A stage's runner stopped renewing its lease too many times."""


def _reconcile_stages(now: Any, report: dict[str, int]) -> None:
    """Stages of attempts handed over to them: publish what is ready but was never published,
    republish stages nobody claimed within their pickup time or whose lease expired, and end
    the attempts that were cancelled while no stage was running."""
    config = current_app.config
    pickup = now - timedelta(seconds=config["STAGE_PICKUP_SECONDS"])
    rows = db.session.execute(
        select(RenderStage, RenderTask.cancel_requested)
        .join(RenderTask, and_(RenderTask.id == RenderStage.task_id, RenderTask.attempt == RenderStage.attempt))
        .where(RenderTask.status == TaskStatus.PROCESSING.value, RenderTask.lease_expires_at.is_(None))
        .order_by(RenderStage.task_id, RenderStage.id).limit(BATCH * 10)).all()
    by_task: dict[tuple[str, int], list[RenderStage]] = {}
    cancelled: set[tuple[str, int]] = set()
    for stage, cancel_requested in rows:
        by_task.setdefault((stage.task_id, stage.attempt), []).append(stage)
        if cancel_requested:
            cancelled.add((stage.task_id, stage.attempt))
    db.session.commit()
    for (task_id, attempt), task_stages in by_task.items():
        running = [s for s in task_stages if s.status == StageStatus.RUNNING.value]
        if (task_id, attempt) in cancelled:
            report["cancelled"] += stages.end_cancelled_if_idle(task_id)
            continue
        stale = [s for s in task_stages if s.status == StageStatus.QUEUED.value and s.published_at
                 and s.published_at < pickup]
        expired = [s for s in running if s.lease_expires_at is not None and s.lease_expires_at < now]
        for stage in expired:
            if stage.tries >= config["STAGE_MAX_TRIES"]:
                _fail_attempt(task_id, attempt, stage)
                break
            moved = db.session.execute(
                update(RenderStage).where(RenderStage.id == stage.id, RenderStage.owner == stage.owner,
                                          RenderStage.status == StageStatus.RUNNING.value)
                .values(status=StageStatus.QUEUED.value, owner=None, lease_expires_at=None, published_at=now)
            ).rowcount
            if moved:
                add_event(task_id, "stage_lease_expired",
                          f"{stage.stage_id}: lease of {stage.runner} expired; published again")
                db.session.commit()
                report["stages_republished"] += stages.publish(task_id, attempt, [stage.stage_id])
        else:
            for stage in stale:
                moved = db.session.execute(
                    update(RenderStage).where(RenderStage.id == stage.id,
                                              RenderStage.status == StageStatus.QUEUED.value,
                                              RenderStage.published_at == stage.published_at)
                    .values(published_at=now)).rowcount
                if moved:
                    add_event(task_id, "stage_republished",
                              f"{stage.stage_id}: nobody claimed it in {config['STAGE_PICKUP_SECONDS']}s; "
                              "published again")
                db.session.commit()
                if moved:
                    report["stages_republished"] += stages.publish(task_id, attempt, [stage.stage_id])
            report["stages_published"] += len(stages.advance(task_id, attempt))


def _attempt_claim(task_id: str, attempt: int) -> lifecycle.Claim | None:
    row = db.session.execute(select(RenderTask.lease_owner, RenderTask.request)
                             .where(RenderTask.id == task_id, RenderTask.attempt == attempt)).first()
    db.session.commit()
    return None if row is None else lifecycle.Claim(task_id, attempt, row.lease_owner, row.request, 0.0)


def _fail_attempt(task_id: str, attempt: int, stage: RenderStage) -> None:
    claim = _attempt_claim(task_id, attempt)
    if claim is None:
        return
    error = StageLost(f"{stage.stage_id} lost its runner {stage.tries} times (last {stage.runner})")
    outcome = lifecycle.fail_or_retry(claim, error, stage.kind, retryable=True)
    if outcome in (TaskStatus.FAILED.value,):
        forget_task_files(current_app.config, task_id, keep_outputs=False)


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
    removed = 0
    while True:
        ids = list(db.session.scalars(
            select(RenderTask.id).where(RenderTask.status.in_(final), RenderTask.finished_at < cutoff)
            .limit(BATCH)))
        if not ids:
            break
        for task_id in ids:
            forget_task_files(current_app.config, task_id, keep_outputs=False)
        db.session.execute(delete(TaskEvent).where(TaskEvent.task_id.in_(ids)))
        db.session.execute(delete(RenderStage).where(RenderStage.task_id.in_(ids)))
        db.session.execute(delete(RenderTask).where(RenderTask.id.in_(ids)))
        db.session.commit()
        removed += len(ids)
    return {"removed": removed, **sweep_orphans()}


def sweep_orphans() -> dict[str, int]:
    """Remove objects and scratch folders that belong to no live task: stage artifacts of ended
    tasks, and outputs of tasks that did not complete (a late duplicate's upload) or are gone."""
    storage = get_storage()
    found = task_ids_in(storage)
    live = {s.value for s in ACTIVE_STATES}
    status: dict[str, str] = {}
    ids = list(found)
    for i in range(0, len(ids), BATCH):
        status.update(db.session.execute(select(RenderTask.id, RenderTask.status)
                                         .where(RenderTask.id.in_(ids[i:i + BATCH]))).all())
    objects = 0
    for task_id, kinds in found.items():
        if status.get(task_id) in live:
            continue
        completed = status.get(task_id) == TaskStatus.COMPLETED.value
        if completed and kinds == {"output"}:
            continue
        objects += forget_task_files(current_app.config, task_id, keep_outputs=completed)
    live_ids = db.session.scalars(select(RenderTask.id).where(RenderTask.status.in_(live))).all()
    return {"orphan_objects": objects, "orphan_scratch": sweep_scratch(current_app.config, live_ids)}
