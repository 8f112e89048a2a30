"""Stages as rows: plan, publish, claim, heartbeat, finish (see docs/architecture.md).

The claim of a task (lifecycle.claim) writes the storyboard and plans one row per stage of the
attempt, then hands the attempt over to its stages: the task row keeps its lease owner (the
attempt's token) but no lease expiry, and each stage holds a lease of its own. A stage is
published to its kind's queue when what it needs is done; the stage that finishes last in a
fan-in publishes the next (chunks -> assembly). Every transition is a conditional UPDATE, so a
duplicate or stale message changes nothing and ends as Celery's `Ignore`.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from webapp.catalog import STAGE_SPECS, STAGE_WEIGHTS, StageStatus, TaskName, TaskStatus, stage_kind
from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import RenderStage, RenderTask
from webapp.services import dispatch, lifecycle, metrics, notify
from webapp.services.heartbeat import Heartbeat
from webapp.storage import forget_task_files
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
PROGRESS_MIN_INTERVAL = 0.4


def stage_ids(board: dict) -> list[str]:
    """Every stage row of a storyboard, in pipeline order."""
    return ["visuals", "audio", *[f"chunk-{c['index']}" for c in board["chunks"]], "assemble"]


def needs(stage_id: str, all_ids: list[str]) -> list[str]:
    """The stage ids `stage_id` waits for."""
    wanted = STAGE_SPECS[stage_kind(stage_id)].needs
    return [other for other in all_ids if stage_kind(other) in wanted]


def weight_of(stage_id: str, board: dict) -> float:
    kind = stage_kind(stage_id)
    if kind == "render":
        chunk = board["chunks"][int(stage_id.split("-", 1)[1])]
        return STAGE_WEIGHTS["render"] * chunk["frames"] / max(1, board["total_frames"])
    return STAGE_WEIGHTS[kind]


def plan(claim: lifecycle.Claim, board: dict, reused: dict[str, list[str]], input_hash: str) -> bool:
    """Write the attempt's stage rows and hand the attempt over to them (no task lease expiry from
    now on: the stages hold leases). `reused` maps stage ids whose artifacts an earlier attempt
    left to their keys; those rows start done. False when this worker lost the claim meanwhile."""
    now = utcnow()
    rows = []
    for stage_id in stage_ids(board):
        kind = stage_kind(stage_id)
        done = stage_id in reused
        rows.append(dict(
            task_id=claim.task_id, attempt=claim.attempt, stage_id=stage_id, kind=kind,
            queue=STAGE_SPECS[kind].queue, weight=weight_of(stage_id, board),
            status=StageStatus.DONE.value if done else StageStatus.WAITING.value,
            progress=1.0 if done else 0.0, message="", input_hash=input_hash,
            artifacts=reused.get(stage_id), tries=0, reused=done, finished_at=now if done else None))
    done_weight = STAGE_WEIGHTS["storyboard"] + sum(r["weight"] for r in rows if r["reused"])
    with write_lock(), db.engine.begin() as conn:
        handed = conn.execute(
            update(RenderTask).where(*_holder(claim.task_id, claim.attempt, claim.owner))
            .values(lease_expires_at=None, updated_at=now, progress=round(min(done_weight, 0.999) * 100, 2))
        ).rowcount
        if not handed:
            return False
        conn.execute(RenderStage.__table__.insert(), rows)
    return True


def _holder(task_id: str, attempt: int, owner: str | None = None) -> tuple:
    clauses = [RenderTask.id == task_id, RenderTask.attempt == attempt,
               RenderTask.status == TaskStatus.PROCESSING.value]
    if owner is not None:
        clauses.append(RenderTask.lease_owner == owner)
    return tuple(clauses)


def advance(task_id: str, attempt: int) -> list[str]:
    """Publish every waiting stage whose inputs are all done; returns the ids this call published.

    Called after each stage's finish has been committed, so of two finishers of a fan-in at least
    one sees the other's row done, and the conditional UPDATE lets only one of them publish."""
    rows = db.session.execute(
        select(RenderStage.stage_id, RenderStage.status)
        .where(RenderStage.task_id == task_id, RenderStage.attempt == attempt)).all()
    db.session.rollback()
    status = {r.stage_id: r.status for r in rows}
    ids = list(status)
    ready = [s for s, st in status.items() if st == StageStatus.WAITING.value
             and all(status[n] == StageStatus.DONE.value for n in needs(s, ids))]
    if not ready:
        return []
    now = utcnow()
    won = []
    with write_lock(), db.engine.begin() as conn:
        for stage_id in ready:
            if conn.execute(
                update(RenderStage)
                .where(RenderStage.task_id == task_id, RenderStage.attempt == attempt,
                       RenderStage.stage_id == stage_id, RenderStage.status == StageStatus.WAITING.value)
                .values(status=StageStatus.QUEUED.value, published_at=now)
            ).rowcount:
                won.append(stage_id)
    publish(task_id, attempt, won)
    return won


