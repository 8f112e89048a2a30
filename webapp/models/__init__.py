"""Database models, by area."""

from webapp.models.assets import Asset
from webapp.models.task import RenderTask, TaskEvent
from webapp.models.users import ApiToken, User
from webapp.models.workers import AutoscalePolicy, FleetSupervisor, ScalingDecision, WorkerAudit, WorkerPool, WorkerSlot

__all__ = ["ApiToken", "Asset", "AutoscalePolicy", "FleetSupervisor", "RenderTask", "ScalingDecision", "TaskEvent",
           "User", "WorkerAudit", "WorkerPool", "WorkerSlot"]
