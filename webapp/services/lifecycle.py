"""A task's life on a worker: claim under a lease, heartbeat, progress, finish, retry, fail.

Every transition is one conditional UPDATE, so at-least-once delivery still gives exactly one
visible outcome: only the holder of the lease can move a claimed task on.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from webapp.catalog import WAITING_STATES, TaskStatus
from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import RenderTask, TaskEvent
from webapp.services import notify
from webapp.services.heartbeat import Heartbeat
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
PROGRESS_MIN_INTERVAL = 0.4  # seconds between progress writes: a few a second at most


def _event(task_id: str, kind: str, message: str, status: str | None = None,
           data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "kind": kind, "message": message, "status": status,
            "data": data, "at": utcnow()}


def _insert_events(conn: Any, *events: dict[str, Any]) -> None:
    conn.execute(TaskEvent.__table__.insert(), list(events))


@dataclass
class Claim:
    """A claimed attempt of a task, held under a lease."""

    task_id: str
    attempt: int
    owner: str
    request: dict[str, Any]
    started_at: float


def claim(task_id: str, attempt: int, owner: str) -> Claim | str:
    """Claim a task for this worker; on failure return why (the message is then dropped)."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["LEASE_SECONDS"])
    waiting = [s.value for s in WAITING_STATES]
    with write_lock(), db.engine.begin() as conn:
        claimed = conn.execute(
            update(RenderTask)
            .where(RenderTask.id == task_id, RenderTask.status.in_(waiting),
                   RenderTask.attempt == attempt, RenderTask.cancel_requested.is_(False))
            .values(status=TaskStatus.PROCESSING.value, attempt=attempt + 1, lease_owner=owner,
                    lease_expires_at=now + lease, started_at=now, updated_at=now,
                    message="Starting", progress=0.0, retry_at=None)
        ).rowcount
        if claimed:
            _insert_events(conn, _event(task_id, "started", f"Attempt {attempt + 1} on {owner}",
                                        TaskStatus.PROCESSING.value, {"attempt": attempt + 1}))
            request = conn.execute(select(RenderTask.request).where(RenderTask.id == task_id)).scalar_one()
            return Claim(task_id, attempt + 1, owner, request, time.monotonic())
        row = conn.execute(
            select(RenderTask.status, RenderTask.attempt, RenderTask.cancel_requested)
            .where(RenderTask.id == task_id)
        ).first()
        if row is None:
            return "unknown task"
        if row.cancel_requested and row.status in waiting:
            conn.execute(
                update(RenderTask).where(RenderTask.id == task_id, RenderTask.status.in_(waiting))
                .values(status=TaskStatus.CANCELLED.value, finished_at=now, updated_at=now,
                        message="Cancelled")
            )
            _insert_events(conn, _event(task_id, "cancelled", "Cancelled before it started",
                                        TaskStatus.CANCELLED.value))
            notify.task_changed(conn, task_id, "task.cancelled")
            outcome = "cancelled"
        else:
            outcome = f"lost claim: status={row.status} attempt={row.attempt} (message attempt {attempt})"
    notify.after_commit()
    return outcome


class LeaseKeeper(Heartbeat):
    """Renews a task claim's lease, writes its progress and watches the cancel flag."""

    def __init__(self, claim: Claim, poll_seconds: float = 0.5):
        super().__init__(f"lease-{claim.task_id}", poll_seconds)
        self.claim = claim
        self._pending_progress: dict[str, Any] | None = None
        self._last_progress_write = 0.0
        self._last_stage: str | None = None

    def report(self, progress: float, message: str, stage: str | None = None, force: bool = False) -> None:
        """Queue a progress update; written at most every PROGRESS_MIN_INTERVAL seconds."""
        with self._lock:
            self._pending_progress = {"progress": round(max(0.0, min(progress, 100.0)), 2),
                                      "message": message[:255]}
            if stage is not None:
                self._pending_progress["stage"] = stage
        if force or time.monotonic() - self._last_progress_write >= PROGRESS_MIN_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            values, self._pending_progress = self._pending_progress, None
        if not values:
            return
        self._last_progress_write = time.monotonic()
        now = utcnow()
        values["updated_at"] = now
        if self.renewal_due():
            values["lease_expires_at"] = now + timedelta(seconds=self.lease_seconds)
            self._last_renew = time.monotonic()
        stage_changed = values.get("stage") not in (None, self._last_stage)
        with write_lock(self.db_uri), self.engine.begin() as conn:
            done = conn.execute(
                update(RenderTask).where(*_holder(self.claim))
                .values(**values)
            ).rowcount
            if done and stage_changed:
                self._last_stage = values["stage"]
                notify.task_changed(conn, self.claim.task_id, "task.progress")
        notify.after_commit()
        if not done:
            self.lost = True

    def _tick(self) -> None:
        if self._pending_progress and time.monotonic() - self._last_progress_write >= PROGRESS_MIN_INTERVAL:
            self._flush()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RenderTask.cancel_requested, RenderTask.lease_owner, RenderTask.status)
                .where(RenderTask.id == self.claim.task_id)
            ).first()
        if row is None or row.lease_owner != self.claim.owner or row.status != TaskStatus.PROCESSING.value:
            self.lost = True
            return
        if row.cancel_requested:
            self.cancel_requested = True
        if self.renewal_due():
            now = utcnow()
            with write_lock(self.db_uri), self.engine.begin() as conn:
                renewed = conn.execute(
                    update(RenderTask).where(*_holder(self.claim))
                    .values(lease_expires_at=now + timedelta(seconds=self.lease_seconds))
                ).rowcount
            self._last_renew = time.monotonic()
            if not renewed:
                self.lost = True


