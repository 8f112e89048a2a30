"""The one vocabulary of Aura Render: task states, priorities, queues and roles.

Every layer (models, services, API, templates, Celery configuration, worker) imports these
names instead of repeating literals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TaskStatus(enum.StrEnum):
    """States of a render task, as listed in SPEC.md."""

    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"


#: States a task can still leave: it is "live".
ACTIVE_STATES = (TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.RETRY)
#: States waiting for a worker to claim them.
WAITING_STATES = (TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RETRY)
#: Terminal states.
FINAL_STATES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


@dataclass(frozen=True)
class PriorityLevel:
    """A task priority: SPEC value (10 highest) and its Redis level (0 highest)."""

    name: str
    value: int
    redis_level: int


PRIORITIES: dict[str, PriorityLevel] = {
    "urgent": PriorityLevel("urgent", 10, 0),
    "high": PriorityLevel("high", 8, 3),
    "normal": PriorityLevel("normal", 5, 6),
    "low": PriorityLevel("low", 1, 9),
}
DEFAULT_PRIORITY = "normal"
#: Redis list levels kombu uses for priorities (0 = highest).
PRIORITY_STEPS = [p.redis_level for p in PRIORITIES.values()]


@dataclass(frozen=True)
class QueueSpec:
    """One Celery queue of SPEC.md."""

    name: str
    priority: int
    purpose: str
    concurrency: tuple[int, int]


QUEUES: dict[str, QueueSpec] = {
    q.name: q
    for q in (
        QueueSpec("video_generation", 10, "main video generation flow", (2, 4)),
        QueueSpec("video_processing", 8, "video processing", (2, 4)),
        QueueSpec("audio_processing", 6, "audio processing", (1, 2)),
        QueueSpec("image_processing", 5, "image processing", (2, 4)),
        QueueSpec("maintenance", 2, "system maintenance", (1, 1)),
        QueueSpec("monitoring", 1, "monitoring and health checks", (1, 1)),
        QueueSpec("default", 4, "default queue", (2, 4)),
    )
}
VIDEO_QUEUE = "video_generation"
DEFAULT_QUEUE = "default"

#: Worker groups the run command and the Procfile start: one worker per group.
WORKER_GROUPS: dict[str, tuple[str, ...]] = {
    "video": ("video_generation", "video_processing"),
    "media": ("image_processing", "audio_processing"),
    "ops": ("maintenance", "monitoring", "default"),
}

QUALITIES = ("low", "medium", "high")


class Role(enum.StrEnum):
    """Roles of users and API tokens; each includes the rights of those before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when this role has at least the rights of `needed`."""
        return self.rank >= needed.rank


class TaskName:
    """Celery task names: the web process publishes by name and never imports `worker`."""

    GENERATE = "aura.video.generate"
    STAGE = "aura.stage.run"
    RECONCILE = "aura.maintenance.reconcile"
    CLEANUP = "aura.maintenance.cleanup"
    MONITOR = "aura.monitoring.check"
    AUTOSCALE = "aura.monitoring.autoscale"
    PING = "aura.default.ping"
    WEBHOOK_DELIVER = "aura.webhooks.deliver"
    WEBHOOK_SWEEP = "aura.webhooks.sweep"
    ASSET_PROXY = "aura.assets.proxy"


@dataclass(frozen=True)
class StageSpec:
    """One kind of pipeline stage: the queue its task runs on, its share of the progress bar and
    the message the task row shows while it runs. The one list of stages (docs/architecture.md)."""

    kind: str
    queue: str
    weight: float
    message: str
    needs: tuple[str, ...] = ()


#: Pipeline stages in order. `storyboard` runs inside the claim on video_generation; the others
#: are rows of render_stages (one `render` row per chunk), published when what they need is done.
STAGE_SPECS: dict[str, StageSpec] = {
    s.kind: s
    for s in (
        StageSpec("storyboard", "video_generation", 0.01, "Writing the storyboard..."),
        StageSpec("visuals", "image_processing", 0.06, "Running image processing..."),
        StageSpec("audio", "audio_processing", 0.08, "Running audio processing..."),
        StageSpec("render", "video_processing", 0.75, "Running video processing...", ("visuals",)),
        StageSpec("assemble", "video_processing", 0.10, "Assembling the video...", ("audio", "render")),
    )
}
STAGE_MESSAGES: dict[str, str] = {kind: spec.message for kind, spec in STAGE_SPECS.items()}
STAGE_WEIGHTS: dict[str, float] = {kind: spec.weight for kind, spec in STAGE_SPECS.items()}
STAGES = tuple(STAGE_SPECS)


def stage_kind(stage_id: str) -> str:
    """`chunk-3` -> `render`; other stage ids are their own kind."""
    return "render" if stage_id.startswith("chunk-") else stage_id


#: States of a stage row.
class StageStatus(enum.StrEnum):
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Queue of each task name (a stage is sent to its kind's queue).
TASK_QUEUES: dict[str, str] = {
    TaskName.GENERATE: "video_generation",
    TaskName.STAGE: "video_processing",
    TaskName.RECONCILE: "maintenance",
    TaskName.CLEANUP: "maintenance",
    TaskName.MONITOR: "monitoring",
    TaskName.AUTOSCALE: "monitoring",
    TaskName.PING: "default",
    TaskName.WEBHOOK_DELIVER: "default",
    TaskName.WEBHOOK_SWEEP: "default",
    TaskName.ASSET_PROXY: "video_processing",  # consumed wherever stages run
}


#: What a fleet request (worker control, queue target, autoscale policy) came to. Services speak
#: these outcomes and raise FleetError with the error ones; the views answer with the HTTP status
#: beside each, and the fleet audit log records the same status for its readers.
FLEET_OUTCOME_STATUS: dict[str, int] = {
    "accepted": 202, "saved": 200, "removed": 200,
    "invalid_request": 400, "unknown_action": 400, "unknown_queue": 400,
    "not_found": 404, "already_running": 409, "not_running": 409,
}
