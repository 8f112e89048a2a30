"""Publishing work to the broker by task name, after the row is committed."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from flask import current_app
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from webapp.catalog import PRIORITIES, TASK_QUEUES, TaskName

log = logging.getLogger(__name__)
BROKER_ERRORS = (OperationalError, KombuError, RedisError, ConnectionError, OSError, TimeoutError)


def celery_app() -> Celery:
    """The Celery app bound to the current Flask app."""
    return current_app.extensions["celery"]


def send(name: str, args: list[Any], *, priority: str | None = None, queue: str | None = None,
         celery_id: str | None = None, **options: Any) -> bool:
    """Publish task `name`; False (and a log line) when the broker cannot be reached."""
    queue = queue or TASK_QUEUES.get(name, "default")
    level = PRIORITIES[priority].redis_level if priority else None
    try:
        celery_app().send_task(
            name, args=args, queue=queue, routing_key=queue, priority=level,
            task_id=celery_id, retry=False, **options,
        )
    except BROKER_ERRORS as exc:
        log.warning("broker unavailable, %s not published: %s", name, exc)
        return False
    return True


def render_message_id(task_id: str, attempt: int, stage_id: str | None = None) -> str:
    """The Celery id of an attempt's render message (or of one of its stages). The same for every
    copy, so one revoke covers republished copies too, and the app task id comes first."""
    return f"{task_id}.{attempt}" if stage_id is None else f"{task_id}.{attempt}.{stage_id}"


def publish_render(task_id: str, attempt: int, priority: str, queue: str) -> bool:
    """Publish the render of one task attempt; the worker's claim drops duplicates."""
    return send(TaskName.GENERATE, [task_id, attempt], priority=priority, queue=queue,
                celery_id=render_message_id(task_id, attempt))


def revoke(celery_ids: list[str]) -> bool:
    """Tell every worker to drop these messages (Flower then shows them as revoked)."""
    if not celery_ids:
        return True
    try:
        celery_app().control.revoke(celery_ids)
    except BROKER_ERRORS as exc:
        log.warning("broker unavailable, revoke of %s not sent: %s", celery_ids, exc)
        return False
    return True