def record_event(task_id: str, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
    """Append a timeline entry from a worker (its own short transaction)."""
    with write_lock(), db.engine.begin() as conn:
        _insert_events(conn, _event(task_id, kind, message, None, data))


def _holder(claim: Claim) -> Any:
    return (RenderTask.id == claim.task_id, RenderTask.lease_owner == claim.owner,
            RenderTask.status == TaskStatus.PROCESSING.value)


def complete(claim: Claim, result: dict[str, Any], publish_files: Callable[[], None] | None = None) -> bool:
    """Mark the task completed if this worker still holds the lease; `publish_files`, if given,
    runs inside the same transaction so both happen or neither."""
    with db.engine.connect() as conn:
        row = conn.execute(select(RenderTask.started_at).where(*_holder(claim))).first()
    now = utcnow()
    with write_lock(), db.engine.begin() as conn:
        done = conn.execute(
            update(RenderTask).where(*_holder(claim))
            .values(status=TaskStatus.COMPLETED.value, progress=100.0, message="Completed",
                    stage=None, result=result, error=None, finished_at=now, updated_at=now,
                    lease_owner=None, lease_expires_at=None,
                    actual_duration=(now - row.started_at).total_seconds() if row else None)
        ).rowcount
        if not done:
            return False
        if publish_files:
            publish_files()
        _insert_events(conn, _event(claim.task_id, "completed", "Video ready",
                                    TaskStatus.COMPLETED.value,
                                    {"attempt": claim.attempt, "seconds": round(time.monotonic() - claim.started_at, 2)}))
        notify.task_changed(conn, claim.task_id, "task.completed")
    notify.after_commit()
    return True


def error_record(exc: BaseException, stage: str | None) -> dict[str, Any]:
    """What we keep of an error: type, message, stage and the end of the traceback."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    return {"type": type(exc).__name__, "message": str(exc)[:1000], "stage": stage, "traceback": tail}


def finish_cancelled(claim: Claim) -> bool:
    """Record that the worker stopped a task because it was cancelled."""
    now = utcnow()
    with write_lock(), db.engine.begin() as conn:
        done = conn.execute(
            update(RenderTask).where(*_holder(claim), RenderTask.cancel_requested.is_(True))
            .values(status=TaskStatus.CANCELLED.value, message="Cancelled", finished_at=now,
                    updated_at=now, lease_owner=None, lease_expires_at=None)
        ).rowcount
        if done:
            _insert_events(conn, _event(claim.task_id, "cancelled", "Stopped while running",
                                        TaskStatus.CANCELLED.value, {"attempt": claim.attempt}))
            notify.task_changed(conn, claim.task_id, "task.cancelled")
    notify.after_commit()
    return bool(done)


def fail_or_retry(claim: Claim, exc: BaseException, stage: str | None, retryable: bool) -> str:
    """Schedule a retry with backoff while attempts remain, else fail. Returns the new status."""
    now = utcnow()
    error = error_record(exc, stage)
    with db.engine.connect() as conn:
        max_attempts = conn.execute(
            select(RenderTask.max_attempts).where(RenderTask.id == claim.task_id)).scalar_one()
    with write_lock(), db.engine.begin() as conn:
        if retryable and claim.attempt < max_attempts:
            delay = current_app.config["RETRY_BACKOFF_SECONDS"] * 2 ** (claim.attempt - 1)
            done = conn.execute(
                update(RenderTask).where(*_holder(claim))
                .values(status=TaskStatus.RETRY.value, error=error, updated_at=now,
                        retry_at=now + timedelta(seconds=delay), dispatched_at=None,
                        lease_owner=None, lease_expires_at=None,
                        message=f"Retrying in {delay}s after {error['type']}")
            ).rowcount
            if done:
                _insert_events(conn, _event(claim.task_id, "retry",
                                            f"Attempt {claim.attempt} failed at {stage}: {error['message']}",
                                            TaskStatus.RETRY.value,
                                            {"attempt": claim.attempt, "delay": delay, "error": error}))
                notify.task_changed(conn, claim.task_id, "task.retrying")
                outcome = TaskStatus.RETRY.value
            else:
                outcome = "lost"
        else:
            outcome = _fail(conn, claim, error, stage, now)
    notify.after_commit()
    return outcome


def _fail(conn: Any, claim: Claim, error: dict[str, Any], stage: str | None, now: Any) -> str:
    """The last attempt failed: mark the task failed (inside the caller's transaction)."""
    done = conn.execute(
        update(RenderTask).where(*_holder(claim))
        .values(status=TaskStatus.FAILED.value, error=error, finished_at=now, updated_at=now,
                lease_owner=None, lease_expires_at=None,
                message=f"Failed at {stage or 'start'}: {error['message']}"[:255])
    ).rowcount
    if not done:
        return "lost"
    _insert_events(conn, _event(claim.task_id, "failed", f"{error['type']}: {error['message']}",
                                TaskStatus.FAILED.value, {"attempt": claim.attempt, "error": error}))
    notify.task_changed(conn, claim.task_id, "task.failed")
    return TaskStatus.FAILED.value
