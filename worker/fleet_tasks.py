"""Fleet tasks run by beat: the autoscaler."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from webapp.catalog import TaskName
from webapp.services import autoscale


@shared_task(name=TaskName.AUTOSCALE)
def autoscale_task() -> list[dict[str, Any]]:
    """Evaluate every enabled autoscale policy once and apply its decision."""
    return autoscale.evaluate_all()
