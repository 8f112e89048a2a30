"""Thin Celery tasks: claim, plan the stages, run one stage, finish (docs/architecture.md).

No task waits for another inside a worker slot: `generate` claims the task, writes the storyboard
and the stage rows and returns; each stage runs as its own message on its kind's queue, and the
stage that completes a fan-in publishes the next. A message that is a duplicate or stale ends as
Celery's `Ignore`, a stage stopped by a cancel as REVOKED, a failed stage as FAILURE.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import shared_task, states
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from flask import current_app

from webapp.catalog import STAGE_MESSAGES, StageStatus, TaskName, TaskStatus
from webapp.services import lifecycle, reconcile, stages
from webapp.storage import forget_task_files, get_storage
from worker import monitoring, sidecar
from worker.pipeline import BadBrief, Cancelled, build_storyboard
from worker.stages import Artifacts

log = logging.getLogger(__name__)
FINAL = (TaskStatus.COMPLETED.value, TaskStatus.CANCELLED.value, TaskStatus.FAILED.value)


def artifacts_of(task_id: str) -> Artifacts:
    return Artifacts(get_storage(), current_app.config, task_id)


def owner_name(request: Any) -> str:
    """`name@host:pid:random`: the worker's node name, then what tells this claim apart."""
    return f"{request.hostname or 'worker'}:{os.getpid()}:{os.urandom(2).hex()}"


def ended(task_id: str, outcome: str) -> str:
    """Remove what the attempts left once the task reached a final state."""
    if outcome in FINAL:
        forget_task_files(current_app.config, task_id, keep_outputs=outcome == TaskStatus.COMPLETED.value)
    return outcome


def ignore(task: Any, why: str) -> None:
    """End a duplicate or stale message as Celery's Ignore (not a SUCCESS with a string)."""
    log.info("%s %s ignored: %s", task.name, task.request.id, why)
    raise Ignore()


def finish_task(claim: lifecycle.Claim, result: dict) -> str:
    """Complete the task with its assembled result (outputs are already in storage)."""
    if lifecycle.complete(claim, result):
        return ended(claim.task_id, TaskStatus.COMPLETED.value)
    return "lost"


def drop_late_leftovers(sc: stages.StageClaim) -> None:
    """A runner that lost its stage (a host cut off the network long enough for another to take
    the stage over) may upload after the task ended, when the task's artifacts were already
    removed: remove what it left as the task's end did."""
    status = stages.task_status(sc.task_id)
    if status in FINAL:
        ended(sc.task_id, status)


def lost_stage(task: Any, sc: stages.StageClaim, why: str) -> None:
    """End the message of a runner that lost its stage: its leftovers go, the message is ignored."""
    drop_late_leftovers(sc)
    ignore(task, why)


@shared_task(name=TaskName.GENERATE, bind=True)
def generate(self: Any, task_id: str, attempt: int) -> str:
    """Claim one task attempt, write its storyboard and stage rows, publish the first stages."""
    claimed = lifecycle.claim(str(task_id), int(attempt), owner_name(self.request))
    if isinstance(claimed, str):
        ignore(self, claimed)
    artifacts = artifacts_of(claimed.task_id)
    with lifecycle.LeaseKeeper(claimed) as keeper:
        keeper.report(0.0, STAGE_MESSAGES["storyboard"], "storyboard", force=True)
        try:
            board = build_storyboard(claimed.request)
            artifacts.write_storyboard(board)
            reused = {sid: keys for sid in stages.stage_ids(board)
                      if (keys := artifacts.existing(board, sid)) is not None}
        except BadBrief as exc:
            return ended(claimed.task_id, lifecycle.fail_or_retry(claimed, exc, "storyboard", retryable=False))
        except (SoftTimeLimitExceeded, Exception) as exc:
            log.exception("task %s failed while planning", task_id)
            return ended(claimed.task_id, lifecycle.fail_or_retry(claimed, exc, "storyboard", retryable=True))
    if keeper.cancelled():
        if keeper.cancel_requested and lifecycle.finish_cancelled(claimed):
            return ended(claimed.task_id, TaskStatus.CANCELLED.value)
        ignore(self, "lost the lease while planning")
    if not stages.plan(claimed, board, reused, artifacts.input_hash(board)):
        ignore(self, "lost the lease while planning")
    for stage_id in reused:
        lifecycle.record_event(claimed.task_id, "stage", f"{stage_id} reused from an earlier attempt",
                               {"stage": stage_id, "by": None, "reused": True, "seconds": 0.0})
    if "assemble" in reused:
        return finish_task(claimed, artifacts.result(board))
    published = stages.advance(claimed.task_id, claimed.attempt)
    return f"planned; published {', '.join(published) or 'nothing'}"


