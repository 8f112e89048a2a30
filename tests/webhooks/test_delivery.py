"""Delivery by real workers to a real receiver: every event once in effect, a receiver that was
down gets everything, a process that dies between commit and publish (or mid-send) loses nothing,
failing endpoints are disabled with an alert."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

from tests.conftest import small_brief
from tests.webhooks.conftest import Receiver, verify


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(client, admin, url: str, events: list[str]) -> dict:
    created = client.post("/webhooks", headers=admin, json={"url": url, "events": events})
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def _submit(client, operator, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        answer = client.post("/tasks/video/async", headers=operator, json=small_brief(priority="low"))
        assert answer.status_code == 202
        ids.append(answer.get_json()["task_id"])
    return ids


def _cancel(client, operator, ids: list[str]) -> None:
    for task_id in ids:
        assert client.post(f"/tasks/{task_id}/cancel", headers=operator).status_code == 200


def test_fifty_tasks_each_event_delivered_once_and_signed(client, webhook_app, webhook_stack, make_token, receiver):
    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    endpoint = _register(client, admin, receiver.url, ["task.cancelled", "task.completed", "task.failed"])
    webhook_stack.start_worker(["default"], concurrency=2)
    webhook_stack.start_beat()
    ids = _submit(client, operator, 50)
    _cancel(client, operator, ids)
    webhook_stack.wait_for(lambda: len(receiver.unique()) >= 50, 90, "50 deliveries")
    time.sleep(3)  # anything sent twice would have arrived by now
    unique = receiver.unique()
    assert len(unique) == 50
    by_task = {}
    for got in unique.values():
        assert verify(endpoint["secret"], got.headers, got.body)
        payload = got.json
        assert payload["type"] == "task.cancelled" and payload["status"] == "cancelled"
        assert payload["timestamp"] and payload["request"]["theme_id"]
        by_task.setdefault(payload["task_id"], []).append(got.headers["webhook-id"])
    assert sorted(by_task) == sorted(ids)
    assert all(len(v) == 1 for v in by_task.values())
    listed = client.get(f"/webhooks/{endpoint['id']}/deliveries?limit=500", headers=admin).get_json()["deliveries"]
    assert len(listed) == 50 and {d["status"] for d in listed} == {"delivered"}


@pytest.mark.sqlite_only
def test_receiver_down_then_back_gets_everything(client, webhook_app, webhook_stack, make_token, receiver):
    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    _register(client, admin, receiver.url, ["task.cancelled"])
    webhook_stack.start_worker(["default"], concurrency=2)
    webhook_stack.start_beat()
    receiver.stop()
    ids = _submit(client, operator, 10)
    _cancel(client, operator, ids)
    time.sleep(20)  # down for 20 s: several attempts fail meanwhile
    from webapp.extensions import db
    from webapp.models import WebhookDelivery

    db.session.expire_all()
    attempts = [d.attempts for d in db.session.query(WebhookDelivery)]
    assert len(attempts) == 10 and min(attempts) >= 3, attempts
    back = time.monotonic()
    receiver.start()
    webhook_stack.wait_for(lambda: len(receiver.unique()) == 10, 120, "all 10 after the receiver came back")
    print(f"caught up {time.monotonic() - back:.1f}s after the receiver came back")
    assert sorted(r.json["task_id"] for r in receiver.unique().values()) == sorted(ids)


@pytest.mark.sqlite_only
def test_publisher_dying_after_commit_loses_nothing(client, webhook_app, webhook_stack, make_token, receiver):
    """The outbox row is committed with the state change; the process 'dies' before publishing
    (it never publishes), and beat's sweep hands it to a worker."""
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import RenderTask
    from webapp.services import notify, webhooks

    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    _register(client, admin, receiver.url, ["task.cancelled"])
    [task_id] = _submit(client, operator, 1)
    with db.engine.begin() as conn:
        conn.execute(update(RenderTask).where(RenderTask.id == task_id).values(status="cancelled"))
        notify.task_changed(conn, task_id, "task.cancelled")
    webhooks.forget_pending()  # the crash: nothing was published
    webhook_stack.start_worker(["default"])
    webhook_stack.start_beat()
    webhook_stack.wait_for(lambda: len(receiver.unique()) == 1, 45, "the swept delivery")
    assert next(iter(receiver.unique().values())).json["task_id"] == task_id


@pytest.mark.sqlite_only
def test_worker_killed_mid_send_loses_nothing(client, webhook_app, webhook_stack, make_token, receiver):
    from webapp.extensions import db
    from webapp.models import WebhookDelivery

    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    _register(client, admin, receiver.url, ["task.cancelled"])
    receiver.delay = 1.5
    webhook_stack.start_worker(["default"], name="doomed")
    webhook_stack.start_beat()
    [task_id] = _submit(client, operator, 1)
    _cancel(client, operator, [task_id])

    def sending():
        db.session.expire_all()
        row = db.session.query(WebhookDelivery).one()
        return row.locked_until is not None and row.status == "pending"

    webhook_stack.wait_for(sending, 20, "the worker to start sending")
    webhook_stack.stop("doomed", signal.SIGKILL)
    receiver.delay = 0
    webhook_stack.start_worker(["default"], name="survivor")
    webhook_stack.wait_for(lambda: (db.session.expire_all(), db.session.query(WebhookDelivery).one())[1].status
                           == "delivered", 60, "the delivery after the kill")
    unique = receiver.unique()
    assert len(unique) == 1 and next(iter(unique.values())).json["task_id"] == task_id


