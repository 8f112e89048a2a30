"""Batches: up to 500 briefs validated together, written in one transaction and published in one
pipeline; followed as one unit."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from webapp import limits
from webapp.catalog import VIDEO_QUEUE, TaskStatus
from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import BatchItem, RenderTask, TaskBatch, TaskEvent
from webapp.services import bulk
from webapp.services.tasks import api_timestamp, estimate_duration, request_fingerprint
from webapp.services.validation import BriefError, validate_brief
from webapp.timeutil import iso, utcnow

MAX_BRIEFS = 500
MODES = ("all_or_nothing", "each")


class BatchError(ValueError):
    """A batch that cannot be accepted: a message, field errors and errors by brief index."""

    def __init__(self, message: str, fields: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.errors = errors or []


class BatchConflict(Exception):
    """The Idempotency-Key was used for a different batch."""

    def __init__(self, batch_id: str):
        super().__init__(batch_id)
        self.batch_id = batch_id


@dataclass
class Checked:
    """Briefs of a batch after validation: the valid ones and the errors, by index."""

    mode: str
    valid: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def check(body: Any) -> Checked:
    """Validate `{"briefs": [...], "mode": ...}`; raises BatchError for the envelope itself."""
    if not isinstance(body, dict):
        raise BatchError(_("The body must be a JSON object."), {"body": _("JSON object expected")})
    unknown = sorted(set(body) - {"briefs", "mode"})
    if unknown:
        raise BatchError(_("Unknown fields: %(f)s.", f=", ".join(unknown)), {k: _("Unknown field.") for k in unknown})
    mode = body.get("mode", "all_or_nothing")
    if mode not in MODES:
        raise BatchError(_("mode must be all_or_nothing or each."), {"mode": _("all_or_nothing or each")})
    briefs = body.get("briefs")
    if not isinstance(briefs, list) or not briefs:
        raise BatchError(_("briefs must be a non-empty list of submit bodies."), {"briefs": _("list expected")})
    if len(briefs) > MAX_BRIEFS:
        raise BatchError(_("At most %(n)s briefs per batch.", n=MAX_BRIEFS), {"briefs": _("too many")})
    checked = Checked(mode)
    for index, raw in enumerate(briefs):
        try:
            checked.valid.append((index, validate_brief(raw)))
        except BriefError as exc:
            checked.errors.append({"index": index, "message": exc.message, "fields": exc.fields})
    return checked


def within_caps(checked: Checked, role: str) -> None:
    """Briefs over the role's resolution or duration cap become errors by index, like invalid ones."""
    kept = []
    caps = limits.role_caps(role)
    for index, brief in checked.valid:
        fields = limits.over_role_caps(brief, role, caps)
        if fields:
            checked.errors.append({"index": index, "message": _("The brief is over your role's limits."),
                                   "fields": fields})
        else:
            kept.append((index, brief))
    checked.valid = kept
    checked.errors.sort(key=lambda error: error["index"])


def new_task_ids(count: int) -> list[str]:
    """`video_<unix seconds>_<8 random [a-z2-7]>` ids, many at once (same shape as new_task_id)."""
    prefix = f"video_{int(time.time())}_"
    raw = os.urandom(5 * count)
    return [prefix + base64.b32encode(raw[i:i + 5]).decode().lower() for i in range(0, 5 * count, 5)]


