"""Read models of the dashboard pages: each helper is one SQL query, whatever the row count."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, union_all

from webapp.catalog import ACTIVE_STATES, PRIORITIES, QUEUES, WAITING_STATES, TaskStatus
from webapp.extensions import db
from webapp.models import ApiToken, RenderTask, User
from webapp.timeutil import utcnow

CHART_MINUTES = 60
CHART_BUCKET_MINUTES = 5


@dataclass
class GridCell:
    """Waiting tasks of one queue at one priority."""

    waiting: int = 0
    oldest_seconds: float | None = None
    broker: int | None = None


@dataclass
class QueueRow:
    """One queue of the queue x priority grid."""

    name: str
    cells: dict[str, GridCell]
    waiting: int = 0
    oldest_seconds: float | None = None
    broker: int | None = None


def waiting_grid(depths: dict[str, dict[str, int]] | None) -> list[QueueRow]:
    """Waiting tasks by queue and priority with the oldest wait, merged with broker depths.

    One grouped query; `depths` is broker.queue_depths() (None when Redis is down).
    """
    now = utcnow()
    waiting = [s.value for s in WAITING_STATES]
    found: dict[tuple[str, str], tuple[int, datetime | None]] = {}
    # One grouped select per waiting state, glued with UNION ALL: each is an index lookup on
    # (status, queue, ...), where `status IN (...)` made SQLite scan every row (50 ms at 100k).
    per_state = union_all(*(
        select(RenderTask.queue, RenderTask.priority, func.count(), func.min(RenderTask.created_at))
        .where(RenderTask.status == state).group_by(RenderTask.queue, RenderTask.priority)
        for state in waiting))
    for queue, priority, count, oldest in db.session.execute(per_state):
        known_count, known_oldest = found.get((queue, priority), (0, None))
        if known_oldest is not None and (oldest is None or known_oldest < oldest):
            oldest = known_oldest
        found[(queue, priority)] = (known_count + count, oldest)
    rows = []
    for name, _spec in sorted(QUEUES.items(), key=lambda kv: -kv[1].priority):
        cells = {}
        for prio in PRIORITIES:
            count, oldest = found.get((name, prio), (0, None))
            broker_count = depths.get(name, {}).get(prio) if depths is not None else None
            cells[prio] = GridCell(count, (now - oldest).total_seconds() if oldest else None, broker_count)
        ages = [c.oldest_seconds for c in cells.values() if c.oldest_seconds is not None]
        rows.append(QueueRow(
            name=name, cells=cells, waiting=sum(c.waiting for c in cells.values()),
            oldest_seconds=max(ages) if ages else None,
            broker=sum(c.broker or 0 for c in cells.values()) if depths is not None else None,
        ))
    return rows


@dataclass
class ChartBucket:
    """Completions and failures in one time bucket."""

    start: datetime
    completed: int = 0
    failed: int = 0


@dataclass
class ThroughputChart:
    """Completions and failures over the last hour in fixed buckets, ready to draw as SVG."""

    buckets: list[ChartBucket] = field(default_factory=list)
    bucket_minutes: int = CHART_BUCKET_MINUTES

    @property
    def completed(self) -> int:
        return sum(b.completed for b in self.buckets)

    @property
    def failed(self) -> int:
        return sum(b.failed for b in self.buckets)

    @property
    def peak(self) -> int:
        return max([b.completed + b.failed for b in self.buckets] + [1])

    def bars(self, width: float = 600, height: float = 120) -> list[dict[str, Any]]:
        """Geometry of stacked bars (completed below, failed on top) for the template."""
        slot = width / max(1, len(self.buckets))
        scale = (height - 4) / self.peak
        bars = []
        for i, bucket in enumerate(self.buckets):
            done_h = bucket.completed * scale
            fail_h = bucket.failed * scale
            bars.append({
                "x": round(i * slot + slot * 0.1, 1), "w": round(slot * 0.8, 1),
                "done_y": round(height - done_h, 1), "done_h": round(done_h, 1),
                "fail_y": round(height - done_h - fail_h, 1), "fail_h": round(fail_h, 1),
                "bucket": bucket,
            })
        return bars


def _minute_expr() -> Any:
    """SQL text of `finished_at` truncated to the minute, `YYYY-MM-DDTHH:MM`, per dialect."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(RenderTask.finished_at, 'YYYY-MM-DD"T"HH24:MI')
    return func.strftime("%Y-%m-%dT%H:%M", RenderTask.finished_at)