@shared_task(name=TaskName.STAGE, bind=True)
def run_stage(self: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """One stage of a task attempt (visuals, audio, a chunk or the assembly) on its own queue."""
    sc = stages.claim_stage(str(task_id), int(attempt), str(stage_id), owner_name(self.request),
                            self.request.hostname or "worker")
    if isinstance(sc, str):
        ignore(self, sc)
    if sidecar.spare_cores() <= 0:
        return perform(self, sc)
    with sidecar.Sidecar(sc, self.request.hostname or "worker"):  # queued stages beside this one
        return perform(self, sc)


def perform(self: Any, sc: stages.StageClaim) -> str:
    """Run a claimed stage to its end: finish it and publish what it completes, or record how it
    ended. `self` is the Celery task of the stage's message (or a stand-in for a stage run beside
    it, worker/sidecar.py)."""
    task_id, stage_id = sc.task_id, sc.stage_id
    artifacts = artifacts_of(sc.task_id)
    with stages.StageKeeper(sc) as keeper:
        try:
            board = artifacts.storyboard()
            if board is None:
                raise FileNotFoundError("the storyboard is not in storage")
            keeper.progress(0.0, "")
            keys, result = artifacts.run(board, sc.stage_id, keeper.progress, keeper.cancelled)
            if keeper.cancelled():
                raise Cancelled(f"{sc.stage_id} cancelled")
        except Cancelled:
            stages.end_stage(sc, StageStatus.CANCELLED)
            # The last stage of the attempt to stop ends the task (its ffmpeg has exited by now).
            if (keeper.cancel_requested and not stages.others_running(sc)
                    and lifecycle.finish_cancelled(sc.task_claim())):
                ended(sc.task_id, TaskStatus.CANCELLED.value)
            elif keeper.lost:
                drop_late_leftovers(sc)
            self.update_state(state=states.REVOKED)
            raise Ignore() from None
        except BadBrief as exc:
            if not stages.end_stage(sc, StageStatus.FAILED, lifecycle.error_record(exc, sc.kind)):
                lost_stage(self, sc, f"lost the stage lease before failing: {exc}")
            ended(sc.task_id, lifecycle.fail_or_retry(sc.task_claim(), exc, sc.kind, retryable=False))
            raise
        except (SoftTimeLimitExceeded, Exception) as exc:
            log.exception("task %s failed at %s", task_id, stage_id)
            # A runner cut off long enough for its stage to be taken over fails late (its upload
            # found no network): the stage is another runner's now, and so is the attempt's fate.
            if not stages.end_stage(sc, StageStatus.FAILED, lifecycle.error_record(exc, sc.kind)):
                lost_stage(self, sc, f"lost the stage lease before failing: {exc}")
            ended(sc.task_id, lifecycle.fail_or_retry(sc.task_claim(), exc, sc.kind, retryable=True))
            raise
    if not stages.finish_stage(sc, keys):
        lost_stage(self, sc, "lost the stage lease")
    if stages.end_cancelled_if_idle(sc.task_id):  # the cancel came as this stage finished
        self.update_state(state=states.REVOKED)
        raise Ignore()
    if result is not None:
        return finish_task(sc.task_claim(), result)
    published = stages.advance(sc.task_id, sc.attempt)
    return f"{sc.stage_id} done; published {', '.join(published) or 'nothing'}"


@shared_task(name=TaskName.RECONCILE)
def reconcile_task() -> dict[str, int]:
    """One reconciler pass (beat, every few seconds)."""
    return reconcile.reconcile()


@shared_task(name=TaskName.CLEANUP)
def cleanup_task() -> dict[str, int]:
    """Delete finished tasks and media past the retention period."""
    return reconcile.cleanup()


@shared_task(name=TaskName.MONITOR)
def monitor_task() -> dict[str, Any]:
    """Check backlog and failure rate; log and record alerts."""
    return monitoring.check()


@shared_task(name=TaskName.PING)
def ping() -> str:
    return "pong"