def submit(checked: Checked, *, submitted_by: str | None, idempotency_key: str | None = None) -> tuple[dict, bool]:
    """Create the batch's tasks (one transaction) and publish them (one pipeline).

    Returns (response body, created). Raises BatchError when nothing can be accepted, and
    BatchConflict when the key belongs to another batch."""
    if checked.errors and checked.mode == "all_or_nothing":
        raise BatchError(_("%(n)s of the briefs are invalid; nothing was created.", n=len(checked.errors)),
                         errors=checked.errors)
    if not checked.valid:
        raise BatchError(_("No brief of the batch is valid; nothing was created."), errors=checked.errors)
    # The fingerprint and the answer are kept only to replay a retry with the same key.
    fingerprint = None
    if idempotency_key:
        fingerprint = request_fingerprint({"mode": checked.mode, "briefs": [b for _i, b in checked.valid],
                                           "invalid": [e["index"] for e in checked.errors]})
        replay = _replay(idempotency_key, fingerprint)
        if replay is not None:
            return replay, False
    now = utcnow()
    batch_id = "batch_" + secrets.token_hex(8)
    max_attempts = current_app.config["TASK_MAX_RETRIES"] + 1
    queued, message = TaskStatus.QUEUED.value, f"Submitted by {submitted_by or 'unknown'} in {batch_id}"
    tasks, events, items, answer = [], [], [], []
    estimates: dict[tuple[str, str, int], int] = {}
    event_data: dict[str, dict[str, str]] = {}
    ids = new_task_ids(len(checked.valid))
    for (index, brief), task_id in zip(checked.valid, ids, strict=True):
        config, priority = brief["config"], brief["priority"]
        shape = (config["resolution"], config["quality"], brief["target_duration_id"])
        estimate = estimates.get(shape)
        if estimate is None:
            estimate = estimates[shape] = estimate_duration(*shape)
        data = event_data.get(priority)
        if data is None:
            data = event_data[priority] = {"priority": priority, "batch_id": batch_id}
        tasks.append(dict(
            id=task_id, status=queued, priority=priority, queue=VIDEO_QUEUE,
            theme=brief["theme_id"], description=brief["user_description_id"], resolution=config["resolution"],
            quality=config["quality"], target_duration=brief["target_duration_id"], request=brief,
            progress=0.0, message="Waiting for a worker", attempt=0, max_attempts=max_attempts,
            cancel_requested=False, created_at=now, updated_at=now, dispatched_at=now,
            estimated_duration=estimate, idempotency_key=None, request_hash=None,
            parent_id=None, submitted_by=submitted_by))
        events.append(dict(task_id=task_id, kind="created", status=queued, at=now, message=message, data=data))
        items.append(dict(batch_id=batch_id, position=index, task_id=task_id))
        answer.append({"index": index, "task_id": task_id, "status": queued,
                       "priority": priority, "estimated_duration": estimate})
    body = {"batch_id": batch_id, "mode": checked.mode, "count": len(answer), "tasks": answer,
            "errors": checked.errors, "timestamp": api_timestamp()}
    # Bind values are converted before the write lock is taken: the lock covers only the writes.
    statements = _inserts(TaskBatch.__table__, [dict(
        id=batch_id, mode=checked.mode, size=len(answer), submitted_by=submitted_by,
        idempotency_key=idempotency_key, request_hash=fingerprint,
        response=body if idempotency_key else None, created_at=now)])
    for table, rows in ((RenderTask.__table__, tasks), (TaskEvent.__table__, events), (BatchItem.__table__, items)):
        statements += _inserts(table, rows)
    try:
        with write_lock():
            connection = db.session.connection()
            for sql, params in statements:
                connection.exec_driver_sql(sql, params)
            db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if not idempotency_key:
            raise
        replay = _replay(idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay, False
    if not bulk.publish_renders([(t["id"], 0, t["priority"], t["queue"]) for t in tasks]):
        # The broker is down: the reconciler publishes pending rows once it is back.
        with write_lock():
            db.session.execute(update(RenderTask).where(RenderTask.id.in_([t["id"] for t in tasks]),
                                                        RenderTask.status == TaskStatus.QUEUED.value)
                               .values(status=TaskStatus.PENDING.value, dispatched_at=None)
                               .execution_options(synchronize_session=False))
            db.session.commit()
        for row in answer:
            row["status"] = TaskStatus.PENDING.value
    return body, True


def _max_params() -> int:
    """Bind parameters one statement may carry on this database (SQLite's default limit; PostgreSQL
    allows 65,535)."""
    if db.engine.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 32, 0):
        return 999
    return 32766


