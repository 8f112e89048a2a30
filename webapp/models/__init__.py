"""Database models, by area."""

from webapp.models.assets import Asset
from webapp.models.stages import RenderStage
from webapp.models.task import RenderTask, TaskEvent
from webapp.models.users import ApiToken, User
from webapp.models.webhooks import (
    AlertState,
    BatchItem,
    TaskBatch,
    TaskCallback,
    WebhookDelivery,
    WebhookEndpoint,
)
from webapp.models.workers import AutoscalePolicy, FleetSupervisor, ScalingDecision, WorkerAudit, WorkerPool, WorkerSlot

__all__ = ["AlertState", "ApiToken", "Asset", "AutoscalePolicy", "BatchItem", "FleetSupervisor", "RenderStage", "RenderTask",
           "ScalingDecision", "TaskBatch", "TaskCallback", "TaskEvent", "WebhookDelivery", "WebhookEndpoint",
           "User", "WorkerAudit", "WorkerPool", "WorkerSlot"]
