"""The state of every queue: broker depths, task counts, workers, wait ages and throughput."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select

from webapp.catalog import ACTIVE_STATES, PRIORITIES, QUEUES, WAITING_STATES, TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.services import broker, dispatch
from webapp.services import workers as fleet
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
WORKERS_CACHE_KEY = "aura:cache:active_queues"
WORKERS_CACHE_SECONDS = 10


def workers_by_queue() -> dict[str, list[str]]:
    """Node names consuming each queue: what the supervisors report in the database, plus
    workers started outside a supervisor, seen by an `active_queues` broadcast made at most once
    every few seconds (cached in Redis)."""
    result = fleet.reported_workers_by_queue()

    def call() -> dict[str, list[str]]:
        replies = dispatch.celery_app().control.inspect(timeout=0.5).active_queues() or {}
        seen: dict[str, list[str]] = {}
        for worker, queues in replies.items():
            for queue in queues or []:
                seen.setdefault(queue["name"], []).append(worker)
        return seen

    broadcast = fleet.cached_broadcast(WORKERS_CACHE_KEY, WORKERS_CACHE_SECONDS, call) or {}
    for queue, nodes in broadcast.items():
        known = result.setdefault(queue, [])
        known.extend(n for n in nodes if n not in known)
    return result


def queue_status() -> dict[str, Any]:
    """Per queue: waiting messages per priority, tasks by state, workers, oldest wait, throughput."""
    now = utcnow()
    depths = broker.queue_depths()
    live = [s.value for s in ACTIVE_STATES]
    waiting = [s.value for s in WAITING_STATES]
    by_state: dict[str, dict[str, int]] = {q: {} for q in QUEUES}
    oldest: dict[str, Any] = {}
    # One grouped query per state: each is a range of the (status, queue, created_at) index,
    # where `status IN (...)` made SQLite walk far more of the table at 100k rows.
    for state in live:
        for queue, count, first in db.session.execute(
            select(RenderTask.queue, func.count(), func.min(RenderTask.created_at))
            .where(RenderTask.status == state).group_by(RenderTask.queue)
        ):
            by_state.setdefault(queue, {})[state] = count
            if state in waiting and (queue not in oldest or first < oldest[queue]):
                oldest[queue] = first
    five = now - timedelta(minutes=5)
    done = TaskStatus.COMPLETED.value
    failed = TaskStatus.FAILED.value
    throughput: dict[str, dict[str, int]] = {}
    recent_flag = case((RenderTask.finished_at >= five, 1), else_=0).label("recent")
    for queue, status, recent, count in db.session.execute(
        select(RenderTask.queue, RenderTask.status, recent_flag, func.count())
        .where(RenderTask.finished_at >= now - timedelta(minutes=60),
               RenderTask.status.in_([done, failed]))
        .group_by(RenderTask.queue, RenderTask.status, recent_flag)
    ):
        entry = throughput.setdefault(queue, {"completed_5m": 0, "failed_5m": 0,
                                              "completed_60m": 0, "failed_60m": 0})
        entry[f"{status}_60m"] += count
        if recent:
            entry[f"{status}_5m"] += count
    workers = workers_by_queue()
    queues = []
    for name, spec in sorted(QUEUES.items(), key=lambda kv: -kv[1].priority):
        waiting_redis = depths.get(name) if depths else None
        oldest_at = oldest.get(name)
        queues.append({
            "name": name,
            "priority": spec.priority,
            "purpose": spec.purpose,
            "length": sum(waiting_redis.values()) if waiting_redis is not None else None,
            "waiting_by_priority": waiting_redis,
            "tasks_by_state": {s.value: by_state.get(name, {}).get(s.value, 0) for s in ACTIVE_STATES},
            "workers": workers.get(name, []),
            "worker_count": len(workers.get(name, [])),
            "oldest_waiting_seconds": round((now - oldest_at).total_seconds(), 1) if oldest_at else None,
            "throughput": throughput.get(name, {"completed_5m": 0, "failed_5m": 0,
                                                "completed_60m": 0, "failed_60m": 0}),
        })
    return {
        "broker": "up" if depths is not None else "down",
        "priorities": {p.name: {"value": p.value, "redis_level": p.redis_level} for p in PRIORITIES.values()},
        "queues": queues,
        "generated_at": time.time(),
    }
