"""Render tasks and their append-only event timeline: the one record of every task."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.catalog import ACTIVE_STATES, FINAL_STATES, PRIORITIES, TaskStatus
from webapp.extensions import db
from webapp.storage import with_urls
from webapp.timeutil import iso, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class RenderTask(db.Model):
    """One video request and everything that happened to it."""

    __tablename__ = "render_tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING.value)
    priority: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str] = mapped_column(String(32))
    theme: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(String(16))
    quality: Mapped[str] = mapped_column(String(8))
    target_duration: Mapped[int] = mapped_column(Integer)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(255), default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=4)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime)
    estimated_duration: Mapped[int] = mapped_column(Integer, default=0)
    actual_duration: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(64))
    submitted_by: Mapped[str | None] = mapped_column(String(80))

    events: Mapped[list[TaskEvent]] = relationship(
        back_populates="task", order_by="TaskEvent.id", cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index("ix_render_tasks_created", "created_at", "id"),
        Index("ix_render_tasks_status_created", "status", "created_at", "id"),
        Index("ix_render_tasks_queue_created", "queue", "created_at", "id"),
        Index("ix_render_tasks_priority_created", "priority", "created_at", "id"),
        Index("ix_render_tasks_similar", "resolution", "quality", "status", "finished_at"),
        Index("ix_render_tasks_finished", "finished_at"),
        Index("ix_render_tasks_status_queue", "status", "queue", "created_at"),
        Index("ix_render_tasks_parent", "parent_id"),
        # max(updated_at) is the live board's change stamp.
        Index("ix_render_tasks_updated", "updated_at"),
        Index("ix_render_tasks_submitter_status", "submitted_by", "status"),
    )

    @property
    def is_live(self) -> bool:
        """True while the task can still change state."""
        return self.status in {s.value for s in ACTIVE_STATES}

    @property
    def is_final(self) -> bool:
        return self.status in {s.value for s in FINAL_STATES}

    @property
    def priority_value(self) -> int:
        return PRIORITIES[self.priority].value

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left, from elapsed time and progress (or the estimate before progress)."""
        if self.status != TaskStatus.PROCESSING.value or self.started_at is None:
            return None
        elapsed = (utcnow() - self.started_at).total_seconds()
        if self.progress >= 3.0:
            return max(0.0, elapsed * (100.0 - self.progress) / self.progress)
        return max(0.0, float(self.estimated_duration) - elapsed)

    @property
    def result_view(self) -> dict[str, Any] | None:
        """The result with the /media URL of each file (URLs are derived here, not stored)."""
        return with_urls(self.result, self.id)

    def error_text(self) -> str | None:
        """A one-line description of the error, for the API's `error` field."""
        if not self.error:
            return None
        kind = self.error.get("type") or "Error"
        return f"{kind}: {self.error.get('message', '')}".strip()

    def to_status(self, tracebacks: bool = False) -> dict[str, Any]:
        """The status document of SPEC.md (`GET /tasks/status/{task_id}`); tracebacks for admins only."""
        return {
            "task_id": self.id,
            "status": self.status,
            "priority": self.priority,
            "progress": round(float(self.progress or 0.0), 1),
            "message": self.message,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "estimated_duration": self.estimated_duration,
            "actual_duration": None if self.actual_duration is None else round(self.actual_duration, 1),
            "result": self.result_view,
            "error": self.error_text(),
            "error_detail": visible_error(self.error, tracebacks),
            "queue": self.queue,
            "stage": self.stage,
            "attempt": self.attempt,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "cancel_requested": self.cancel_requested,
            "parent_id": self.parent_id,
            "request": self.request,
            "stages": [stage.to_dict() for stage in self.stage_rows()],
        }

    def stage_rows(self) -> list[Any]:
        """The stage rows of the current attempt, in pipeline order, each with its runner."""
        from webapp.models.stages import RenderStage

        if not self.attempt:
            return []
        return list(db.session.scalars(
            db.select(RenderStage).where(RenderStage.task_id == self.id, RenderStage.attempt == self.attempt)
            .order_by(RenderStage.id)))

    def to_summary(self) -> dict[str, Any]:
        """The short form used by history listings."""
        return {
            "task_id": self.id,
            "status": self.status,
            "priority": self.priority,
            "queue": self.queue,
            "theme": self.theme,
            "progress": round(float(self.progress or 0.0), 1),
            "message": self.message,
            "resolution": self.resolution,
            "quality": self.quality,
            "target_duration": self.target_duration,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
            "actual_duration": None if self.actual_duration is None else round(self.actual_duration, 1),
            "error": self.error_text(),
        }


class TaskEvent(db.Model):
    """One entry of a task's timeline: state change, retry, error or control action."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("render_tasks.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    task: Mapped[RenderTask] = relationship(back_populates="events")

    __table_args__ = (
        Index("ix_task_events_task", "task_id", "id"),
        Index("ix_task_events_at", "at"),
    )

    def to_dict(self, tracebacks: bool = False) -> dict[str, Any]:
        data = self.data
        if isinstance(data, dict) and isinstance(data.get("error"), dict) and not tracebacks:
            data = {**data, "error": visible_error(data["error"], False)}
        return {
            "at": iso(self.at),
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "data": data,
        }


def visible_error(error: dict[str, Any] | None, tracebacks: bool) -> dict[str, Any] | None:
    """A task error as a reader may see it: type, message and stage; the traceback for admins only."""
    if not error or tracebacks:
        return error
    return {k: v for k, v in error.items() if k != "traceback"}
