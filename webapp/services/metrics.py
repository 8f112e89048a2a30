"""Prometheus metrics: counters and histograms recorded where things happen, and a collector that
reads the database and Redis at scrape time for what they hold the truth of.

Under gunicorn (and the workers the run command starts) PROMETHEUS_MULTIPROC_DIR is set, so every
process writes its samples to files there and /metrics adds them up (prometheus-client's
multiprocess mode).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select

from webapp.catalog import PRIORITIES, QUEUES, TaskStatus

DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, float("inf"))
RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3, 5, float("inf"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))

TASKS_FINISHED = Counter("aura_tasks_finished_total", "Tasks that reached a final state, by state.",
                         ["status", "quality", "resolution_class"])
TASK_RETRIES = Counter("aura_task_retries_total", "Attempts that failed and were scheduled again.",
                       ["quality", "resolution_class"])
TASK_DURATION = Histogram("aura_task_duration_seconds", "Processing time of completed tasks.",
                          ["quality", "resolution_class"], buckets=DURATION_BUCKETS)
STAGE_DURATION = Histogram("aura_stage_duration_seconds", "Time of each pipeline stage run.",
                           ["stage", "quality", "resolution_class"], buckets=DURATION_BUCKETS)
ESTIMATE_RATIO = Histogram("aura_task_actual_to_estimated_ratio",
                           "Actual processing time divided by the estimate given at submit.",
                           ["quality", "resolution_class"], buckets=RATIO_BUCKETS)
WEBHOOK_ATTEMPTS = Counter("aura_webhook_deliveries_total", "Webhook delivery attempts, by outcome.",
                           ["event", "outcome"])
WEBHOOK_LATENCY = Histogram("aura_webhook_delivery_seconds", "Time of one webhook POST.",
                            buckets=LATENCY_BUCKETS)
HTTP_LATENCY = Histogram("aura_http_request_duration_seconds", "Latency of the web app's answers.",
                         ["method", "route", "status"], buckets=LATENCY_BUCKETS)


def resolution_class(resolution: str | None) -> str:
    """sd (<= 480 lines), hd (<= 720), fhd (<= 1080) or uhd, from `WxH`."""
    try:
        width, height = (int(part) for part in str(resolution).lower().split("x", 1))
    except ValueError:
        return "unknown"
    lines = min(width, height)
    return "sd" if lines <= 480 else "hd" if lines <= 720 else "fhd" if lines <= 1080 else "uhd"


def observe_task(event: str, quality: str, resolution: str, actual: float | None,
                 estimated: int | None) -> None:
    """Record a task's state change (called with the outbox hook, after the row changed)."""
    labels = {"quality": quality, "resolution_class": resolution_class(resolution)}
    if event == "task.retrying":
        TASK_RETRIES.labels(**labels).inc()
        return
    status = event.removeprefix("task.")
    if status not in ("completed", "failed", "cancelled"):
        return
    TASKS_FINISHED.labels(status=status, **labels).inc()
    if status == "completed" and actual is not None:
        TASK_DURATION.labels(**labels).observe(actual)
        if estimated:
            ESTIMATE_RATIO.labels(**labels).observe(actual / estimated)


def observe_stage(stage: str, quality: str, resolution: str, seconds: float) -> None:
    kind = "render" if stage.startswith("chunk-") else stage
    STAGE_DURATION.labels(stage=kind, quality=quality, resolution_class=resolution_class(resolution)).observe(seconds)


def observe_delivery(event: str, ok: bool, seconds: float) -> None:
    WEBHOOK_ATTEMPTS.labels(event=event, outcome="delivered" if ok else "failed").inc()
    WEBHOOK_LATENCY.observe(seconds)


