"""Variants: `config.variants` = n asks for n versions of one brief. The submitted task is the first;
n - 1 child tasks (parent_id = the first) differ by seed and by the order of the brief's assets.
Each child's request is a plain brief (no `variants`), so submitting one again reproduces it."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from sqlalchemy import select

from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import RenderTask, TaskEvent
from webapp.services import tasks as task_service

EVENT_KIND = "variants"


def variant_brief(brief: dict[str, Any], parent_id: str, index: int) -> dict[str, Any]:
    """The brief of variant `index` (1-based; 1 is the parent itself)."""
    child = copy.deepcopy(brief)
    config = child["config"]
    config.pop("variants", None)
    digest = hashlib.sha256(f"{parent_id}:{index}:{config.get('seed')}".encode()).digest()
    config["seed"] = int.from_bytes(digest[:4], "big") % (2**31)
    assets = config.get("assets")
    if assets and len(assets) > 1:
        shift = (index - 1) % len(assets)
        config["assets"] = assets[shift:] + assets[:shift]
        if shift == 0:
            config["assets"] = list(reversed(assets))
    return child


def spawn_variants(parent: RenderTask, submitted_by: str | None) -> list[str]:
    """Submit the children of a task whose brief asks for variants; their ids, parent first."""
    count = int((parent.request.get("config") or {}).get("variants") or 1)
    ids = [parent.id]
    for index in range(2, count + 1):
        child, _created = task_service.submit(variant_brief(parent.request, parent.id, index),
                                              submitted_by=submitted_by, parent_id=parent.id)
        ids.append(child.id)
    if count > 1:
        with write_lock():
            task_service.add_event(parent.id, EVENT_KIND, f"{count} variants", data={"task_ids": ids})
            db.session.commit()
    return ids


def variant_ids(parent: RenderTask) -> list[str]:
    """The ids recorded when the variants were spawned (parent first), or just the task's own."""
    data = db.session.scalar(select(TaskEvent.data).where(TaskEvent.task_id == parent.id,
                                                          TaskEvent.kind == EVENT_KIND).limit(1))
    return list((data or {}).get("task_ids") or [parent.id])


PREVIEW_SECONDS = 10
PREVIEW_SHORT_SIDE = 360


def preview_brief(brief: dict[str, Any]) -> dict[str, Any]:
    """The brief of a preview: the same storyboard, drawn at 360 px on the short side (640x360 for
    16:9), low quality, and cut after its first PREVIEW_SECONDS seconds by the pipeline."""
    from webapp.services.validation import parse_resolution

    preview = copy.deepcopy(brief)
    config = preview["config"]
    config.pop("variants", None)
    width, height = parse_resolution(config["resolution"]) or (1280, 720)
    scale = PREVIEW_SHORT_SIDE / min(width, height)
    config["resolution"] = f"{_even(width * scale)}x{_even(height * scale)}"
    config["quality"] = "low"
    config["preview"] = True
    return preview


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


KEPT_KIND = "variant_kept"


def family_of(task: RenderTask) -> tuple[RenderTask | None, list[RenderTask]]:
    """(the first task, every variant in order) when `task` is one of a set of variants."""
    parent = task
    if task.parent_id:
        parent = db.session.get(RenderTask, task.parent_id) or task
    ids = variant_ids(parent)
    if len(ids) < 2 or task.id not in ids:
        return None, []
    rows = {t.id: t for t in db.session.scalars(select(RenderTask).where(RenderTask.id.in_(ids)))}
    return parent, [rows[i] for i in ids if i in rows]


def kept_id(parent: RenderTask) -> str | None:
    data = db.session.scalar(select(TaskEvent.data).where(TaskEvent.task_id == parent.id, TaskEvent.kind == KEPT_KIND)
                             .order_by(TaskEvent.id.desc()).limit(1))
    return (data or {}).get("task_id")


def keep(task: RenderTask, by: str) -> list[str]:
    """Keep one variant: recorded on the first task; the others still waiting or running are
    cancelled. Returns the ids cancelled."""
    parent, family = family_of(task)
    if parent is None:
        raise ValueError("not a variant")
    cancelled = [other.id for other in family if other.id != task.id and other.is_live
                 and task_service.cancel(other, by=by)]
    with write_lock():
        task_service.add_event(parent.id, KEPT_KIND, f"Kept {task.id}", data={"task_id": task.id, "by": by})
        db.session.commit()
    return cancelled
