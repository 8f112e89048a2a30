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

from webapp.catalog import TaskName
from webapp.services import lifecycle, reconcile
from worker import monitoring
from worker.pipeline import BadBrief, Cancelled, run_pipeline

log = logging.getLogger(__name__)

STAGE_MESSAGES = {
    "storyboard": "Writing the storyboard...",
    "visuals": "Running image processing...",
    "audio": "Running audio processing...",
    "render": "Running video processing...",
    "assemble": "Assembling the video...",
}


def media_paths(task_id: str, attempt: int) -> tuple[Path, Path, Path]:
    """(work dir shared by attempts, this attempt's temp output dir, the final output dir)."""
    root = Path(current_app.config["MEDIA_ROOT"])
    return (root / "work" / task_id,
            root / "tmp" / f"{task_id}.{attempt}.{os.getpid()}",
            root / task_id)


def with_urls(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Add a /media URL to every file of the pipeline's result."""
    result = dict(result)
    files = []
    for item in result.get("files", []):
        item = dict(item)
        item["url"] = f"/media/{task_id}/{item['name']}"
        files.append(item)
    result["files"] = files
    for key in ("video", "poster"):
        if result.get(key):
            result[f"{key}_url"] = f"/media/{task_id}/{result[key]}"
    return result


@shared_task(name=TaskName.GENERATE, bind=True)
def generate(self: Any, task_id: str, attempt: int) -> str:
    """Render one task attempt, if this worker wins the claim."""
    owner = f"{self.request.hostname or 'worker'}:{os.getpid()}:{os.urandom(2).hex()}"
    claimed = lifecycle.claim(str(task_id), int(attempt), owner)
    if isinstance(claimed, str):
        log.info("task %s attempt %s dropped: %s", task_id, attempt, claimed)
        return claimed
    work_dir, tmp_dir, final_dir = media_paths(claimed.task_id, claimed.attempt)
    stage: dict[str, str | None] = {"name": None}

    with lifecycle.LeaseKeeper(claimed) as keeper:

        def progress(fraction: float, stage_name: str, message: str) -> None:
            if stage_name != stage["name"]:
                stage["name"] = stage_name
                keeper.report(fraction * 100, STAGE_MESSAGES.get(stage_name, message), stage_name, force=True)
                return
            text = STAGE_MESSAGES.get(stage_name, "")
            keeper.report(fraction * 100, f"{text} {message}".strip() if message else text, stage_name)

        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            work_dir.mkdir(parents=True, exist_ok=True)
            result = run_pipeline(claimed.request, work_dir, tmp_dir, progress, keeper.cancelled)
            if keeper.cancelled():
                raise Cancelled("cancelled after the last stage")

            def publish_files() -> None:
                if final_dir.exists():
                    shutil.rmtree(final_dir)
                os.replace(tmp_dir, final_dir)

            if lifecycle.complete(claimed, with_urls(result, claimed.task_id), publish_files):
                shutil.rmtree(work_dir, ignore_errors=True)
                return "completed"
            return "lost"
        except Cancelled:
            if keeper.cancel_requested and lifecycle.finish_cancelled(claimed):
                shutil.rmtree(work_dir, ignore_errors=True)
                return "cancelled"
            return "lost"
        except BadBrief as exc:
            lifecycle.fail_or_retry(claimed, exc, stage["name"] or "storyboard", retryable=False)
            return "failed"
        except SoftTimeLimitExceeded as exc:
            return lifecycle.fail_or_retry(claimed, exc, stage["name"], retryable=True)
        except Exception as exc:
            log.exception("task %s failed at %s", task_id, stage["name"])
            return lifecycle.fail_or_retry(claimed, exc, stage["name"], retryable=True)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


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
