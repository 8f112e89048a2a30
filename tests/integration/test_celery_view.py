"""Celery's view agrees with the app's: duplicates end as Ignore, cancels are revokes, and a
revoke sent with `celery control revoke` (as Flower does) cancels the task in the app."""

from __future__ import annotations

import json

import pytest

from tests.conftest import small_brief

pytestmark = [pytest.mark.integration, pytest.mark.sqlite_only]


def submit(client, token, brief) -> str:
    response = client.post("/tasks/video/async", data=json.dumps(brief, ensure_ascii=False),
                           content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["task_id"]


def test_a_duplicate_message_ends_as_ignored_not_success(app, client, stack, make_token):
    from webapp.services import dispatch

    token = make_token("operator")
    task_id = submit(client, token, small_brief())
    assert dispatch.publish_render(task_id, 0, "normal", "video_generation")  # a duplicate
    stack.start_worker(name="w")
    stack.wait_status(task_id, "completed", timeout=120)
    stack.wait_for(lambda: stack.log_text("w").count(f"aura.video.generate[{task_id}.0] ignored") == 1,
                   20, "the duplicate to be ignored")
    # The row is completed inside the assembly; Celery logs its success a moment later.
    stack.wait_for(lambda: f"{task_id}.1.assemble] succeeded" in stack.log_text("w"), 20,
                   "the assembly's success in the worker log")
    log = stack.log_text("w")
    assert log.count(f"aura.video.generate[{task_id}.0] succeeded") == 1
    assert "'stale'" not in log and "'claimed elsewhere'" not in log


def test_an_app_cancel_revokes_and_a_celery_revoke_cancels(app, client, stack, make_token):
    from webapp.services.dispatch import celery_app
    from webapp.services.tasks import events_of

    token = make_token("operator")
    node = stack.start_worker(queues=["default"], name="w")
    # An app cancel is a revoke in Celery's terms.
    cancelled = submit(client, token, small_brief())
    client.post(f"/tasks/{cancelled}/cancel", headers={"Authorization": f"Bearer {token}"})
    stack.wait_for(lambda: f"{cancelled}.0" in stack.log_text("w"), 20, "the worker to hear the revoke")
    assert "revoked" in stack.log_text("w")
    # A revoke from Flower or `celery control revoke`: the app cancels the task once a worker
    # drops the message, and the reconciler does not publish it again.
    revoked = submit(client, token, small_brief())
    celery_app().control.revoke(f"{revoked}.0")
    stack.wait_for(lambda: f"{revoked}.0" in stack.log_text("w"), 20, "the worker to hear the revoke")
    stack.start_beat()
    celery_app().control.add_consumer("video_generation", destination=[node], reply=True, timeout=10)
    task = stack.wait_status(revoked, "cancelled", timeout=60)
    assert task.started_at is None
    assert any(e.kind == "cancelled" and "celery revoke" in e.message for e in events_of(revoked))
    import time

    time.sleep(3)  # a few reconciler passes
    assert stack.task(revoked).status == "cancelled"
    assert [e.kind for e in events_of(revoked)].count("dispatched") == 0
