"""Thin Celery tasks: parse ids, claim, call the pipeline, report, retry."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy import select

from webapp.catalog import STAGE_MESSAGES, STAGE_TASKS, TaskName, TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.services import dispatch, lifecycle, metrics, reconcile
from worker import monitoring
from worker.pipeline import BadBrief, Cancelled
from worker.stages import Orchestrator, run_stage_task, stage_kind

log = logging.getLogger(__name__)



def media_root() -> Path:
    return Path(current_app.config["MEDIA_ROOT"])


def work_dir_of(task_id: str) -> Path:
    """Artifacts of every attempt of a task; kept until it ends, so retries resume."""
    return media_root() / "work" / task_id


def remove_leftovers(task_id: str) -> None:
    """Delete the temp output of every attempt (killed attempts leave theirs) and the work dir."""
    for stale in (media_root() / "tmp").glob(f"{task_id}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(work_dir_of(task_id), ignore_errors=True)


def with_urls(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Add a /media URL to every file of the pipeline's result."""
    result = dict(result)
    result["files"] = [{**item, "url": f"/media/{task_id}/{item['name']}"} for item in result.get("files", [])]
    for key in ("video", "poster", "thumbnail"):
        if result.get(key):
            result[f"{key}_url"] = f"/media/{task_id}/{result[key]}"
    return result


def owner_name(request: Any) -> str:
    return f"{request.hostname or 'worker'}:{os.getpid()}:{os.urandom(2).hex()}"


@shared_task(name=TaskName.GENERATE, bind=True)
def generate(self: Any, task_id: str, attempt: int) -> str:
    """Render one task attempt, if this worker wins the claim: it orchestrates the stages."""
    claimed = lifecycle.claim(str(task_id), int(attempt), owner_name(self.request))
    if isinstance(claimed, str):
        log.info("task %s attempt %s dropped: %s", task_id, attempt, claimed)
        return claimed
    tmp_dir = media_root() / "tmp" / f"{claimed.task_id}.{claimed.attempt}.{os.getpid()}"
    final_dir = media_root() / claimed.task_id
    priority = claimed.request.get("priority")
    current = {"stage": None}

    def publish(stage_id: str) -> bool:
        return dispatch.send(STAGE_TASKS[stage_kind(stage_id)], [claimed.task_id, claimed.attempt, stage_id],
                             priority=priority)

    with lifecycle.LeaseKeeper(claimed) as keeper:

        def progress(fraction: float, stage: str, message: str) -> None:
            changed = stage != current["stage"]
            current["stage"] = stage
            text = STAGE_MESSAGES.get(stage, stage)
            keeper.report(fraction * 100, f"{text} {message}".strip(), stage, force=changed)

        def stage_done(stage_id: str, info: dict) -> None:
            how = "reused from an earlier attempt" if info["reused"] else f"done in {info['seconds']}s"
            lifecycle.record_event(claimed.task_id, "stage", f"{stage_id} {how} by {info['by']}",
                                   {"stage": stage_id, **info})
            if not info["reused"]:
                config = claimed.request.get("config", {})
                metrics.observe_stage(stage_id, config.get("quality", ""), config.get("resolution", ""),
                                      float(info["seconds"]))

        outcome = "lost"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            result = Orchestrator(claimed.request, work_dir_of(claimed.task_id), tmp_dir, claimed.owner,
                                  publish, progress, keeper.cancelled, stage_done).run()
            if keeper.cancelled():
                raise Cancelled("cancelled after the last stage")

            def publish_files() -> None:
                if final_dir.exists():
                    shutil.rmtree(final_dir)
                os.replace(tmp_dir, final_dir)

            if lifecycle.complete(claimed, with_urls(result, claimed.task_id), publish_files):
                outcome = "completed"
        except Cancelled:
            if keeper.cancel_requested and lifecycle.finish_cancelled(claimed):
                outcome = "cancelled"
        except BadBrief as exc:
            outcome = lifecycle.fail_or_retry(claimed, exc, current["stage"] or "storyboard", retryable=False)
        except (SoftTimeLimitExceeded, Exception) as exc:
            log.exception("task %s failed at %s", task_id, current["stage"])
            outcome = lifecycle.fail_or_retry(claimed, exc, current["stage"], retryable=True)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    if outcome in (TaskStatus.COMPLETED.value, TaskStatus.CANCELLED.value, TaskStatus.FAILED.value):
        remove_leftovers(claimed.task_id)
    return outcome


def _stage(request: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """A stage task: runs only while its attempt is the one processing the row."""
    row = db.session.execute(
        select(RenderTask.status, RenderTask.attempt).where(RenderTask.id == str(task_id))).first()
    if row is None or row.status != TaskStatus.PROCESSING.value or row.attempt != int(attempt):
        return "stale"
    return run_stage_task(work_dir_of(str(task_id)), str(stage_id), owner_name(request), lambda: False)


@shared_task(name=TaskName.VISUALS, bind=True)
def visuals_stage(self: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """Still layers of every scene (image_processing)."""
    return _stage(self.request, task_id, attempt, stage_id)


@shared_task(name=TaskName.AUDIO, bind=True)
def audio_stage(self: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """Music bed, narration, loudness and subtitles (audio_processing)."""
    return _stage(self.request, task_id, attempt, stage_id)


@shared_task(name=TaskName.RENDER_CHUNK, bind=True)
def render_chunk_stage(self: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """One chunk of the video (video_processing)."""
    return _stage(self.request, task_id, attempt, stage_id)


@shared_task(name=TaskName.ASSEMBLE, bind=True)
def assemble_stage(self: Any, task_id: str, attempt: int, stage_id: str) -> str:
    """Join the chunks, mux the audio, poster, sidecars and quality gate (video_processing)."""
    return _stage(self.request, task_id, attempt, stage_id)


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
