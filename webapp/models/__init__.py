"""Database models, by area."""

from webapp.models.task import RenderTask, TaskEvent
from webapp.models.users import ApiToken, User

__all__ = ["ApiToken", "RenderTask", "TaskEvent", "User"]