def publish(task_id: str, attempt: int, ids: list[str]) -> int:
    """Send the stage messages (to each kind's queue, at the task's priority)."""
    if not ids:
        return 0
    priority = db.session.execute(select(RenderTask.priority).where(RenderTask.id == task_id)).scalar()
    db.session.rollback()
    sent = 0
    for stage_id in ids:
        sent += dispatch.send(TaskName.STAGE, [task_id, attempt, stage_id], priority=priority,
                              queue=STAGE_SPECS[stage_kind(stage_id)].queue,
                              celery_id=dispatch.render_message_id(task_id, attempt, stage_id))
    return sent


@dataclass
class StageClaim:
    """A claimed stage of a task attempt, held under a stage lease."""

    task_id: str
    attempt: int
    stage_id: str
    owner: str
    runner: str
    task_owner: str
    request: dict[str, Any]
    started: float

    @property
    def kind(self) -> str:
        return stage_kind(self.stage_id)

    def task_claim(self) -> lifecycle.Claim:
        """The attempt's claim, to finish the task through lifecycle."""
        return lifecycle.Claim(self.task_id, self.attempt, self.task_owner, self.request, self.started)


def claim_stage(task_id: str, attempt: int, stage_id: str, owner: str, runner: str) -> StageClaim | str:
    """Claim a queued stage of the attempt that is processing; otherwise why not."""
    task = db.session.execute(
        select(RenderTask.status, RenderTask.attempt, RenderTask.cancel_requested, RenderTask.lease_owner,
               RenderTask.request).where(RenderTask.id == task_id)).first()
    db.session.rollback()
    if task is None:
        return "unknown task"
    if task.status != TaskStatus.PROCESSING.value or task.attempt != attempt:
        return f"stale: task is {task.status}, attempt {task.attempt}"
    if task.cancel_requested:
        end_cancelled_if_idle(task_id)
        return "cancel requested"
    now = utcnow()
    lease = timedelta(seconds=current_app.config["LEASE_SECONDS"])
    with write_lock(), db.engine.begin() as conn:
        claimed = conn.execute(
            update(RenderStage)
            .where(RenderStage.task_id == task_id, RenderStage.attempt == attempt,
                   RenderStage.stage_id == stage_id, RenderStage.status == StageStatus.QUEUED.value)
            .values(status=StageStatus.RUNNING.value, owner=owner, runner=runner,
                    runner_host=socket.gethostname(), lease_expires_at=now + lease, started_at=now,
                    finished_at=None, progress=0.0, tries=RenderStage.tries + 1, error=None)
        ).rowcount
    if not claimed:
        return "duplicate: stage not queued"
    return StageClaim(task_id, attempt, stage_id, owner, runner, task.lease_owner, task.request,
                      time.monotonic())


def queued_stage_ids(task_id: str, attempt: int, queues: list[str]) -> list[str]:
    """Published stages of the attempt, from these queues, that nobody has claimed (plan order)."""
    ids = list(db.session.scalars(
        select(RenderStage.stage_id).where(RenderStage.task_id == task_id, RenderStage.attempt == attempt,
                                           RenderStage.status == StageStatus.QUEUED.value,
                                           RenderStage.queue.in_(queues)).order_by(RenderStage.id)))
    db.session.rollback()
    return ids


def task_status(task_id: str) -> str | None:
    """The task's status now (None for a task that is gone)."""
    status = db.session.execute(select(RenderTask.status).where(RenderTask.id == task_id)).scalar()
    db.session.rollback()
    return status


def _live(now) -> tuple:
    """A stage that is running under a lease that has not expired."""
    return RenderStage.status == StageStatus.RUNNING.value, RenderStage.lease_expires_at > now


def others_running(sc: StageClaim) -> bool:
    """Whether another stage of the attempt is running under a live lease (one beside it on the same
    worker, or on another): a cancel ends the task when the last of them has stopped, so that a
    cancelled task has no ffmpeg left."""
    other = db.session.execute(select(RenderStage.id).where(
        RenderStage.task_id == sc.task_id, RenderStage.attempt == sc.attempt, RenderStage.stage_id != sc.stage_id,
        *_live(utcnow())).limit(1)).first()
    db.session.rollback()
    return other is not None


def end_cancelled_if_idle(task_id: str) -> bool:
    """End a cancel-requested attempt that no stage is running (its stages wait in queues, or the
    last one finished as the cancel came). Whoever commits second of the cancel flag and a stage's
    finish calls this after its commit, so one of them sees the other and the task ends."""
    now = utcnow()
    running = select(RenderStage.id).where(
        RenderStage.task_id == task_id, RenderStage.attempt == RenderTask.attempt, *_live(now))
    planned = select(RenderStage.id).where(RenderStage.task_id == task_id, RenderStage.attempt == RenderTask.attempt)
    with write_lock(), db.engine.begin() as conn:
        ended = conn.execute(
            update(RenderTask)
            .where(RenderTask.id == task_id, RenderTask.status == TaskStatus.PROCESSING.value,
                   RenderTask.cancel_requested.is_(True), RenderTask.lease_expires_at.is_(None),
                   planned.exists(), ~running.exists())
            .values(status=TaskStatus.CANCELLED.value, finished_at=now, updated_at=now, message="Cancelled",
                    lease_owner=None)
        ).rowcount
        if ended:
            lifecycle._insert_events(conn, lifecycle._event(task_id, "cancelled", "Stopped between stages",
                                                            TaskStatus.CANCELLED.value))
    if ended:
        forget_task_files(current_app.config, task_id, keep_outputs=False)
    return bool(ended)