def _chunk_sizes(count: int, largest: int) -> list[int]:
    """Rows per statement: as many `largest` as fit, then the rest as powers of two, so a process
    compiles (and its drivers cache) a dozen statement shapes, not one per batch size."""
    sizes = [largest] * (count // largest)
    rest, power = count % largest, 1 << (largest.bit_length() - 1)
    while rest:
        if power <= rest:
            sizes.append(power)
            rest -= power
        power >>= 1
    return sizes


def _inserts(table: Any, rows: list[dict[str, Any]]) -> list[tuple[str, tuple]]:
    """Multi-row INSERTs of `rows` (all with the same columns), every value already converted by its
    column type (datetimes, JSON, booleans) for this database, each distinct object once.

    A few statements, not one execution per row: on SQLite the render_tasks trigger feeds an FTS5
    index, which flushes its pending terms to disk at the end of every statement, so executemany
    wrote (and merged) one index segment per task."""
    dialect = db.engine.dialect
    quote = dialect.identifier_preparer.quote
    names = list(rows[0])
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            # Rows share objects (the batch's timestamp, one event payload per priority).
            done: dict[int, Any] = {}
            for i, value in enumerate(values):
                key = id(value)
                if key not in done:
                    done[key] = process(value)
                values[i] = done[key]
        columns.append(values)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    one_row = f"({', '.join([mark] * len(names))})"
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "
    statements, start = [], 0
    for size in _chunk_sizes(len(rows), max(1, min(MAX_BRIEFS, _max_params() // len(names)))):
        chunk = [column[start:start + size] for column in columns]
        statements.append((head + ", ".join([one_row] * size),
                           tuple(itertools.chain.from_iterable(zip(*chunk, strict=True)))))
        start += size
    return statements


def _replay(key: str, fingerprint: str) -> dict | None:
    existing = db.session.scalar(select(TaskBatch).where(TaskBatch.idempotency_key == key))
    if existing is None:
        return None
    if existing.request_hash != fingerprint:
        raise BatchConflict(existing.id)
    return existing.response


def key_is_used(key: str) -> bool:
    """True when a batch was already created under this Idempotency-Key (a retry adds no task)."""
    return db.session.scalar(select(TaskBatch.id).where(TaskBatch.idempotency_key == key)) is not None


def get_batch(batch_id: str) -> TaskBatch | None:
    if not isinstance(batch_id, str) or len(batch_id) > 40:
        return None
    return db.session.get(TaskBatch, batch_id)


def progress_of(batch: TaskBatch, with_tasks: bool = True) -> dict[str, Any]:
    """The batch's tasks (by index) with their state, counts by state and overall progress."""
    rows = db.session.execute(
        select(BatchItem.position, RenderTask.id, RenderTask.status, RenderTask.progress, RenderTask.message)
        .join(RenderTask, RenderTask.id == BatchItem.task_id)
        .where(BatchItem.batch_id == batch.id).order_by(BatchItem.position)).all()
    counts: dict[str, int] = {}
    total = 0.0
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        total += 100.0 if row.status in ("completed", "failed", "cancelled") else float(row.progress or 0)
    finished = sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled"))
    body: dict[str, Any] = {
        "batch_id": batch.id, "mode": batch.mode, "count": len(rows), "created_at": iso(batch.created_at),
        "submitted_by": batch.submitted_by, "counts": counts, "finished": finished,
        "done": bool(rows) and finished == len(rows),
        "progress": round(total / len(rows), 1) if rows else 0.0,
    }
    if with_tasks:
        body["tasks"] = [{"index": r.position, "task_id": r.id, "status": r.status,
                          "progress": round(float(r.progress or 0), 1), "message": r.message} for r in rows]
    return body


def recent(limit: int = 5) -> list[TaskBatch]:
    return list(db.session.scalars(select(TaskBatch).order_by(TaskBatch.created_at.desc()).limit(limit)))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(TaskBatch)) or 0


# --- files of briefs (the dashboard's upload) ---------------------------------------------------------

CSV_COLUMNS = ("theme_id", "keywords_id", "target_duration_id", "user_description_id", "priority",
               "quality", "resolution", "seed")
UPLOAD_TTL = 3600


def briefs_from_file(name: str, data: bytes) -> list[Any]:
    """Briefs of a JSON file (a list, or {"briefs": [...]}) or a CSV file with a header row of
    CSV_COLUMNS (keywords separated by ; or |). Raises BatchError when the file cannot be read."""
    import csv
    import io
    import json

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchError(_("The file is not UTF-8 text."), {"file": _("UTF-8 expected")}) from None
    if name.lower().endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BatchError(_("The file is not valid JSON (%(e)s).", e=str(exc)), {"file": _("invalid JSON")}) from None
        briefs = parsed.get("briefs") if isinstance(parsed, dict) else parsed
        if not isinstance(briefs, list):
            raise BatchError(_("A JSON file holds a list of briefs."), {"file": _("list expected")})
        return briefs
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("theme_id", "keywords_id", "target_duration_id") if c not in (reader.fieldnames or [])]
    if missing:
        raise BatchError(_("The CSV header lacks: %(c)s.", c=", ".join(missing)), {"file": _("missing columns")})
    briefs = []
    for row in reader:
        brief: dict[str, Any] = {}
        for column in ("theme_id", "user_description_id", "priority"):
            if (row.get(column) or "").strip():
                brief[column] = row[column].strip()
        brief["keywords_id"] = [k.strip() for k in (row.get("keywords_id") or "").replace("|", ";").split(";")
                                if k.strip()]
        duration = (row.get("target_duration_id") or "").strip()
        brief["target_duration_id"] = int(duration) if duration.isdigit() else duration
        config: dict[str, Any] = {}
        for column in ("quality", "resolution"):
            if (row.get(column) or "").strip():
                config[column] = row[column].strip()
        seed = (row.get("seed") or "").strip()
        if seed:
            config["seed"] = int(seed) if seed.isdigit() else seed
        if config:
            brief["config"] = config
        briefs.append(brief)
    return briefs


def stash_upload(checked: Checked) -> str:
    """Keep the validated briefs of an upload in Redis until the operator queues them."""
    import json

    from webapp.services.broker import redis_client

    key = secrets.token_urlsafe(16)
    redis_client().set(f"aura:batch-upload:{key}", json.dumps([b for _i, b in checked.valid], ensure_ascii=False),
                       ex=UPLOAD_TTL)
    return key


def take_upload(key: str) -> Checked | None:
    """The stashed briefs (once), as a batch of mode "each"; None when expired or unknown."""
    import json

    from webapp.services.broker import redis_client

    if not key or len(key) > 64:
        return None
    raw = redis_client().getdel(f"aura:batch-upload:{key}")
    if raw is None:
        return None
    return Checked("each", valid=list(enumerate(json.loads(raw))))
