"""The reconciler and the lease lifecycle against a real database and a real Redis."""

from __future__ import annotations

from datetime import timedelta

import redis

from webapp.services import lifecycle, reconcile
from webapp.services.broker import SENTINEL_KEY, list_key
from webapp.services.tasks import events_of
from webapp.timeutil import utcnow


def depth(app, level: int = 6) -> int:
    return redis.Redis.from_url(app.config["REDIS_URL"]).llen(list_key("video_generation", level))


def test_pending_rows_are_published(app, make_task):
    old = make_task(status="pending", created_at=utcnow() - timedelta(seconds=10))
    fresh = make_task(status="pending")  # its own submit is still publishing it
    report = reconcile.reconcile()
    assert report["dispatched"] == 1
    assert depth(app) == 1
    from webapp.extensions import db

    db.session.expire_all()
    assert old.status == "queued" and old.dispatched_at is not None
    assert fresh.status == "pending"


def test_lost_broker_data_republishes_waiting_rows(app, make_task):
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    waiting = [make_task(status="queued", dispatched_at=utcnow()) for _ in range(3)]
    reconcile.reconcile()  # first pass: no sentinel yet, so everything waiting is republished
    client.flushall()
    assert depth(app) == 0
    report = reconcile.reconcile()
    assert report["redispatched"] == 3 and depth(app) == 3
    assert client.get(SENTINEL_KEY) is not None
    assert reconcile.reconcile()["redispatched"] == 0  # nothing lost since
    assert [e.kind for e in events_of(waiting[0].id)].count("redispatched") == 2


def test_expired_lease_is_requeued_while_attempts_remain(app, make_task):
    task = make_task(status="processing", attempt=1, lease_owner="dead:1:aa",
                     lease_expires_at=utcnow() - timedelta(seconds=1))
    report = reconcile.reconcile()
    assert report["requeued"] == 1
    from webapp.extensions import db

    db.session.expire_all()
    assert task.status == "queued" and task.lease_owner is None
    assert "lease_expired" in [e.kind for e in events_of(task.id)]
    assert depth(app) == 1


def test_expired_lease_on_last_attempt_fails(app, make_task):
    task = make_task(status="processing", attempt=4, max_attempts=4, lease_owner="dead:1:aa",
                     lease_expires_at=utcnow() - timedelta(seconds=1), stage="render")
    assert reconcile.reconcile()["expired_failed"] == 1
    from webapp.extensions import db

    db.session.expire_all()
    assert task.status == "failed" and task.error["type"] == "LeaseExpired" and task.error["stage"] == "render"


def test_live_lease_is_left_alone(app, make_task):
    task = make_task(status="processing", attempt=1, lease_owner="w:1:aa",
                     lease_expires_at=utcnow() + timedelta(seconds=30))
    reconcile.reconcile()
    from webapp.extensions import db

    db.session.expire_all()
    assert task.status == "processing"


def test_due_retries_are_published_and_future_ones_wait(app, make_task):
    due = make_task(status="retry", attempt=1, retry_at=utcnow() - timedelta(seconds=1))
    later = make_task(status="retry", attempt=1, retry_at=utcnow() + timedelta(minutes=5))
    assert reconcile.reconcile()["retried"] == 1
    from webapp.extensions import db

    db.session.expire_all()
    assert due.dispatched_at is not None and later.dispatched_at is None


def test_claim_is_exclusive_and_checks_the_attempt(app, make_task):
    task = make_task(status="queued", attempt=0)
    first = lifecycle.claim(task.id, 0, "a:1:x")
    assert isinstance(first, lifecycle.Claim) and first.attempt == 1
    assert isinstance(lifecycle.claim(task.id, 0, "b:2:y"), str)  # a duplicate message loses
    assert lifecycle.claim("video_0_missing", 0, "c") == "unknown task"


def test_claim_of_a_cancelled_waiting_task_ends_it(app, make_task):
    task = make_task(status="queued", cancel_requested=True)
    assert lifecycle.claim(task.id, 0, "a:1:x") == "cancelled"
    from webapp.extensions import db

    db.session.expire_all()
    assert task.status == "cancelled"


def test_only_the_lease_holder_finishes(app, make_task):
    task = make_task(status="queued")
    claim = lifecycle.claim(task.id, 0, "a:1:x")
    impostor = lifecycle.Claim(task.id, claim.attempt, "b:2:y", {}, 0.0)
    published = []
    assert lifecycle.complete(impostor, {"files": []}, lambda: published.append("b")) is False
    assert lifecycle.complete(claim, {"files": []}, lambda: published.append("a")) is True
    assert published == ["a"]
    assert [e.kind for e in events_of(task.id)] == ["started", "completed"]


def test_failures_retry_with_backoff_then_fail_with_details(app, make_task):
    task = make_task(status="queued", max_attempts=2)
    claim = lifecycle.claim(task.id, 0, "a:1:x")
    try:
        raise ValueError("ffmpeg exploded")
    except ValueError as exc:
        assert lifecycle.fail_or_retry(claim, exc, "render", retryable=True) == "retry"
    from webapp.extensions import db

    db.session.expire_all()
    assert task.status == "retry" and task.retry_at > utcnow()
    assert task.error["type"] == "ValueError" and task.error["stage"] == "render"
    assert "ffmpeg exploded" in task.error["traceback"]
    db.session.execute(db.text("UPDATE render_tasks SET retry_at = :t WHERE id = :i"),
                       {"t": utcnow() - timedelta(seconds=1), "i": task.id})
    db.session.commit()
    reconcile.reconcile()
    second = lifecycle.claim(task.id, 1, "a:1:z")
    try:
        raise ValueError("again")
    except ValueError as exc:
        assert lifecycle.fail_or_retry(second, exc, "audio", retryable=True) == "failed"
    db.session.expire_all()
    assert task.status == "failed" and task.error["stage"] == "audio"
    kinds = [e.kind for e in events_of(task.id)]
    assert kinds == ["started", "retry", "dispatched", "started", "failed"]


