"""The Celery configuration shared by every process (web, workers, beat, Flower)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu import Exchange, Queue

from webapp.catalog import DEFAULT_PRIORITY, PRIORITIES, PRIORITY_STEPS, QUEUES, TASK_QUEUES, TaskName


def transport_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Broker transport options; identical everywhere, since the shortest visibility timeout wins."""
    return {
        "priority_steps": PRIORITY_STEPS,
        "sep": ":",
        "queue_order_strategy": "priority",
        "visibility_timeout": config["VISIBILITY_TIMEOUT"],
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }


def celery_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Celery settings derived from the Flask configuration."""
    exchange = Exchange("aura", type="direct")
    reconcile_every = config["RECONCILE_SECONDS"]
    return {
        "broker_url": config["REDIS_URL"],
        "broker_transport_options": transport_options(config),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "default",
        "task_default_exchange": exchange.name,
        "task_default_routing_key": "default",
        "task_queues": [
            Queue(name, exchange, routing_key=name, queue_arguments={"x-max-priority": 10})
            for name in QUEUES
        ],
        "task_routes": {name: {"queue": q, "routing_key": q} for name, q in TASK_QUEUES.items()},
        # An unset priority would be 0, the top: default to "normal".
        "task_default_priority": PRIORITIES[DEFAULT_PRIORITY].redis_level,
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_soft_time_limit": config["TASK_SOFT_TIME_LIMIT"],
        "task_time_limit": config["TASK_TIME_LIMIT"],
        "worker_concurrency": config["CELERY_WORKER_CONCURRENCY"],
        # Celery counts this in kilobytes; the setting is in megabytes.
        "worker_max_memory_per_child": config["CELERY_WORKER_MAX_MEMORY"] * 1024,
        "worker_send_task_events": True,
        # Queued tasks show in Flower as soon as they are published.
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "reconcile": {
                "task": TaskName.RECONCILE,
                "schedule": timedelta(seconds=reconcile_every),
                "options": {"expires": reconcile_every * 2, "priority": 0},
            },
            "cleanup": {
                "task": TaskName.CLEANUP,
                "schedule": timedelta(hours=1),
                "options": {"expires": 600},
            },
            "monitor": {
                "task": TaskName.MONITOR,
                "schedule": timedelta(seconds=config.get("MONITOR_SECONDS", 30)),
                "options": {"expires": config.get("MONITOR_SECONDS", 30)},
            },
            # Publishes webhook deliveries that are due and that no process published (it died
            # between its commit and its publish, or a retry's backoff is over).
            "webhook-sweep": {
                "task": TaskName.WEBHOOK_SWEEP,
                "schedule": timedelta(seconds=config.get("WEBHOOK_SWEEP_SECONDS", 2.0)),
                "options": {"expires": max(2.0, config.get("WEBHOOK_SWEEP_SECONDS", 2.0) * 2)},
            },
            "autoscale": {
                "task": TaskName.AUTOSCALE,
                "schedule": timedelta(seconds=config.get("AUTOSCALE_SECONDS", 10)),
                "options": {"expires": 10},
            },
        },
    }


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app bound to a Flask app; tasks run inside its app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(app.config))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