def _stage_where(sc: StageClaim) -> tuple:
    return (RenderStage.task_id == sc.task_id, RenderStage.attempt == sc.attempt,
            RenderStage.stage_id == sc.stage_id, RenderStage.owner == sc.owner,
            RenderStage.status == StageStatus.RUNNING.value)


def finish_stage(sc: StageClaim, artifacts: list[str]) -> bool:
    """Mark the stage done if this runner still holds it."""
    now = utcnow()
    with write_lock(), db.engine.begin() as conn:
        done = conn.execute(
            update(RenderStage).where(*_stage_where(sc))
            .values(status=StageStatus.DONE.value, progress=1.0, finished_at=now, lease_expires_at=None,
                    artifacts=artifacts)
        ).rowcount
    if done:
        seconds = round(time.monotonic() - sc.started, 2)
        lifecycle.record_event(sc.task_id, "stage", f"{sc.stage_id} done in {seconds:.2f}s by {sc.runner}",
                               {"stage": sc.stage_id, "by": sc.runner, "reused": False, "seconds": seconds})
        config = sc.request.get("config") or {}
        metrics.observe_stage(stage_kind(sc.stage_id), config.get("quality", ""), config.get("resolution", ""),
                              seconds)
    return bool(done)


def end_stage(sc: StageClaim, status: StageStatus, error: dict[str, Any] | None = None) -> bool:
    """Record that a stage failed or stopped on a cancel."""
    with write_lock(), db.engine.begin() as conn:
        return bool(conn.execute(
            update(RenderStage).where(*_stage_where(sc))
            .values(status=status.value, finished_at=utcnow(), lease_expires_at=None, error=error)
        ).rowcount)


def overall_progress(conn: Any, task_id: str, attempt: int) -> float:
    """The task's progress (0..1) from its stage rows."""
    total = conn.execute(
        select(func.coalesce(func.sum(RenderStage.weight * RenderStage.progress), 0.0))
        .where(RenderStage.task_id == task_id, RenderStage.attempt == attempt)).scalar_one()
    return min(0.999, STAGE_WEIGHTS["storyboard"] + float(total))


class StageKeeper(Heartbeat):
    """Renews a stage's lease, writes its progress (and the task's, from every stage row) and
    watches the task's cancel flag.

    `cancelled()` turns True within about half a second when the task is cancelled, another
    attempt took over, or this stage's lease was lost."""

    def __init__(self, sc: StageClaim, poll_seconds: float = 0.5):
        super().__init__(f"stage-{sc.task_id}-{sc.stage_id}", poll_seconds)
        self.sc = sc
        self._pending: tuple[float, str] | None = None
        self._last_write = 0.0

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._pending = (max(0.0, min(1.0, fraction)), message)

    def _tick(self) -> None:
        sc = self.sc
        with self.engine.connect() as conn:
            task = conn.execute(select(RenderTask.status, RenderTask.attempt, RenderTask.cancel_requested,
                                       RenderTask.stage).where(RenderTask.id == sc.task_id)).first()
        if task is None or task.status != TaskStatus.PROCESSING.value or task.attempt != sc.attempt:
            self.lost = True
            return
        if task.cancel_requested:
            self.cancel_requested = True
            return
        with self._lock:
            pending, self._pending = self._pending, None
        renew = self.renewal_due()
        write = pending is not None and time.monotonic() - self._last_write >= PROGRESS_MIN_INTERVAL
        if pending is not None and not write:
            with self._lock:
                self._pending = self._pending or pending
        if not (renew or write):
            return
        now = utcnow()
        values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=self.lease_seconds)}
        if write:
            values.update(progress=pending[0], message=pending[1][:255])
        with write_lock(self.db_uri), self.engine.begin() as conn:
            held = conn.execute(update(RenderStage).where(*_stage_where(sc)).values(**values)).rowcount
            if held and write:
                overall = overall_progress(conn, sc.task_id, sc.attempt)
                text = f"{STAGE_SPECS[sc.kind].message} {pending[1]}".strip()
                moved = conn.execute(update(RenderTask).where(*_holder(sc.task_id, sc.attempt))
                                     .values(progress=round(overall * 100, 2), message=text[:255], stage=sc.kind,
                                             updated_at=now)).rowcount
                if moved and task.stage != sc.kind:  # a stage change: task.progress for who asked for it
                    notify.task_changed(conn, sc.task_id, "task.progress")
        notify.after_commit()
        self._last_renew = time.monotonic()
        if write:
            self._last_write = time.monotonic()
        if not held:
            self.lost = True


def stages_of(task_id: str, attempt: int) -> list[RenderStage]:
    return list(db.session.scalars(
        select(RenderStage).where(RenderStage.task_id == task_id, RenderStage.attempt == attempt)
        .order_by(RenderStage.id)))
