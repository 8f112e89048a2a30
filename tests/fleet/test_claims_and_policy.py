"""Slot claims between supervisors (no processes) and the autoscale decision rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from webapp.catalog import VIDEO_QUEUE, WORKER_GROUPS
from webapp.models import AutoscalePolicy, WorkerPool, WorkerSlot
from webapp.services.autoscale import QueueLoad, decide
from webapp.timeutil import utcnow
from worker.supervisor import Settings, Supervisor, describe_exit, rss_bytes


def supervisor(app, host: str, lease: float = 3.0) -> Supervisor:
    settings = Settings(host=host, interval=0.5, lease_seconds=lease, stop_timeout=5, max_workers=None,
                        log_dir=Path(app.config["INSTANCE_DIR"]) / "logs")
    return Supervisor(app, settings)


def make_pool(name: str = "p", count: int = 1, host: str = "any") -> WorkerPool:
    from webapp.extensions import db

    pool = WorkerPool(name=name, queues=[VIDEO_QUEUE], concurrency=1, max_memory_mb=256, max_tasks_per_child=10,
                      host=host, desired_count=count, paused=False, generation=0)
    db.session.add(pool)
    db.session.commit()
    return pool


def test_only_one_supervisor_wins_a_slot_until_its_lease_expires(app):
    from webapp.extensions import db

    pool = make_pool()
    a, b = supervisor(app, "host-a"), supervisor(app, "host-b")
    assert a.claim(pool, 1) is True
    assert b.claim(pool, 1) is False
    assert a.heartbeat().keys() and not b.heartbeat()
    # a stops renewing: once the lease is over, b may take the slot, and a sees it lost.
    db.session.execute(db.update(WorkerSlot).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert b.claim(pool, 1) is True
    assert not a.heartbeat() and list(b.heartbeat().values())[0].host == "host-b"


def test_a_released_slot_can_be_claimed_again(app):
    pool = make_pool()
    a, b = supervisor(app, "host-a"), supervisor(app, "host-b")
    assert a.claim(pool, 1)
    slot_id = next(iter(a.heartbeat()))
    a.release(slot_id, "exit code 0", "Stopped")
    assert b.claim(pool, 1)


def test_pinned_pools_are_only_visible_to_their_host(app):
    make_pool("anywhere")
    make_pool("pinned", host="host-b")
    assert {p.name for p in supervisor(app, "host-a").visible_pools().values()} == {"anywhere"}
    assert {p.name for p in supervisor(app, "host-b").visible_pools().values()} == {"anywhere", "pinned"}


def test_fair_share_leaves_new_slots_to_the_other_supervisor_first(app):
    pool = make_pool(count=4)
    a, b = supervisor(app, "host-a"), supervisor(app, "host-b")
    a.heartbeat()
    b.heartbeat()
    a.claim_new(a.visible_pools(), a.heartbeat())
    assert len(a.heartbeat()) == 2  # two live supervisors: a takes its half
    b.claim_new(b.visible_pools(), b.heartbeat())
    assert len(b.heartbeat()) == 2
    assert {s.slot for s in a.heartbeat().values()} | {s.slot for s in b.heartbeat().values()} == {1, 2, 3, 4}
    assert pool.desired_count == 4


def test_ensure_defaults_creates_one_pool_per_group_once(app):
    from webapp.services import workers as fleet

    created = fleet.ensure_default_pools()
    assert sorted(p.name for p in created) == sorted(WORKER_GROUPS)
    assert all(list(p.queues) == list(WORKER_GROUPS[p.name]) and p.desired_count == 1 for p in created)
    assert fleet.ensure_default_pools() == []


def policy(**fields) -> AutoscalePolicy:
    values = dict(queue=VIDEO_QUEUE, enabled=True, min_workers=1, max_workers=4, target_backlog_per_worker=2,
                  max_wait_seconds=None, cooldown_seconds=60, allow_zero=False, last_scaled_at=None)
    values.update(fields)
    return AutoscalePolicy(**values)


@pytest.mark.parametrize("fields, load, current, action, desired", [
    ({}, QueueLoad(7, 0, 5.0), 1, "scale_up", 4),
    ({}, QueueLoad(100, 0, 5.0), 2, "scale_up", 4),            # capped by max
    ({}, QueueLoad(0, 0, None), 3, "scale_down", 1),           # never below min
    ({"allow_zero": True, "min_workers": 0}, QueueLoad(0, 0, None), 1, "scale_down", 0),
    ({}, QueueLoad(0, 0, None), 0, "scale_up", 1),             # no scale to zero unless allowed
    ({}, QueueLoad(1, 2, 3.0), 2, "none", 2),                  # running tasks count as load
    ({"max_wait_seconds": 30}, QueueLoad(1, 1, 45.0), 1, "scale_up", 2),  # oldest waited too long
])
def test_decide(fields, load, current, action, desired):
    got_action, got_desired, reason = decide(policy(**fields), load, current, utcnow())
    assert (got_action, got_desired) == (action, desired), reason
    assert reason


def test_decide_waits_for_the_cooldown_before_scaling_down():
    now = utcnow()
    recent = policy(last_scaled_at=now - timedelta(seconds=20))
    action, desired, reason = decide(recent, QueueLoad(0, 0, None), 3, now)
    assert (action, desired) == ("none", 3) and "cooldown (40s left)" in reason
    # Scaling up is never held back by the cooldown.
    assert decide(recent, QueueLoad(9, 0, 1.0), 3, now)[0] == "scale_up"
    assert decide(policy(last_scaled_at=now - timedelta(seconds=61)), QueueLoad(0, 0, None), 3, now)[0] == "scale_down"


def test_repeated_no_change_decisions_are_one_row(app):
    from webapp.services.autoscale import recent_decisions, record_decision

    for _ in range(3):
        record_decision(VIDEO_QUEUE, "policy", "none", 2, 2, 0, None, "No change")
    record_decision(VIDEO_QUEUE, "policy", "scale_up", 2, 3, 6, 4.0, "Scale up")
    rows = recent_decisions()
    assert [(r.action, r.repeats) for r in rows] == [("scale_up", 1), ("none", 3)]


def test_process_helpers():
    import os

    assert rss_bytes(os.getpid()) > 1_000_000
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(1) == "exit code 1"