def test_non_retryable_error_fails_at_once(app, make_task):
    task = make_task(status="queued", max_attempts=4)
    claim = lifecycle.claim(task.id, 0, "a:1:x")
    assert lifecycle.fail_or_retry(claim, KeyError("theme"), "storyboard", retryable=False) == "failed"


def test_cleanup_removes_old_rows_and_media(app, make_task):
    from pathlib import Path

    old = make_task(status="completed", finished_at=utcnow() - timedelta(days=40))
    recent = make_task(status="completed", finished_at=utcnow() - timedelta(days=1))
    running = make_task(status="processing")
    media = Path(app.config["MEDIA_ROOT"])
    (media / old.id).mkdir(parents=True)
    (media / old.id / "video.mp4").write_bytes(b"x")
    assert reconcile.cleanup(max_age_days=30)["removed"] == 1
    assert not (media / old.id).exists()
    from webapp.extensions import db
    from webapp.models import RenderTask

    assert db.session.get(RenderTask, recent.id) is not None
    assert db.session.get(RenderTask, running.id) is not None
    assert events_of(old.id) == []


def test_broker_audit_publishes_queued_rows_without_a_message(app, client, make_task, make_token):
    """A row committed as queued whose publish never happened (the web died in between)."""
    import json

    from webapp.extensions import db
    from webapp.services import broker

    broker.check_sentinel()  # the broker has not lost anything since
    orphan = make_task(status="queued", dispatched_at=utcnow() - timedelta(minutes=2))
    token = make_token("operator")
    body = json.dumps({"theme_id": "t", "keywords_id": ["k"], "target_duration_id": 5})
    published = client.post("/tasks/video/async", data=body, content_type="application/json",
                            headers={"Authorization": f"Bearer {token}"}).get_json()["task_id"]
    db.session.execute(db.text("UPDATE render_tasks SET dispatched_at = :t WHERE id = :i"),
                       {"t": utcnow() - timedelta(minutes=2), "i": published})
    db.session.commit()
    assert broker.task_ids_in_broker("video_generation") == {published}
    report = reconcile.reconcile()
    assert report["audited"] == 1
    assert broker.task_ids_in_broker("video_generation") == {published, orphan.id}
    assert "redispatched" in [e.kind for e in events_of(orphan.id)]
    assert "redispatched" not in [e.kind for e in events_of(published)]
    assert reconcile.reconcile()["audited"] == 0  # at most once a minute


def test_every_end_removes_artifacts_and_the_sweep_finds_orphans(app, make_task, tmp_path):
    """Stage artifacts and outputs in storage: a lease that expires on the last attempt, a cancel
    between attempts and the retention all remove them; the orphan sweep removes what ended tasks
    and vanished rows left, and the scratch folders of tasks that are not live."""
    import os

    from webapp.services import tasks as task_service
    from webapp.storage import get_storage, output_key, work_key

    storage = get_storage()

    def leave_files(task_id: str) -> None:
        storage.put_bytes(work_key(task_id, "chunk000-abc.mp4"), b"chunk")
        storage.put_bytes(output_key(task_id, "video.mp4"), b"video")

    lost = make_task(status="processing", attempt=4, max_attempts=4, lease_owner="dead:1:aa",
                     lease_expires_at=utcnow() - timedelta(seconds=1))
    between = make_task(status="retry", attempt=1, retry_at=utcnow() + timedelta(minutes=5))
    done = make_task(status="completed", finished_at=utcnow())
    failed = make_task(status="failed", finished_at=utcnow())
    running = make_task(status="processing", attempt=1, lease_owner="w:1:aa",
                        lease_expires_at=utcnow() + timedelta(seconds=30))
    for task in (lost, between, done, failed, running):
        leave_files(task.id)
    leave_files("video_1_vanished")
    reconcile.reconcile()
    assert not list(storage.list(f"work/{lost.id}/")) and not storage.exists(output_key(lost.id, "video.mp4"))
    assert task_service.cancel(between, by="test")
    assert not list(storage.list(f"work/{between.id}/"))

    app.config["SCRATCH_DIR"] = str(tmp_path / "scratch")
    for task_id in (failed.id, running.id):
        folder = tmp_path / "scratch" / f"aura-{task_id}-chunk_0-0123abcd"
        folder.mkdir(parents=True)
        os.utime(folder, (0, 0))
    report = reconcile.sweep_orphans()
    assert report["orphan_scratch"] == 1
    assert [p.name for p in (tmp_path / "scratch").iterdir()] == [f"aura-{running.id}-chunk_0-0123abcd"]
    remaining = sorted(storage.list(""))
    assert remaining == sorted([output_key(done.id, "video.mp4"), output_key(running.id, "video.mp4"),
                                work_key(running.id, "chunk000-abc.mp4")])
    assert reconcile.sweep_orphans()["orphan_objects"] == 0


def test_a_missing_sentinel_is_no_wipe_while_the_queues_hold_messages(app, make_task):
    """The first pass after a start finds no sentinel; the messages are still there: no duplicates."""
    from webapp.services import dispatch

    waiting = [make_task(status="queued", dispatched_at=utcnow()) for _ in range(2)]
    for task in waiting:
        assert dispatch.publish_render(task.id, task.attempt, task.priority, task.queue)
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    assert client.get(SENTINEL_KEY) is None
    assert reconcile.reconcile()["redispatched"] == 0
    assert depth(app) == 2 and client.get(SENTINEL_KEY) is not None
