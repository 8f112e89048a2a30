"""Beat's backlog and failure-rate checks keep state (fired, resolved, cooldown), read their
thresholds from the configuration and are sent as alert.* webhook events."""

from __future__ import annotations

import pytest

from tests.conftest import small_brief


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _alert_deliveries(event: str) -> list:
    from webapp.extensions import db
    from webapp.models import WebhookDelivery

    db.session.expire_all()
    return db.session.query(WebhookDelivery).filter_by(event=event).all()


def test_backlog_fires_once_resolves_and_respects_the_cooldown(client, webhook_app, make_token, receiver,
                                                                 redis_server):
    import redis

    from webapp.extensions import db
    from webapp.models import AlertState
    from webapp.services import webhooks
    from worker import monitoring

    webhook_app.config.update(ALERT_BACKLOG=3, ALERT_COOLDOWN_SECONDS=3600)
    client.post("/webhooks", headers=_auth(make_token("admin")),
                json={"url": receiver.url, "events": ["alert.fired", "alert.resolved"]})
    operator = _auth(make_token("operator"))
    client.post("/tasks/video/batch", headers=operator, json={"briefs": [small_brief()] * 4})
    first = monitoring.check()
    assert first["fired"] == ["backlog:video_generation"]
    assert first["alerts"][0] == {"kind": "backlog", "queue": "video_generation", "waiting": 4, "limit": 3}
    assert monitoring.check()["fired"] == []  # still firing: no second event
    assert len(_alert_deliveries("alert.fired")) == 1
    payload = __import__("json").loads(_alert_deliveries("alert.fired")[0].payload)
    assert payload["type"] == "alert.fired" and payload["alert"]["details"]["waiting"] == 4

    redis.Redis.from_url(redis_server.url).delete("video_generation:6")
    assert monitoring.check()["resolved"] == ["backlog:video_generation"]
    db.session.expire_all()
    assert db.session.get(AlertState, "backlog:video_generation").state == "resolved"
    assert len(_alert_deliveries("alert.resolved")) == 1

    # Back over the limit within the cooldown: shown as firing again, but not sent again.
    client.post("/tasks/video/batch", headers=operator, json={"briefs": [small_brief()] * 4})
    assert monitoring.check()["fired"] == ["backlog:video_generation"]
    assert len(_alert_deliveries("alert.fired")) == 1
    assert [a.key for a in __import__("webapp.services.alerts", fromlist=["x"]).active()] == ["backlog:video_generation"]
    webhooks.forget_pending()


def test_failure_rate_uses_the_configured_window_and_threshold(app, make_task):
    from datetime import timedelta

    from webapp.timeutil import utcnow
    from worker import monitoring

    app.config.update(ALERT_FAILURE_RATE=0.5, ALERT_FAILURE_MIN_TASKS=4, ALERT_FAILURE_WINDOW_MINUTES=10)
    now = utcnow()
    for _ in range(2):
        make_task(status="completed", finished_at=now)
    for _ in range(2):
        make_task(status="failed", finished_at=now)
    make_task(status="failed", finished_at=now - timedelta(minutes=30))  # outside the window
    assert monitoring.check()["fired"] == []  # 2 of 4 = 50 %, not above the limit
    make_task(status="failed", finished_at=now)
    result = monitoring.check()
    assert result["fired"] == ["failure_rate"]
    assert result["alerts"][0]["failed"] == 3 and result["alerts"][0]["finished"] == 5


@pytest.mark.sqlite_only
def test_beat_sends_alerts_to_a_receiver(client, webhook_app, webhook_stack, make_token, receiver):
    """The whole path: beat schedules the check, the monitoring worker records the alert, a default
    worker delivers alert.fired to the receiver."""
    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    client.post("/webhooks", headers=admin, json={"url": receiver.url, "events": ["alert.fired"]})
    client.post("/tasks/video/batch", headers=operator, json={"briefs": [small_brief()] * 3})
    webhook_stack.env.update({"ALERT_BACKLOG": "2", "MONITOR_SECONDS": "1"})
    webhook_stack.start_worker(["monitoring", "default"], concurrency=2)
    webhook_stack.start_beat()
    webhook_stack.wait_for(lambda: receiver.unique(), 60, "alert.fired at the receiver")
    [got] = receiver.unique().values()
    assert got.json["type"] == "alert.fired" and got.json["alert"]["key"] == "backlog:video_generation"
