"""Publishing many render messages in one Redis round trip (batches).

Celery's send_task costs a round trip per message; a 500-brief batch would spend most of its time
there. This builds the same message Celery's Redis transport writes (protocol 2, JSON, base64 body,
the priority's list as kombu names it) and LPUSHes them all through one pipeline.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid

import redis
from kombu.serialization import dumps as kombu_dumps

from webapp.catalog import PRIORITIES, TaskName
from webapp.services.broker import list_key, redis_client
from webapp.services.dispatch import celery_app


def _template() -> tuple[dict, dict, dict, str, str]:
    """Headers, properties and embed part of a render message, built once by Celery itself."""
    app = celery_app()
    headers, properties, body, _sent = app.amqp.as_task_v2(
        "template", TaskName.GENERATE, args=["template", 0], kwargs={}, root_id="template")
    content_type, content_encoding, _payload = kombu_dumps(body, serializer="json")
    return headers, properties, body[2], content_type, content_encoding


def render_messages(items: list[tuple[str, int, str, str]]) -> list[tuple[str, str]]:
    """(Redis list, serialized message) of each render attempt, as send_task would write them."""
    headers, properties, embed, content_type, content_encoding = _template()
    out = []
    for task_id, attempt, priority, queue in items:
        celery_id = f"{task_id}.{attempt}.{secrets.token_hex(3)}"
        level = PRIORITIES[priority].redis_level
        body = json.dumps([[task_id, attempt], {}, embed]).encode("utf-8")
        message = {
            "body": base64.b64encode(body).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": {**headers, "id": celery_id, "root_id": celery_id,
                        "argsrepr": repr([task_id, attempt])},
            "properties": {
                **properties,
                "correlation_id": celery_id,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": level,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        out.append((list_key(queue, level), json.dumps(message)))
    return out


def publish_renders(items: list[tuple[str, int, str, str]]) -> bool:
    """Publish (task_id, attempt, priority, queue) render messages in one pipeline; False when
    the broker cannot be reached (the rows stay for the reconciler)."""
    if not items:
        return True
    try:
        pipe = redis_client().pipeline(transaction=False)
        for key, message in render_messages(items):
            pipe.lpush(key, message)
        pipe.execute()
    except (redis.RedisError, OSError):
        return False
    return True
