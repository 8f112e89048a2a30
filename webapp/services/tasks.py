"""Submitting, cancelling, reading and listing render tasks."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, func, insert, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError

from webapp.catalog import ACTIVE_STATES, PRIORITIES, QUEUES, VIDEO_QUEUE, WAITING_STATES, StageStatus, TaskStatus
from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import RenderTask, TaskCallback, TaskEvent
from webapp.services import dispatch, notify, search, stages
from webapp.services.validation import parse_resolution
from webapp.storage import forget_task_files
from webapp.timeutil import iso, parse_iso, utcnow

_ALPHABET = string.ascii_lowercase + string.digits
QUALITY_FPS = {"low": 24, "medium": 30, "high": 30}
QUALITY_COST = {"low": 0.6, "medium": 1.0, "high": 1.3}


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""

    def __init__(self, task_id: str):
        super().__init__(task_id)
        self.task_id = task_id


def new_task_id(now: float | None = None) -> str:
    """`video_<unix seconds>_<random suffix>` as SPEC.md shows."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"video_{int(now if now is not None else time.time())}_{suffix}"


def request_fingerprint(brief: dict[str, Any]) -> str:
    """A stable hash of a normalised brief, to compare idempotent retries."""
    canonical = json.dumps(brief, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def add_event(task_id: str, kind: str, message: str = "", status: str | None = None,
              data: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    """Append one entry to a task's timeline (in the caller's transaction)."""
    db.session.add(TaskEvent(task_id=task_id, kind=kind, status=status, message=message,
                             data=data, at=at or utcnow()))


# --- estimates -------------------------------------------------------------------------------

_estimate_cache: dict[tuple[str, str], tuple[float, float | None]] = {}
_estimate_lock = threading.Lock()
ESTIMATE_CACHE_SECONDS = 30.0


def formula_estimate(width: int, height: int, quality: str, duration: int) -> int:
    """Processing seconds expected before there is history: pixels x frames, plus set-up."""
    megapixel_frames = width * height / 1e6 * QUALITY_FPS[quality] * duration
    return max(3, round(4 + megapixel_frames * 0.012 * QUALITY_COST[quality] / 1.3))


def _history_rate(resolution: str, quality: str) -> float | None:
    """Median processing seconds per video second of recent similar tasks, cached briefly."""
    key = (resolution, quality)
    now = time.monotonic()
    with _estimate_lock:
        cached = _estimate_cache.get(key)
        if cached and now - cached[0] < ESTIMATE_CACHE_SECONDS:
            return cached[1]
    rows = db.session.execute(
        select(RenderTask.actual_duration, RenderTask.target_duration)
        .where(RenderTask.resolution == resolution, RenderTask.quality == quality,
               RenderTask.status == TaskStatus.COMPLETED.value, RenderTask.finished_at.is_not(None))
        .order_by(RenderTask.finished_at.desc())
        .limit(20)
    ).all()
    rates = sorted(a / t for a, t in rows if a and t)
    rate = rates[len(rates) // 2] if len(rates) >= 3 else None
    with _estimate_lock:
        _estimate_cache[key] = (now, rate)
    return rate


def estimate_duration(resolution: str, quality: str, duration: int) -> int:
    """Expected processing seconds: from similar finished tasks, else from the formula."""
    rate = _history_rate(resolution, quality)
    if rate is not None:
        return max(1, round(rate * duration))
    width, height = parse_resolution(resolution) or (1280, 720)
    return formula_estimate(width, height, quality, duration)


# --- submit and cancel --------------------------------------------------------------------------

def submit(brief: dict[str, Any], *, submitted_by: str | None = None,
           idempotency_key: str | None = None, parent_id: str | None = None,
           callback: tuple[str, str] | None = None) -> tuple[RenderTask, bool]:
    """Record a validated brief, then publish it. Returns (task, created). `callback` is the
    (endpoint id, URL) of the submit's own callback_url."""
    fingerprint = request_fingerprint(brief)
    if idempotency_key:
        existing = db.session.scalar(select(RenderTask).where(RenderTask.idempotency_key == idempotency_key))
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyConflict(existing.id)
            return existing, False
    config = brief["config"]
    now = utcnow()
    # The row is written as `queued` and published right after the commit: one write per
    # submission. If the broker refuses, the row goes back to `pending` for the reconciler; if
    # this process dies between commit and publish, the reconciler's broker audit finds the
    # queued row with no message and publishes it.
    values = dict(
        id=new_task_id(),
        status=TaskStatus.QUEUED.value,
        priority=brief["priority"],
        queue=VIDEO_QUEUE,
        theme=brief["theme_id"],
        description=brief["user_description_id"],
        resolution=config["resolution"],
        quality=config["quality"],
        target_duration=brief["target_duration_id"],
        request=brief,
        progress=0.0,
        message="Waiting for a worker",  # stored in English; pages translate it
        attempt=0,
        max_attempts=current_app.config["TASK_MAX_RETRIES"] + 1,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
        dispatched_at=now,
        estimated_duration=estimate_duration(config["resolution"], config["quality"],
                                             brief["target_duration_id"]),
        idempotency_key=idempotency_key or None,
        request_hash=fingerprint,
        parent_id=parent_id,
        submitted_by=submitted_by,
    )
    # Core inserts: this is the hot path of every submission.
    try:
        with write_lock():
            db.session.execute(insert(RenderTask.__table__), [values])
            db.session.execute(insert(TaskEvent.__table__), [dict(
                task_id=values["id"], kind="created", status=TaskStatus.QUEUED.value, at=now,
                message=f"Submitted by {submitted_by or 'unknown'}", data={"priority": values["priority"]})])
            if callback is not None:
                db.session.execute(insert(TaskCallback.__table__),
                                   [dict(task_id=values["id"], endpoint_id=callback[0], url=callback[1])])
            db.session.commit()
    except IntegrityError:
        # Two requests raced with the same Idempotency-Key: the other one won.
        db.session.rollback()
        if not idempotency_key:
            raise
        existing = db.session.scalar(select(RenderTask).where(RenderTask.idempotency_key == idempotency_key))
        if existing is None or existing.request_hash != fingerprint:
            raise IdempotencyConflict(existing.id if existing else "") from None
        return existing, False
    task = RenderTask(**values)  # transient: the response needs no reload
    if not dispatch.publish_render(task.id, task.attempt, task.priority, task.queue):
        with write_lock():
            db.session.execute(
                update(RenderTask)
                .where(RenderTask.id == task.id, RenderTask.status == TaskStatus.QUEUED.value,
                       RenderTask.attempt == 0)
                .values(status=TaskStatus.PENDING.value, dispatched_at=None, updated_at=utcnow())
                .execution_options(synchronize_session=False))
            add_event(task.id, "broker_unavailable", "Broker unreachable at submit; the reconciler publishes it",
                      TaskStatus.PENDING.value)
            db.session.commit()
        task.status, task.dispatched_at = TaskStatus.PENDING.value, None
    return task, True


def cancel(task: RenderTask, *, by: str | None = None) -> bool:
    """Cancel a task. Waiting tasks end at once; a running one stops at its next check."""
    if task.is_final:
        return False
    now = utcnow()
    waiting = [s.value for s in WAITING_STATES]
    ended = db.session.execute(
        update(RenderTask)
        .where(RenderTask.id == task.id, RenderTask.status.in_(waiting))
        .values(status=TaskStatus.CANCELLED.value, cancel_requested=True, finished_at=now,
                updated_at=now, message="Cancelled", lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if ended:
        add_event(task.id, "cancelled", f"Cancelled by {by or 'unknown'} before it started",
                  TaskStatus.CANCELLED.value)
        notify.task_changed(db.session, task.id, "task.cancelled")
    else:
        flagged = db.session.execute(
            update(RenderTask)
            .where(RenderTask.id == task.id, RenderTask.status == TaskStatus.PROCESSING.value)
            .values(cancel_requested=True, updated_at=now, message="Cancelling...")
            .execution_options(synchronize_session=False)
        ).rowcount
        if not flagged:
            db.session.rollback()
            return False
        add_event(task.id, "cancel_requested", f"Cancel requested by {by or 'unknown'}")
    db.session.commit()
    notify.after_commit()
    if ended:  # a task cancelled between attempts: drop what the earlier attempts left
        forget_task_files(current_app.config, task.id, keep_outputs=False)
    else:  # a running stage sees the flag within a second; with none running it ends now
        stages.end_cancelled_if_idle(task.id)
    db.session.refresh(task)
    _revoke_messages(task)
    return True


def _revoke_messages(task: RenderTask) -> None:
    """An app cancel is a revoke in Celery's terms too: the attempt's render and stage messages."""
    from webapp.models import RenderStage

    ids = [dispatch.render_message_id(task.id, task.attempt)]
    if task.attempt:
        ids += [dispatch.render_message_id(task.id, task.attempt, stage_id) for stage_id in db.session.scalars(
            select(RenderStage.stage_id).where(RenderStage.task_id == task.id, RenderStage.attempt == task.attempt,
                                               RenderStage.status.in_((StageStatus.WAITING.value, StageStatus.QUEUED.value))))]
    dispatch.revoke(ids)


def cancel_from_broker(celery_id: str) -> bool:
    """A revoke sent from Flower or `celery control revoke`: cancel the task in the app, so the
    reconciler does not publish it again."""
    task = get_task(str(celery_id).split(".", 1)[0])
    if task is None or task.is_final or task.cancel_requested:
        return False
    return cancel(task, by="celery revoke")


#: What a task id may hold (ids look like video_1700000000_abcdef12); anything else is not looked up.
TASK_ID_CHARS = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def get_task(task_id: str) -> RenderTask | None:
    """The task with this id, or None."""
    if not isinstance(task_id, str) or not TASK_ID_CHARS.fullmatch(task_id):
        return None
    return db.session.get(RenderTask, task_id)


def events_of(task_id: str, limit: int = 500) -> list[TaskEvent]:
    """A task's timeline, oldest first."""
    return list(db.session.scalars(
        select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id).limit(limit)))


# --- history ----------------------------------------------------------------------------------

class HistoryError(ValueError):
    """A history filter that cannot be applied; `fields` names it."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("invalid filter")
        self.fields = fields


#: How many values a list filter (status, priority, queue) may carry, and the dates filters accept.
MAX_LIST_VALUES = 20
EARLIEST, LATEST = datetime(1970, 1, 1), datetime(9000, 1, 1)


@dataclass

class HistoryQuery:
    """Filters of the history listing."""

    limit: int = 20
    statuses: list[str] = field(default_factory=list)
    priorities: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    cursor: tuple[datetime, str] | None = None

    @classmethod
    def from_args(cls, args: Any, max_limit: int = 200) -> HistoryQuery:
        """Parse request arguments (`limit`, `status`, `priority`, `queue`, `since`, `until`, `q`, `cursor`)."""
        errors: dict[str, str] = {}
        query = cls()

        def many(name: str) -> list[str]:
            """A list filter's values, de-duplicated in order; at most MAX_LIST_VALUES given."""
            values: dict[str, None] = {}
            given = 0
            for raw in args.getlist(name)[:MAX_LIST_VALUES + 1]:
                for value in raw.split(",")[:MAX_LIST_VALUES + 1]:
                    if value.strip():
                        given += 1
                        values.setdefault(value.strip()[:40])
            if given > MAX_LIST_VALUES:
                errors[name] = _("at most %(n)s values", n=MAX_LIST_VALUES)
            return list(values)

        raw_limit = args.get("limit", "20")
        try:
            query.limit = int(raw_limit)
            if not 1 <= query.limit <= max_limit:
                raise ValueError
        except ValueError:
            errors["limit"] = _("limit must be a whole number from 1 to %(n)s", n=max_limit)
        query.statuses = many("status")
        bad = [s for s in query.statuses if s not in {t.value for t in TaskStatus}]
        if bad:
            errors.setdefault("status", _("unknown status: %(v)s", v=", ".join(bad[:5])))
        query.priorities = many("priority")
        bad = [p for p in query.priorities if p not in PRIORITIES]
        if bad:
            errors.setdefault("priority", _("unknown priority: %(v)s", v=", ".join(bad[:5])))
        query.queues = many("queue")
        bad = [q for q in query.queues if q not in QUEUES]
        if bad:
            errors.setdefault("queue", _("unknown queue: %(v)s", v=", ".join(bad[:5])))
        for name in ("since", "until"):
            raw = (args.get(name) or "").strip()[:64]
            if raw:
                try:
                    moment = parse_iso(raw)
                    if name == "until" and len(raw) == 10:
                        moment += timedelta(days=1)  # a bare date includes that whole day
                except (ValueError, OverflowError):
                    errors[name] = _("use an ISO 8601 date or time")
                    continue
                if not EARLIEST <= moment <= LATEST:
                    errors[name] = _("use a date from %(a)s to %(b)s", a=EARLIEST.year, b=LATEST.year)
                    continue
                setattr(query, name, moment)
        query.text = (args.get("q") or "").replace("\x00", "").strip()[:200]
        raw_cursor = (args.get("cursor") or "").strip()
        if raw_cursor:
            try:
                query.cursor = decode_cursor(raw_cursor)
            except ValueError:
                errors["cursor"] = _("invalid cursor")
        if errors:
            raise HistoryError(errors)
        return query


def encode_cursor(task: RenderTask) -> str:
    return _raw_cursor(task.created_at, task.id)


def _raw_cursor(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        created, task_id = raw.split("|", 1)
        if task_id and not TASK_ID_CHARS.fullmatch(task_id):  # "" was a text-search window (older cursors)
            raise ValueError("bad task id")
        return datetime.fromisoformat(created), task_id
    except Exception as exc:  # any malformed cursor is the client's error
        raise ValueError("bad cursor") from exc


def history(query: HistoryQuery) -> tuple[list[RenderTask], str | None]:
    """Tasks matching the filters, newest first, with the cursor of the next page."""
    conditions: list[Any] = []
    if query.priorities:
        conditions.append(RenderTask.priority.in_(query.priorities))
    if query.queues:
        conditions.append(RenderTask.queue.in_(query.queues))
    if query.since:
        conditions.append(RenderTask.created_at >= query.since)
    if query.until:
        conditions.append(RenderTask.created_at < query.until)
    if query.cursor:
        created, task_id = query.cursor
        # The plain bound lets the database range-scan the created_at index; with the OR alone
        # SQLite walked it from the newest row (110 ms for a page 45 days back at 1M rows).
        conditions.append(RenderTask.created_at <= created)
        conditions.append(or_(RenderTask.created_at < created,
                              and_(RenderTask.created_at == created, RenderTask.id < task_id)))

    def run_page(extra: Sequence[Any] = (), plan: str = "") -> list[RenderTask]:
        stmt = _history_page(query, [*conditions, *extra])
        with search.planned(plan):
            return list(db.session.scalars(stmt))

    if query.text:
        exact = get_task(query.text) if query.text.startswith("video_") else None
        if exact is not None:
            return [exact], None
        rows = search.text_page(query.text, run_page, query.limit, query.cursor[0] if query.cursor else None,
                                query.since, query.until)
    else:
        rows = run_page()
    next_cursor = encode_cursor(rows[query.limit - 1]) if len(rows) > query.limit else None
    return rows[: query.limit], next_cursor


def _history_page(query: HistoryQuery, conditions: list[Any]) -> Any:
    """The statement of one history page (limit + 1 rows, newest first)."""
    newest_first = (RenderTask.created_at.desc(), RenderTask.id.desc())
    if len(query.statuses) > 1:
        # One index-backed page per state, then merged: `status IN (a, b)` made SQLite sort every
        # matching row (0.7 s at 1M rows) before taking the first page.
        pages = [select(RenderTask.id).where(RenderTask.status == status, *conditions)
                 .order_by(*newest_first).limit(query.limit + 1).subquery() for status in query.statuses]
        stmt = select(RenderTask).where(RenderTask.id.in_(union_all(*(select(page.c.id) for page in pages))))
    else:
        stmt = select(RenderTask).where(*conditions)
        if query.statuses:
            stmt = stmt.where(RenderTask.status == query.statuses[0])
    return stmt.order_by(*newest_first).limit(query.limit + 1)


def active_tasks(limit: int = 50) -> list[RenderTask]:
    """Live tasks, running ones first, then by priority and age."""
    # The newest `limit` live tasks. One `status IN (...) ORDER BY created_at` lets SQLite walk the
    # created_at index through every finished row (70 ms at 100k rows); a UNION ALL of one
    # index-backed lookup per state picks the same rows in well under a millisecond.
    newest = [select(RenderTask.id).where(RenderTask.status == state.value)
              .order_by(RenderTask.created_at.desc()).limit(limit).subquery() for state in ACTIVE_STATES]
    candidates = union_all(*(select(part.c.id) for part in newest))
    rows = list(db.session.scalars(
        select(RenderTask).where(RenderTask.id.in_(candidates))
        .order_by(RenderTask.created_at.desc()).limit(limit)))
    order = {TaskStatus.PROCESSING.value: 0, TaskStatus.RETRY.value: 1}
    rows.sort(key=lambda t: (order.get(t.status, 2), -t.priority_value, t.created_at))
    return rows


def counts_by_status() -> dict[str, int]:
    """How many tasks are in each state."""
    rows = db.session.execute(select(RenderTask.status, func.count()).group_by(RenderTask.status)).all()
    return {status: count for status, count in rows}


def api_timestamp() -> str:
    return iso(utcnow()) or ""
