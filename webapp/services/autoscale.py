"""Queue targets, by hand and by policy: every decision (or decision not to act) is recorded."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select

from webapp.catalog import QUEUES, WAITING_STATES, TaskStatus
from webapp.extensions import db
from webapp.models import AutoscalePolicy, RenderTask, ScalingDecision
from webapp.services import broker
from webapp.services.workers import (
    TARGET_RANGE,
    FleetError,
    audit,
    parse_int,
    parse_queues,
    set_queue_target,
    workers_serving,
)
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
LOCK_KEY = "aura:lock:autoscale"
AUTOSCALER = "autoscaler"
COOLDOWN_RANGE = (0, 86400)
BACKLOG_RANGE = (1, 10000)
WAIT_RANGE = (1, 86400)


def record_decision(queue: str, source: str, action: str, current: int, desired: int,
                    backlog: int | None, oldest_wait: float | None, reason: str) -> ScalingDecision:
    """Write a decision; a repeat of the previous "none" decision only bumps its counter."""
    now = utcnow()
    last = db.session.scalar(select(ScalingDecision).where(ScalingDecision.queue == queue)
                             .order_by(ScalingDecision.id.desc()).limit(1))
    if (last is not None and action == "none" and last.action == "none" and last.source == source
            and last.current == current and last.desired == desired):
        last.repeats += 1
        last.last_at = now
        last.reason = reason
        last.backlog = backlog
        last.oldest_wait_seconds = oldest_wait
        db.session.commit()
        return last
    row = ScalingDecision(at=now, last_at=now, repeats=1, queue=queue, source=source, action=action,
                          current=current, desired=desired, backlog=backlog,
                          oldest_wait_seconds=None if oldest_wait is None else round(oldest_wait, 1),
                          reason=reason[:2000])
    db.session.add(row)
    db.session.commit()
    return row


def recent_decisions(limit: int = 50, queue: str | None = None) -> list[ScalingDecision]:
    query = select(ScalingDecision).order_by(ScalingDecision.id.desc()).limit(limit)
    if queue:
        query = query.where(ScalingDecision.queue == queue)
    return list(db.session.scalars(query))


def manual_target(queue_value: Any, target_value: Any, actor: str) -> dict[str, Any]:
    """POST /tasks/workers/autoscale: validate, set the queue's target, audit and log it."""
    params = {"queue": queue_value, "target_workers": target_value}
    label = str(queue_value)[:80] if queue_value not in (None, "") else None
    try:
        queues = parse_queues(queue_value)
        if len(queues) != 1:
            raise FleetError("invalid_request", "Give exactly one queue.", {"queue": "One queue."})
        target = parse_int(target_value, "target_workers", TARGET_RANGE)
        plan = set_queue_target(queues[0], target, actor)
    except FleetError as exc:
        db.session.rollback()
        audit(actor, "autoscale", label, params, exc.error, exc.message)
        raise
    answer = plan.to_dict()
    audit(actor, "autoscale", queues[0], params, "accepted", answer["message"])
    action = "scale_up" if plan.target > plan.current else "scale_down" if plan.target < plan.current else "none"
    record_decision(queues[0], "manual", action, plan.current, plan.target, None, None,
                    f"Target set by {actor}. {answer['message']}")
    return answer


# --- policies -----------------------------------------------------------------------------------

def policies() -> list[AutoscalePolicy]:
    return list(db.session.scalars(select(AutoscalePolicy).order_by(AutoscalePolicy.queue)))


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise FleetError("invalid_request", f"{name} must be true or false.", {name: "true or false."})


def save_policy(body: Any, actor: str) -> AutoscalePolicy:
    """Create or replace the policy of one queue; audited."""
    if not isinstance(body, dict):
        raise FleetError("invalid_request", "The body must be a JSON object.")
    label = body.get("queue") if isinstance(body.get("queue"), str) else None
    try:
        queues = parse_queues(body.get("queue"))
        if len(queues) != 1:
            raise FleetError("invalid_request", "Give exactly one queue.", {"queue": "One queue."})
        allow_zero = _flag(body.get("allow_zero"), "allow_zero", False)
        low = parse_int(body.get("min_workers"), "min_workers", TARGET_RANGE, default=0 if allow_zero else 1)
        high = parse_int(body.get("max_workers"), "max_workers", TARGET_RANGE, default=max(low, 4))
        if low > high:
            raise FleetError("invalid_request", "min_workers cannot exceed max_workers.",
                             {"min_workers": "At most max_workers."})
        if low == 0 and not allow_zero:
            raise FleetError("invalid_request", "min_workers 0 needs allow_zero.",
                             {"min_workers": "At least 1 unless allow_zero is set."})
        per_worker = parse_int(body.get("target_backlog_per_worker"), "target_backlog_per_worker",
                               BACKLOG_RANGE, default=2)
        max_wait = body.get("max_wait_seconds")
        max_wait = None if max_wait in (None, "", 0, "0") else parse_int(max_wait, "max_wait_seconds", WAIT_RANGE)
        cooldown = parse_int(body.get("cooldown_seconds"), "cooldown_seconds", COOLDOWN_RANGE, default=120)
        enabled = _flag(body.get("enabled"), "enabled", True)
    except FleetError as exc:
        audit(actor, "policy", label, body, exc.error, exc.message)
        raise
    policy = db.session.scalar(select(AutoscalePolicy).where(AutoscalePolicy.queue == queues[0]))
    if policy is None:
        policy = AutoscalePolicy(queue=queues[0])
        db.session.add(policy)
    policy.enabled = enabled
    policy.min_workers = low
    policy.max_workers = high
    policy.target_backlog_per_worker = per_worker
    policy.max_wait_seconds = max_wait
    policy.cooldown_seconds = cooldown
    policy.allow_zero = allow_zero
    policy.updated_at = utcnow()
    policy.updated_by = actor
    db.session.commit()
    audit(actor, "policy", queues[0], policy.to_dict(), "saved",
          f"Autoscale policy of {queues[0]} {'enabled' if enabled else 'disabled'}: "
          f"{low}-{high} workers, {per_worker} tasks per worker, cooldown {cooldown}s.")
    return policy


