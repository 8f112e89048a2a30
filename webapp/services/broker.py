"""Direct reads of the Redis broker: queue depths per priority level, the data-loss sentinel."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from flask import current_app

from webapp.catalog import PRIORITIES, QUEUES, STAGE_SPECS, VIDEO_QUEUE

SENTINEL_KEY = "aura:broker:sentinel"
#: Queues that carry renders and their stages (beat's own messages do not count).
RENDER_QUEUES = sorted({VIDEO_QUEUE, *(spec.queue for spec in STAGE_SPECS.values())})


def redis_client() -> redis.Redis:
    """A Redis client for the broker URL, shared per app."""
    client = current_app.extensions.get("aura_redis")
    if client is None:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=1,
                                      socket_timeout=2, health_check_interval=30)
        current_app.extensions["aura_redis"] = client
    return client


def list_key(queue: str, level: int) -> str:
    """The Redis list kombu uses for `queue` at priority `level` (sep ':', level 0 has no suffix)."""
    return queue if level == 0 else f"{queue}:{level}"


def queue_depths() -> dict[str, dict[str, int]] | None:
    """Messages waiting in Redis: {queue: {priority name: count}}, or None if Redis is down."""
    client = redis_client()
    names = [(q, p) for q in QUEUES for p in PRIORITIES.values()]
    try:
        pipe = client.pipeline(transaction=False)
        for queue, prio in names:
            pipe.llen(list_key(queue, prio.redis_level))
        counts = pipe.execute()
    except redis.RedisError:
        return None
    depths: dict[str, dict[str, int]] = {q: {} for q in QUEUES}
    for (queue, prio), count in zip(names, counts, strict=False):
        depths[queue][prio.name] = int(count)
    return depths


def check_sentinel() -> tuple[bool, str | None]:
    """(lost, run_id): lost is True when the broker no longer has our sentinel key, i.e. it was
    wiped or restarted empty since the last check. Sets the sentinel afresh.

    A missing sentinel while our queues still hold messages is not a wipe (e.g. the first pass
    after a start, or the key expired by an operator): nothing is republished then, and the
    broker audit catches any single message that is missing."""
    client = redis_client()
    info: dict[str, Any] = client.info("server")
    run_id = info.get("run_id")
    present = client.get(SENTINEL_KEY)
    client.set(SENTINEL_KEY, f"{run_id}:{time.time():.0f}")
    if present is None:
        pipe = client.pipeline(transaction=False)
        for queue in RENDER_QUEUES:
            for prio in PRIORITIES.values():
                pipe.llen(list_key(queue, prio.redis_level))
        if any(pipe.execute()):
            return False, run_id
    return present is None, run_id


AUDIT_LOCK_KEY = "aura:broker:audit"
UNACKED_KEY = "unacked"  # kombu's hash of delivered, not yet acknowledged messages
SCAN_CHUNK = 1000


def task_ids_in_broker(queue: str, limit: int = 200_000) -> set[str]:
    """Ids of the render tasks that have a message in `queue` (any priority) or in delivery.

    The Celery message id is `<task_id>.<attempt>.<random>` (see dispatch.publish_render).
    """
    client = redis_client()
    found: set[str] = set()

    def add(raw: bytes) -> None:
        try:
            message = json.loads(raw)
            if isinstance(message, list):  # unacked entries: [message, exchange, routing_key]
                message = message[0]
            celery_id = message["headers"]["id"]
        except (ValueError, KeyError, TypeError, IndexError):
            return
        found.add(str(celery_id).split(".", 1)[0])

    seen = 0
    for prio in PRIORITIES.values():
        key = list_key(queue, prio.redis_level)
        start = 0
        while seen < limit:
            chunk = client.lrange(key, start, start + SCAN_CHUNK - 1)
            if not chunk:
                break
            for raw in chunk:
                add(raw)
            seen += len(chunk)
            start += SCAN_CHUNK
    for raw in client.hvals(UNACKED_KEY):
        add(raw)
    return found


def audit_due(every_seconds: int) -> bool:
    """True for one caller per period (a Redis key with a TTL), so the audit runs rarely."""
    return bool(redis_client().set(AUDIT_LOCK_KEY, "1", nx=True, ex=every_seconds))
