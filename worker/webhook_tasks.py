"""Webhook delivery on the `default` queue: one task per delivery, and beat's outbox sweep."""

from __future__ import annotations

from celery import shared_task

from webapp.catalog import TaskName
from webapp.services import webhooks


@shared_task(name=TaskName.WEBHOOK_DELIVER)
def deliver(delivery_id: str) -> str:
    """POST one outbox row to its URL; reschedules itself with backoff on failure."""
    return webhooks.deliver(str(delivery_id))


@shared_task(name=TaskName.WEBHOOK_SWEEP)
def sweep() -> int:
    """Publish due deliveries nobody published (a process died after its commit) or retried;
    once an hour also forget deliveries and batches past the retention period."""
    if webhooks.cleanup_due():
        webhooks.cleanup()
    return webhooks.sweep()
