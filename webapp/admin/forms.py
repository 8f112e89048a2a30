"""Turning the admin page's form posts into the bodies the fleet services validate."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.datastructures import MultiDict

CONTROL_FIELDS = ("worker_id", "action", "concurrency", "max_memory_mb", "max_tasks_per_child", "host", "count")
POLICY_FIELDS = ("min_workers", "max_workers", "target_backlog_per_worker", "max_wait_seconds",
                 "cooldown_seconds")


NUMBER_FIELDS = {"concurrency", "max_memory_mb", "max_tasks_per_child", "count", "target_workers",
                 *POLICY_FIELDS}


def form_value(name: str, raw: str) -> Any:
    """A form field as the JSON API would carry it: whole numbers (ASCII digits) become integers."""
    text = raw.strip()
    if name in NUMBER_FIELDS and re.fullmatch(r"-?[0-9]{1,9}", text):
        return int(text)
    return text


def control_body(form: MultiDict) -> dict[str, Any]:
    """A control request: the API's JSON fields; queues come from checkboxes or a text field."""
    body: dict[str, Any] = {k: form_value(k, form[k]) for k in CONTROL_FIELDS if form.get(k, "").strip()}
    queues = [q for q in form.getlist("queue") if q.strip()]
    if queues:
        body["queue"] = queues if len(queues) > 1 else queues[0]
    return body


def policy_body(queue: str, form: MultiDict) -> dict[str, Any]:
    """A policy: unchecked checkboxes are absent from a form post, so they mean false."""
    body: dict[str, Any] = {k: form_value(k, form[k]) for k in POLICY_FIELDS if form.get(k, "").strip()}
    body["queue"] = queue
    body["enabled"] = bool(form.get("enabled"))
    body["allow_zero"] = bool(form.get("allow_zero"))
    return body
