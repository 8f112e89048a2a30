"""Webhook endpoints, the delivery outbox, task batches and alert state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.timeutil import iso, utcnow


class WebhookEndpoint(db.Model):
    """A URL that receives signed event deliveries."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation the old secret keeps signing (a second signature) until this time.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "events": list(self.events or []),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": iso(self.failing_since),
            "secret_rotating_until": iso(self.previous_secret_until) if self.previous_secret else None,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


class WebhookDelivery(db.Model):
    """One event for one endpoint: the outbox row, written with the state change it reports.

    Its id is the `webhook-id` header and stays the same across retries, so receivers de-duplicate.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))  # the endpoint's URL or the task's callback_url
    event: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the exact body sent, fixed at write time
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_task", "task_id"),
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "event": self.event,
            "task_id": self.task_id,
            "status": self.status,
            "attempts": self.attempts,
            "response_code": self.response_code,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "next_attempt_at": iso(self.next_attempt_at) if self.status == "pending" else None,
            "delivered_at": iso(self.delivered_at),
        }


class TaskCallback(db.Model):
    """A submit's own `callback_url`, signed with the secret of the endpoint sharing its origin."""

    __tablename__ = "task_callbacks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))


class TaskBatch(db.Model):
    """Briefs submitted together by `POST /tasks/video/batch`."""

    __tablename__ = "task_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str | None] = mapped_column(String(80))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # replayed for the same key
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BatchItem(db.Model):
    """One task of a batch, by its index in the request."""

    __tablename__ = "batch_items"

    batch_id: Mapped[str] = mapped_column(ForeignKey("task_batches.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64))


class AlertState(db.Model):
    """One alert (backlog of a queue, failure rate, a disabled webhook) and where it stands."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fired_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "state": self.state, "details": self.details or {},
                "fired_at": iso(self.fired_at), "resolved_at": iso(self.resolved_at)}
