"""Stage rows against a real database and Redis: plan, publish on inputs, claim, fan-in, leases."""

from __future__ import annotations

import json
from datetime import timedelta

import redis

from webapp.extensions import db
from webapp.models import RenderStage
from webapp.services import lifecycle, reconcile, stages
from webapp.services.broker import list_key
from webapp.services.tasks import cancel, events_of
from webapp.timeutil import utcnow

BOARD = {"chunks": [{"index": 0, "frames": 30}, {"index": 1, "frames": 90}], "total_frames": 120}


def queued_stage_ids(app, queue: str) -> list[str]:
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    ids = []
    for level in (0, 3, 6, 9):
        for raw in client.lrange(list_key(queue, level), 0, -1):
            ids.append(json.loads(raw)["headers"]["id"].split(".", 2)[2])
    return ids


def planned(make_task, **task_fields):
    task = make_task(status="queued", **task_fields)
    claim = lifecycle.claim(task.id, 0, "gen@hostA:1:aa")
    assert stages.plan(claim, BOARD, {}, "hash")
    return task, claim


def rows(task_id: str) -> dict[str, RenderStage]:
    db.session.expire_all()
    return {s.stage_id: s for s in db.session.scalars(db.select(RenderStage).where(RenderStage.task_id == task_id))}


def run(task_id: str, stage_id: str, runner: str = "render@hostA") -> stages.StageClaim:
    sc = stages.claim_stage(task_id, 1, stage_id, f"{runner}:9:ff", runner)
    assert isinstance(sc, stages.StageClaim), sc
    assert stages.finish_stage(sc, [f"work/{task_id}/{stage_id}"])
    return sc


def test_stages_are_published_when_their_inputs_exist_and_the_fan_in_publishes_once(app, make_task):
    task, _claim = planned(make_task)
    assert set(stages.advance(task.id, 1)) == {"visuals", "audio"}
    assert stages.advance(task.id, 1) == []  # already published
    assert queued_stage_ids(app, "image_processing") == ["visuals"]
    assert queued_stage_ids(app, "audio_processing") == ["audio"]
    run(task.id, "visuals")
    assert sorted(stages.advance(task.id, 1)) == ["chunk-0", "chunk-1"]
    run(task.id, "chunk-0", "render@hostA")
    run(task.id, "chunk-1", "render@hostB")
    assert stages.advance(task.id, 1) == []  # the audio is not done: no assembly yet
    run(task.id, "audio")
    assert stages.advance(task.id, 1) == ["assemble"]
    assert stages.advance(task.id, 1) == []  # the other finisher of the fan-in publishes nothing
    assert queued_stage_ids(app, "video_processing").count("assemble") == 1
    done = rows(task.id)
    assert done["chunk-1"].runner == "render@hostB" and done["chunk-0"].runner == "render@hostA"
    assert abs(done["chunk-1"].weight - 0.75 * 90 / 120) < 1e-9


def test_a_duplicate_or_stale_stage_message_claims_nothing(app, make_task):
    task, claim = planned(make_task)
    assert isinstance(stages.claim_stage(task.id, 1, "visuals", "x", "x@h"), str)  # not published yet
    stages.advance(task.id, 1)
    first = stages.claim_stage(task.id, 1, "visuals", "a@h:1:aa", "a@h")
    assert isinstance(first, stages.StageClaim)
    assert stages.claim_stage(task.id, 1, "visuals", "b@h:2:bb", "b@h").startswith("duplicate")
    assert stages.claim_stage(task.id, 0, "audio", "b@h:2:bb", "b@h").startswith("stale")
    lifecycle.fail_or_retry(claim, ValueError("boom"), "visuals", retryable=True)
    assert stages.claim_stage(task.id, 1, "audio", "b@h:2:bb", "b@h").startswith("stale")
    assert stages.finish_stage(first, []) is True  # the row is the stage's; the task moved on anyway