@pytest.mark.sqlite_only
def test_completed_render_sends_progress_and_completion(client, webhook_app, webhook_stack, make_token, receiver):
    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    endpoint = _register(client, admin, receiver.url, ["task.progress", "task.completed"])
    webhook_stack.start_worker(concurrency=2)
    [task_id] = _submit(client, operator, 1)
    webhook_stack.wait_status(task_id, "completed", 180)
    webhook_stack.wait_for(lambda: any(r.json["type"] == "task.completed" for r in receiver.unique().values()),
                           30, "task.completed")
    events = [r.json for r in sorted(receiver.unique().values(), key=lambda r: r.json["timestamp"])]
    stages = [e["stage"] for e in events if e["type"] == "task.progress"]
    assert stages and stages[0] == "storyboard" and len(stages) == len(set(stages)), stages
    done = [e for e in events if e["type"] == "task.completed"]
    assert len(done) == 1 and done[0]["status"] == "completed" and done[0]["result"]["video_url"]
    assert all(verify(endpoint["secret"], r.headers, r.body) for r in receiver.unique().values())


def test_failing_endpoint_is_disabled_with_an_alert(client, webhook_app, make_token, receiver):
    """deliver() called in-process (it is what the worker runs) against a receiver answering 500."""
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import AlertState, WebhookDelivery
    from webapp.services import webhooks
    from webapp.timeutil import utcnow
    from worker import monitoring

    webhook_app.config["WEBHOOK_DISABLE_AFTER_SECONDS"] = 0
    admin = _auth(make_token("admin"))
    watcher = Receiver().start()
    try:
        failing = _register(client, admin, receiver.url, ["task.completed"])
        alerts_to = _register(client, admin, watcher.url, ["alert.fired", "alert.resolved"])
        receiver.status = 500
        first = client.post(f"/webhooks/{failing['id']}/test", headers=admin).get_json()
        assert first["status"] == "pending" and first["response_code"] == 500 and first["next_attempt_at"]
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == first["id"])
                           .values(next_attempt_at=utcnow()))
        db.session.commit()
        assert webhooks.deliver(first["id"]) == "failed"  # the endpoint is now disabled
        shown = client.get(f"/webhooks/{failing['id']}", headers=admin).get_json()
        assert shown["enabled"] is False and "HTTP 500" in shown["disabled_reason"]
        alert = db.session.get(AlertState, f"webhook_disabled:{failing['id']}")
        assert alert.state == "firing"
        [fired] = [d for d in webhooks.deliveries_of(endpoint_id=alerts_to["id"])]
        assert webhooks.deliver(fired.id) == "delivered"
        assert watcher.requests[0].json["type"] == "alert.fired"
        assert watcher.requests[0].json["alert"]["kind"] == "webhook_disabled"
        # Re-enabling clears the failure; the monitor resolves the alert and says so.
        client.patch(f"/webhooks/{failing['id']}", headers=admin, json={"enabled": True})
        assert monitoring.check()["resolved"] == [f"webhook_disabled:{failing['id']}"]
        resolved = [d for d in webhooks.deliveries_of(endpoint_id=alerts_to["id"]) if d.event == "alert.resolved"]
        assert len(resolved) == 1
    finally:
        watcher.stop()


def test_deliveries_give_up_after_the_retry_span(client, webhook_app, make_token, receiver):
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import WebhookDelivery
    from webapp.services import webhooks
    from webapp.timeutil import utcnow

    admin = _auth(make_token("admin"))
    endpoint = _register(client, admin, receiver.url, ["task.completed"])
    receiver.status = 503
    first = client.post(f"/webhooks/{endpoint['id']}/test", headers=admin).get_json()
    assert first["status"] == "pending"
    db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == first["id"])
                       .values(next_attempt_at=utcnow(), created_at=utcnow() - timedelta(hours=24)))
    db.session.commit()
    assert webhooks.deliver(first["id"]) == "failed"
    assert [webhooks.backoff_seconds(n) <= 1.25 * 2 ** (n - 1) for n in (1, 2, 3)] == [True] * 3
    assert webhooks.backoff_seconds(40) <= 3600 * 1.25


def test_cleanup_forgets_old_deliveries_and_batches(client, webhook_app, make_token, receiver):
    from datetime import timedelta

    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import TaskBatch, WebhookDelivery
    from webapp.services import webhooks
    from webapp.timeutil import utcnow

    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    endpoint = _register(client, admin, receiver.url, ["task.cancelled"])
    old = client.post(f"/webhooks/{endpoint['id']}/test", headers=admin).get_json()
    fresh = client.post(f"/webhooks/{endpoint['id']}/test", headers=admin).get_json()
    batch = client.post("/tasks/video/batch", headers=operator, json={"briefs": [small_brief()]}).get_json()
    long_ago = utcnow() - timedelta(days=40)
    db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == old["id"]).values(created_at=long_ago))
    db.session.execute(update(TaskBatch).values(created_at=long_ago))
    db.session.commit()
    assert webhooks.cleanup(30) == {"deliveries": 1, "batches": 1, "callbacks": 0}
    assert [d.id for d in webhooks.deliveries_of(endpoint_id=endpoint["id"])] == [fresh["id"]]
    assert client.get(f"/tasks/batches/{batch['batch_id']}", headers=operator).status_code == 404
