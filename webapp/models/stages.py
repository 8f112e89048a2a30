"""Stages as rows: one row per stage of each attempt of a task (see docs/architecture.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.timeutil import iso


class RenderStage(db.Model):
    """A stage of a task attempt: planned with the storyboard, claimed and finished by conditional
    UPDATEs, re-published by the reconciler when nobody picked it up or its lease expired."""

    __tablename__ = "render_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("render_tasks.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(32))
    #: waiting (inputs missing) -> queued (published) -> running -> done | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    owner: Mapped[str | None] = mapped_column(String(128))
    runner: Mapped[str | None] = mapped_column(String(128))
    runner_host: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(255), default="")
    input_hash: Mapped[str | None] = mapped_column(String(64))
    artifacts: Mapped[list[str] | None] = mapped_column(JSON)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    reused: Mapped[bool] = mapped_column(db.Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("task_id", "attempt", "stage_id", name="uq_render_stages_attempt_stage"),
        Index("ix_render_stages_status", "status", "published_at"),
    )

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage_id, "kind": self.kind, "queue": self.queue, "status": self.status,
            "attempt": self.attempt, "progress": round(self.progress * 100, 1), "runner": self.runner,
            "host": self.runner_host, "reused": self.reused, "tries": self.tries,
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "seconds": self.seconds, "error": (self.error or {}).get("message"),
        }
