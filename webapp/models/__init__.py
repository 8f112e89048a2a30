"""Database models, by area."""

from webapp.models.stages import RenderStage
from webapp.models.task import RenderTask, TaskEvent
from webapp.models.users import ApiToken, User
from webapp.models.workers import AutoscalePolicy, FleetSupervisor, ScalingDecision, WorkerAudit, WorkerPool, WorkerSlot

__all__ = ["ApiToken", "AutoscalePolicy", "FleetSupervisor", "RenderStage", "RenderTask", "ScalingDecision", "TaskEvent",
           "User", "WorkerAudit", "WorkerPool", "WorkerSlot"]