class StateCollector(Collector):
    """Gauges read at scrape time from the database and Redis."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from webapp.extensions import db
        from webapp.models import AlertState, RenderTask, WebhookDelivery, WorkerPool, WorkerSlot
        from webapp.services import broker
        from webapp.timeutil import utcnow

        waiting = GaugeMetricFamily("aura_queue_waiting_messages",
                                    "Messages waiting in the broker, by queue and priority.",
                                    labels=["queue", "priority"])
        depths = broker.queue_depths()
        for queue, levels in (depths or {}).items():
            for priority in PRIORITIES:
                waiting.add_metric([queue, priority], levels.get(priority, 0))
        yield waiting
        yield GaugeMetricFamily("aura_broker_up", "1 when Redis answered this scrape.",
                                value=0 if depths is None else 1)

        now = utcnow()
        oldest = GaugeMetricFamily("aura_queue_oldest_wait_seconds",
                                   "Age of the oldest task waiting for a worker, by queue.", labels=["queue"])
        waiting_states = [TaskStatus.PENDING.value, TaskStatus.QUEUED.value]
        rows = dict(db.session.execute(
            select(RenderTask.queue, func.min(RenderTask.created_at))
            .where(RenderTask.status.in_(waiting_states)).group_by(RenderTask.queue)).all())
        for queue in QUEUES:
            first = rows.get(queue)
            oldest.add_metric([queue], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield oldest

        states = GaugeMetricFamily("aura_tasks", "Tasks by state.", labels=["state"])
        counts = dict(db.session.execute(select(RenderTask.status, func.count()).group_by(RenderTask.status)).all())
        for state in TaskStatus:
            states.add_metric([state.value], counts.get(state.value, 0))
        yield states

        desired = GaugeMetricFamily("aura_pool_desired_workers", "Worker processes wanted, by pool.",
                                    labels=["pool"])
        running = GaugeMetricFamily("aura_pool_running_workers", "Worker processes reported running, by pool.",
                                    labels=["pool"])
        restarts = GaugeMetricFamily("aura_supervisor_restarts",
                                     "Crash restarts of a pool's current worker processes.", labels=["pool"])
        pools = db.session.execute(select(WorkerPool.id, WorkerPool.name, WorkerPool.desired_count)).all()
        slot_rows = db.session.execute(
            select(WorkerSlot.pool_id, WorkerSlot.state, WorkerSlot.restarts, WorkerSlot.lease_expires_at)).all()
        for pool in pools:
            mine = [s for s in slot_rows if s.pool_id == pool.id]
            desired.add_metric([pool.name], pool.desired_count)
            running.add_metric([pool.name], sum(1 for s in mine if s.state == "running"
                                                and s.lease_expires_at and s.lease_expires_at > now))
            restarts.add_metric([pool.name], sum(s.restarts or 0 for s in mine))
        yield desired
        yield running
        yield restarts

        outbox = GaugeMetricFamily("aura_webhook_outbox", "Webhook deliveries by status.", labels=["status"])
        by_status = dict(db.session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all())
        for status in ("pending", "delivered", "failed"):
            outbox.add_metric([status], by_status.get(status, 0))
        yield outbox

        firing = GaugeMetricFamily("aura_alerts_firing", "Built-in alerts firing now, by kind.", labels=["kind"])
        alerts = dict(db.session.execute(select(AlertState.kind, func.count())
                                         .where(AlertState.state == "firing").group_by(AlertState.kind)).all())
        for kind in ("backlog", "failure_rate", "webhook_disabled"):
            firing.add_metric([kind], alerts.get(kind, 0))
        yield firing
        db.session.rollback()


_state_collector = StateCollector()


def exposition() -> bytes:
    """The text of /metrics: this process's (or every process's) samples plus the state gauges."""
    multiproc = current_app.config.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc)
        return generate_latest(registry) + generate_latest(_single(_state_collector))
    return generate_latest(REGISTRY) + generate_latest(_single(_state_collector))


def _single(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def address_allowed(remote: str | None, allowed: list[str]) -> bool:
    """True when the client address is within METRICS_ALLOWED_IPS."""
    if not remote or not allowed:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def init_app(app: Flask) -> None:
    """Time every request of the app."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Any) -> Any:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            HTTP_LATENCY.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response
