"""The worker fleet: desired pools, the slots supervisors claim and report, autoscale policies,
scaling decisions and the audit log of control actions (DESIGN rule 8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.task import EventId
from webapp.timeutil import iso, utcnow

#: A pool with this host runs on whichever supervisor claims its slots first.
ANY_HOST = "any"


class WorkerPool(db.Model):
    """Desired state of one named worker: what `celery worker` runs, where, and how many copies."""

    __tablename__ = "worker_pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    queues: Mapped[list[str]] = mapped_column(JSON)
    concurrency: Mapped[int] = mapped_column(Integer, default=2)
    max_memory_mb: Mapped[int] = mapped_column(Integer, default=512)
    max_tasks_per_child: Mapped[int] = mapped_column(Integer, default=100)
    host: Mapped[str] = mapped_column(String(128), default=ANY_HOST)
    desired_count: Mapped[int] = mapped_column(Integer, default=1)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by "restart": a supervisor restarts every process started at an older generation.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    slots: Mapped[list[WorkerSlot]] = relationship(back_populates="pool", order_by="WorkerSlot.slot",
                                                   cascade="all, delete-orphan", passive_deletes=True)

    @property
    def running(self) -> bool:
        """True when at least one process of this pool is wanted."""
        return self.desired_count > 0

    def slot_name(self, slot: int) -> str:
        """Worker name of copy `slot` (1-based): the pool name, then name-2, name-3, ..."""
        return self.name if slot == 1 else f"{self.name}-{slot}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.name,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "max_memory_mb": self.max_memory_mb,
            "max_tasks_per_child": self.max_tasks_per_child,
            "host": self.host,
            "desired_count": self.desired_count,
            "running": self.running,
            "paused": self.paused,
            "generation": self.generation,
            "created_by": self.created_by,
            "updated_at": iso(self.updated_at),
        }


class WorkerSlot(db.Model):
    """One copy of a pool: claimed by a supervisor under a lease, with what it reports running."""

    __tablename__ = "worker_slots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("worker_pools.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(80))
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    host: Mapped[str | None] = mapped_column(String(128))
    node: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="stopped")
    pid: Mapped[int | None] = mapped_column(Integer)
    queues: Mapped[list[str] | None] = mapped_column(JSON)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    last_exit: Mapped[str | None] = mapped_column(String(80))
    current_tasks: Mapped[list[str] | None] = mapped_column(JSON)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(String(255), default="")

    pool: Mapped[WorkerPool] = relationship(back_populates="slots")

    __table_args__ = (
        UniqueConstraint("pool_id", "slot", name="uq_worker_slots_pool_slot"),
        Index("ix_worker_slots_owner", "owner"),
    )


class FleetSupervisor(db.Model):
    """A supervisor process on one host, as it last reported itself."""

    __tablename__ = "fleet_supervisors"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    max_workers: Mapped[int | None] = mapped_column(Integer)


class AutoscalePolicy(db.Model):
    """Automatic scaling of the workers serving one queue."""

    __tablename__ = "autoscale_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(32), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    min_workers: Mapped[int] = mapped_column(Integer, default=1)
    max_workers: Mapped[int] = mapped_column(Integer, default=4)
    target_backlog_per_worker: Mapped[int] = mapped_column(Integer, default=2)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=120)
    allow_zero: Mapped[bool] = mapped_column(Boolean, default=False)
    last_scaled_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(120))

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "enabled": self.enabled,
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "target_backlog_per_worker": self.target_backlog_per_worker,
            "max_wait_seconds": self.max_wait_seconds,
            "cooldown_seconds": self.cooldown_seconds,
            "allow_zero": self.allow_zero,
            "last_scaled_at": iso(self.last_scaled_at),
            "updated_by": self.updated_by,
        }


class ScalingDecision(db.Model):
    """One autoscale evaluation of a queue: what it saw, what it decided and why.

    A run of identical "no change" decisions is one row whose `repeats` and `last_at` grow, so an
    idle fleet does not write a row per queue every ten seconds.
    """

    __tablename__ = "scaling_decisions"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    repeats: Mapped[int] = mapped_column(Integer, default=1)
    queue: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    current: Mapped[int] = mapped_column(Integer)
    desired: Mapped[int] = mapped_column(Integer)
    backlog: Mapped[int | None] = mapped_column(Integer)
    oldest_wait_seconds: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_scaling_decisions_queue_id", "queue", "id"),)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at), "last_at": iso(self.last_at), "repeats": self.repeats,
            "queue": self.queue, "source": self.source, "action": self.action,
            "current": self.current, "desired": self.desired, "backlog": self.backlog,
            "oldest_wait_seconds": self.oldest_wait_seconds, "reason": self.reason,
        }


class WorkerAudit(db.Model):
    """Who did what to the fleet, when, and how it ended."""

    __tablename__ = "worker_audit"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(80))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status_code: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_worker_audit_at", "at"),)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at), "actor": self.actor, "action": self.action, "target": self.target,
            "params": self.params, "status_code": self.status_code, "result": self.result,
            "message": self.message,
        }