def delete_policy(queue: str, actor: str) -> None:
    policy = db.session.scalar(select(AutoscalePolicy).where(AutoscalePolicy.queue == queue))
    if policy is None:
        audit(actor, "policy_delete", queue[:80], None, "not_found", f"No policy for {queue}.")
        raise FleetError("not_found", f"No autoscale policy for queue {queue}.")
    db.session.delete(policy)
    db.session.commit()
    audit(actor, "policy_delete", queue, None, "removed", f"Autoscale policy of {queue} removed.")


# --- evaluation -----------------------------------------------------------------------------------

@dataclass
class QueueLoad:
    """What a policy looks at for one queue."""

    waiting: int
    processing: int
    oldest_wait: float | None


def queue_loads(now: datetime) -> dict[str, QueueLoad] | None:
    """Broker depth, running tasks and oldest wait per queue; None when the broker is down."""
    depths = broker.queue_depths()
    if depths is None:
        return None
    processing = dict(db.session.execute(
        select(RenderTask.queue, func.count()).where(RenderTask.status == TaskStatus.PROCESSING.value)
        .group_by(RenderTask.queue)).all())
    oldest = dict(db.session.execute(
        select(RenderTask.queue, func.min(RenderTask.created_at))
        .where(RenderTask.status.in_([s.value for s in WAITING_STATES])).group_by(RenderTask.queue)).all())
    return {q: QueueLoad(sum(depths.get(q, {}).values()), int(processing.get(q, 0)),
                         (now - oldest[q]).total_seconds() if oldest.get(q) else None)
            for q in QUEUES}


def decide(policy: AutoscalePolicy, load: QueueLoad, current: int, now: datetime) -> tuple[str, int, str]:
    """(action, desired, reason) for one policy; pure, so it is tested on its own."""
    floor = policy.min_workers if policy.allow_zero else max(1, policy.min_workers)
    ceiling = max(floor, policy.max_workers)
    work = load.waiting + load.processing
    need = math.ceil(work / policy.target_backlog_per_worker)
    desired = min(ceiling, max(floor, need))
    reason = (f"{load.waiting} waiting + {load.processing} running at {policy.target_backlog_per_worker} "
              f"per worker needs {need}; bounds {floor}-{ceiling}")
    if (policy.max_wait_seconds and load.waiting and load.oldest_wait is not None
            and load.oldest_wait > policy.max_wait_seconds and desired <= current < ceiling):
        desired = current + 1
        reason = (f"oldest task waited {load.oldest_wait:.0f}s > {policy.max_wait_seconds}s; "
                  f"one more worker ({reason})")
    if desired > current:
        return "scale_up", desired, f"Scale up {current} -> {desired}: {reason}."
    if desired < current:
        if policy.last_scaled_at is not None:
            since = (now - policy.last_scaled_at).total_seconds()
            if since < policy.cooldown_seconds:
                return "none", current, (f"Would scale down {current} -> {desired}, but in cooldown "
                                         f"({policy.cooldown_seconds - since:.0f}s left): {reason}.")
        return "scale_down", desired, f"Scale down {current} -> {desired}: {reason}."
    return "none", current, f"No change at {current}: {reason}."


def evaluate_all() -> list[dict[str, Any]]:
    """One autoscale pass over every enabled policy (beat, on `monitoring`)."""
    client = broker.redis_client()
    interval = int(current_app.config.get("AUTOSCALE_SECONDS", 10))
    try:
        if not client.set(LOCK_KEY, "1", nx=True, ex=max(2, interval)):
            return []  # an overlapping pass is running
    except redis.RedisError:
        return []
    try:
        return _evaluate(utcnow())
    finally:
        try:
            client.delete(LOCK_KEY)
        except redis.RedisError:
            pass


def _evaluate(now: datetime) -> list[dict[str, Any]]:
    active = [p for p in policies() if p.enabled]
    if not active:
        return []
    loads = queue_loads(now)
    decisions = []
    for policy in active:
        current = workers_serving(policy.queue)
        if loads is None:
            row = record_decision(policy.queue, "policy", "none", current, current, None, None,
                                  "Broker unreachable: queue depth unknown, no change.")
            decisions.append(row.to_dict())
            continue
        load = loads[policy.queue]
        action, desired, reason = decide(policy, load, current, now)
        if action != "none":
            plan = set_queue_target(policy.queue, desired, AUTOSCALER)
            policy.last_scaled_at = now
            db.session.commit()
            reason = f"{reason} {plan.to_dict()['message']}"
            log.info("autoscale %s: %s", policy.queue, reason)
        row = record_decision(policy.queue, "policy", action, current, desired, load.waiting,
                              load.oldest_wait, reason)
        decisions.append(row.to_dict())
    return decisions