def test_expired_stage_lease_and_unclaimed_stage_are_published_again(app, make_task):
    task, _claim = planned(make_task)
    stages.advance(task.id, 1)
    sc = stages.claim_stage(task.id, 1, "visuals", "dead@hostB:1:aa", "dead@hostB")
    db.session.execute(db.update(RenderStage).where(RenderStage.task_id == task.id, RenderStage.stage_id == "visuals")
                       .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.execute(db.update(RenderStage).where(RenderStage.task_id == task.id, RenderStage.stage_id == "audio")
                       .values(published_at=utcnow() - timedelta(seconds=app.config["STAGE_PICKUP_SECONDS"] + 1)))
    db.session.commit()
    report = reconcile.reconcile()
    assert report["stages_republished"] == 2
    assert queued_stage_ids(app, "image_processing").count("visuals") == 2
    assert queued_stage_ids(app, "audio_processing").count("audio") == 2
    assert "stage_lease_expired" in [e.kind for e in events_of(task.id)]
    assert not stages.finish_stage(sc, [])  # the lost runner cannot finish it any more
    again = stages.claim_stage(task.id, 1, "visuals", "render@hostA:2:bb", "render@hostA")
    assert isinstance(again, stages.StageClaim) and rows(task.id)["visuals"].tries == 2


def test_cancel_with_no_stage_running_ends_the_task_at_once(app, make_task):
    task, _claim = planned(make_task)
    stages.advance(task.id, 1)
    assert cancel(task, by="test")
    assert task.status == "cancelled"
    assert [e.kind for e in events_of(task.id)][-2:] == ["cancel_requested", "cancelled"]


def test_cancel_with_a_stage_running_leaves_the_end_to_the_stage(app, make_task):
    task, _claim = planned(make_task)
    stages.advance(task.id, 1)
    sc = stages.claim_stage(task.id, 1, "visuals", "a@h:1:aa", "a@h")
    assert cancel(task, by="test")
    assert task.status == "processing" and task.cancel_requested
    keeper = stages.StageKeeper(sc, poll_seconds=0.05)
    keeper._tick()
    assert keeper.cancelled()
    assert lifecycle.finish_cancelled(sc.task_claim())


def test_a_runner_that_lost_its_stage_and_then_fails_leaves_the_attempt_alone(app, make_task, monkeypatch):
    """A host cut off the network mid-stage: its lease expires, another host takes the stage over,
    and the cut host's upload then fails. That failure is not the attempt's (the new runner may well
    finish the stage): the task stays processing at the same attempt."""
    from webapp.models import RenderTask
    from webapp.storage import StorageError
    from worker import tasks as worker_tasks

    task, _claim = planned(make_task)
    stages.advance(task.id, 1)

    class CutOff:
        def storyboard(self):
            db.session.execute(db.update(RenderStage).where(RenderStage.task_id == task.id,
                                                            RenderStage.stage_id == "visuals")
                               .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            assert reconcile.reconcile()["stages_republished"] == 1
            taken = stages.claim_stage(task.id, 1, "visuals", "render@hostA:2:bb", "render@hostA")
            assert isinstance(taken, stages.StageClaim)
            raise StorageError("upload of work/x/visuals failed: no route to host")

    monkeypatch.setattr(worker_tasks, "artifacts_of", lambda task_id: CutOff())
    result = worker_tasks.run_stage.apply(args=[task.id, 1, "visuals"])
    db.session.expire_all()
    row = db.session.get(RenderTask, task.id)
    assert (row.status, row.attempt) == ("processing", 1)
    assert "retry" not in [e.kind for e in events_of(task.id)]
    visuals = rows(task.id)["visuals"]
    assert (visuals.status, visuals.runner, visuals.tries) == ("running", "render@hostA", 2)
    assert result.state == "IGNORED", result.state


def test_a_runner_that_lost_its_stage_removes_what_it_uploaded_after_the_task_ended(app, make_task, monkeypatch):
    """A host cut off the network mid-stage comes back after another host completed the task, and
    its upload goes through: what it uploaded is removed, as the task's end removed the rest."""
    from webapp.models import RenderTask
    from webapp.storage import get_storage, work_key
    from worker import tasks as worker_tasks

    task, _claim = planned(make_task)
    stages.advance(task.id, 1)
    storage = get_storage()

    class BackTooLate:
        def storyboard(self):
            return BOARD

        def run(self, board, stage_id, progress, cancelled):
            db.session.execute(db.update(RenderStage).where(RenderStage.task_id == task.id,
                                                            RenderStage.stage_id == "visuals")
                               .values(owner="render@hostA:2:bb", runner="render@hostA", status="done"))
            db.session.execute(db.update(RenderTask).where(RenderTask.id == task.id).values(status="completed"))
            db.session.commit()
            storage.put_bytes(work_key(task.id, "visuals-late/manifest.json"), b"{}")
            return [work_key(task.id, "visuals-late")], None

    monkeypatch.setattr(worker_tasks, "artifacts_of", lambda task_id: BackTooLate())
    result = worker_tasks.run_stage.apply(args=[task.id, 1, "visuals"])
    assert list(storage.list(f"work/{task.id}/")) == []
    assert rows(task.id)["visuals"].runner == "render@hostA"
    assert result.state in ("IGNORED", "REVOKED"), result.state