def throughput_chart(now: datetime | None = None, minutes: int = CHART_MINUTES,
                     bucket_minutes: int = CHART_BUCKET_MINUTES) -> ThroughputChart:
    """Completed and failed tasks per bucket over the last `minutes`: one grouped query by minute."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    count = minutes // bucket_minutes
    # The newest bucket ends with the current minute, so the chart moves once per minute.
    first = now + timedelta(minutes=1) - timedelta(minutes=bucket_minutes * count)
    chart = ThroughputChart([ChartBucket(first + timedelta(minutes=bucket_minutes * i)) for i in range(count)],
                            bucket_minutes)
    minute = _minute_expr()
    done, failed = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value
    # Only finished_at in the WHERE: its index is then the plan (a status filter there lets SQLite
    # prefer the status index and walk every completed row); cancelled rows are skipped below.
    for label, status, n in db.session.execute(
        select(minute, RenderTask.status, func.count())
        .where(RenderTask.finished_at >= first)
        .group_by(minute, RenderTask.status)
    ):
        if status not in (done, failed):
            continue
        at = datetime.fromisoformat(label)
        index = int((at - first).total_seconds() // 60) // bucket_minutes
        if 0 <= index < count:
            bucket = chart.buckets[index]
            if status == done:
                bucket.completed += n
            else:
                bucket.failed += n
    return chart


_STAMP = text("SELECT max(updated_at) FROM render_tasks")


def board_stamp() -> str:
    """The newest `updated_at` of any task, as text: one index lookup, run on every poll.

    Every change the live board shows (a new task, progress, a stage, a start, an end, a
    cancellation) writes `updated_at`, so the board can be rebuilt only when this moves.
    """
    return str(db.session.execute(_STAMP).scalar())


def live_counts_by_submitter() -> dict[str, dict[str, int]]:
    """Live tasks per submitter and state: {submitted_by: {status: count}} (one index-backed
    grouped select per live state, like the waiting grid)."""
    per_state = union_all(*(
        select(RenderTask.submitted_by, RenderTask.status, func.count())
        .where(RenderTask.status == state.value).group_by(RenderTask.submitted_by, RenderTask.status)
        for state in ACTIVE_STATES))
    counts: dict[str, dict[str, int]] = {}
    for who, status, n in db.session.execute(per_state):
        if who:
            counts.setdefault(who, {})[status] = n
    return counts


def recent_finished(limit: int = 8) -> list[RenderTask]:
    """The most recently finished tasks, newest first."""
    return list(db.session.scalars(
        select(RenderTask).where(RenderTask.finished_at.is_not(None))
        .order_by(RenderTask.finished_at.desc()).limit(limit)))


def resubmissions_of(task: RenderTask, limit: int = 20) -> list[RenderTask]:
    """Tasks submitted again from this one (their parent_id), newest first."""
    return list(db.session.scalars(
        select(RenderTask).where(RenderTask.parent_id == task.id)
        .order_by(RenderTask.created_at.desc()).limit(limit)))


def tokens_of(user: User) -> list[ApiToken]:
    """A user's API tokens, live ones first, newest first."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())))


def token_of(user: User, token_id: int) -> ApiToken | None:
    """The user's own token with this id, or None (another user's token is not theirs to revoke)."""
    return db.session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))


def user_by_name(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))
