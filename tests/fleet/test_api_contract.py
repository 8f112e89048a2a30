"""Contract of the fleet endpoints: paths, fields, roles, every error, and the audit log."""

from __future__ import annotations

import pytest

from webapp.catalog import QUEUES, VIDEO_QUEUE, WORKER_GROUPS


@pytest.fixture
def admin(make_token):
    return {"Authorization": f"Bearer {make_token('admin', name='ops-admin')}"}


def control(client, headers, **body):
    return client.post("/tasks/workers/control", json=body, headers=headers)


def test_every_fleet_endpoint_needs_the_admin_role(client, make_token):
    operator = {"Authorization": f"Bearer {make_token('operator')}"}
    calls = [("get", "/tasks/workers"), ("post", "/tasks/workers/control"),
             ("post", "/tasks/workers/autoscale?target_workers=1&queue=default"),
             ("get", "/tasks/workers/policies"), ("post", "/tasks/workers/policies"),
             ("get", "/tasks/workers/decisions"), ("get", "/tasks/workers/audit")]
    for method, path in calls:
        assert getattr(client, method)(path).status_code == 401, path
        response = getattr(client, method)(path, headers=operator, json={})
        assert response.status_code == 403, path
        assert response.get_json()["error"] == "forbidden"


def test_start_answers_what_will_run_and_lists_it(client, admin):
    response = control(client, admin, worker_id="new_worker_1", action="start", queue=VIDEO_QUEUE, concurrency=4)
    assert response.status_code == 202
    body = response.get_json()
    assert body["worker_id"] == "new_worker_1" and body["action"] == "start" and body["accepted"] is True
    assert body["desired"]["queues"] == [VIDEO_QUEUE] and body["desired"]["concurrency"] == 4
    assert body["desired"]["host"] == "any" and body["desired"]["desired_count"] == 1
    listing = client.get("/tasks/workers", headers=admin).get_json()
    worker = next(w for w in listing["workers"] if w["worker_id"] == "new_worker_1")
    assert worker["desired_state"] == "running" and worker["state"] == "pending"
    assert worker["online"] is False and worker["offline"] is False and worker["pid"] is None
    for name in ("node", "host", "queues", "concurrency", "started_at", "last_heartbeat", "current_tasks",
                 "memory_rss_mb", "restarts"):
        assert name in worker
    assert listing["desired_by_queue"][VIDEO_QUEUE] == 1


@pytest.mark.parametrize("body, status, error, field", [
    ({"worker_id": "w", "action": "explode"}, 400, "unknown_action", "action"),
    ({"worker_id": "w", "action": "start", "queue": "nope"}, 400, "unknown_queue", "queue"),
    ({"worker_id": "w", "action": "start", "queue": ["default", "nope"]}, 400, "unknown_queue", "queue"),
    ({"worker_id": "w", "action": "start"}, 400, "invalid_request", "queue"),
    ({"worker_id": "w", "action": "start", "queue": "default", "concurrency": 0}, 400, "invalid_request", "concurrency"),
    ({"worker_id": "w", "action": "start", "queue": "default", "concurrency": 33}, 400, "invalid_request", "concurrency"),
    ({"worker_id": "w", "action": "start", "queue": "default", "concurrency": "4x"}, 400, "invalid_request", "concurrency"),
    ({"worker_id": "w", "action": "start", "queue": "default", "concurrency": True}, 400, "invalid_request", "concurrency"),
    ({"worker_id": "bad name@x", "action": "start", "queue": "default"}, 400, "invalid_request", "worker_id"),
    ({"action": "start", "queue": "default"}, 400, "invalid_request", "worker_id"),
    ({"worker_id": "ghost", "action": "stop"}, 404, "not_found", "worker_id"),
    ({"worker_id": "ghost", "action": "restart"}, 404, "not_found", "worker_id"),
    ({"worker_id": "ghost", "action": "pause"}, 404, "not_found", "worker_id"),
    ({"worker_id": "ghost", "action": "resize", "concurrency": 2}, 404, "not_found", "worker_id"),
    ({"worker_id": "ghost", "action": "resize", "concurrency": 0}, 400, "invalid_request", "concurrency"),
])
def test_control_errors(client, admin, body, status, error, field):
    response = control(client, admin, **body)
    assert response.status_code == status
    answer = response.get_json()
    assert answer["error"] == error and field in answer["fields"] and answer["message"]


def test_control_rejects_a_body_that_is_not_an_object(client, admin):
    for data in (b"", b"[1, 2]", b"{not json"):
        response = client.post("/tasks/workers/control", data=data, content_type="application/json", headers=admin)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"


def test_starting_a_running_name_is_a_conflict_and_a_stopped_one_restarts(client, admin):
    assert control(client, admin, worker_id="w1", action="start", queue="default").status_code == 202
    again = control(client, admin, worker_id="w1", action="start", queue="default")
    assert again.status_code == 409 and again.get_json()["error"] == "already_running"
    assert control(client, admin, worker_id="w1", action="stop").status_code == 202
    stopped = control(client, admin, worker_id="w1", action="stop")
    assert stopped.status_code == 409 and stopped.get_json()["error"] == "not_running"
    for action in ("restart", "pause", "resume"):
        assert control(client, admin, worker_id="w1", action=action).status_code == 409
    restarted = control(client, admin, worker_id="w1", action="start", queue="maintenance", concurrency=1)
    assert restarted.status_code == 202 and restarted.get_json()["desired"]["queues"] == ["maintenance"]


def test_copy_names_of_a_scaled_pool_are_taken(client, admin):
    assert control(client, admin, worker_id="v", action="start", queue=VIDEO_QUEUE, count=2).status_code == 202
    assert control(client, admin, worker_id="v-2", action="start", queue="default").status_code == 409
    missing = control(client, admin, worker_id="v-2", action="stop")
    assert missing.status_code == 404 and "pool v" in missing.get_json()["message"]


def test_restart_pause_resume_change_the_desired_state(client, admin):
    control(client, admin, worker_id="w", action="start", queue="default", concurrency=2)
    assert control(client, admin, worker_id="w", action="restart").get_json()["desired"]["generation"] == 1
    paused = control(client, admin, worker_id="w", action="pause").get_json()
    assert paused["desired"]["paused"] is True
    assert "already paused" in control(client, admin, worker_id="w", action="pause").get_json()["message"]
    listing = client.get("/tasks/workers", headers=admin).get_json()
    assert listing["workers"][0]["desired_state"] == "paused" and listing["desired_by_queue"]["default"] == 0
    assert control(client, admin, worker_id="w", action="resume").get_json()["desired"]["paused"] is False
    resized = control(client, admin, worker_id="w", action="resize", concurrency=5).get_json()
    assert resized["desired"]["concurrency"] == 5 and "without a restart" in resized["message"]
    assert control(client, admin, worker_id="w", action="resize", concurrency=33).status_code == 400
    control(client, admin, worker_id="w", action="stop")
    assert control(client, admin, worker_id="w", action="resize", concurrency=3).status_code == 409


def test_autoscale_says_what_starts_and_stops(client, admin):
    control(client, admin, worker_id="video", action="start", queue=list(WORKER_GROUPS["video"]))
    up = client.post(f"/tasks/workers/autoscale?target_workers=5&queue={VIDEO_QUEUE}", headers=admin)
    assert up.status_code == 202
    body = up.get_json()
    assert body["queue"] == VIDEO_QUEUE and body["target_workers"] == 5 and body["current_workers"] == 1
    assert body["start"] == ["video-2", "video-3", "video-4", "video-5"] and body["stop"] == []
    assert "video_processing" in body["message"]  # the pool serves both video queues
    down = client.post(f"/tasks/workers/autoscale?target_workers=2&queue={VIDEO_QUEUE}", headers=admin).get_json()
    assert down["stop"] == ["video-5", "video-4", "video-3"] and down["start"] == []
    same = client.post(f"/tasks/workers/autoscale?target_workers=2&queue={VIDEO_QUEUE}", headers=admin).get_json()
    assert same["start"] == [] and same["stop"] == [] and "nothing to change" in same["message"]
    fresh = client.post("/tasks/workers/autoscale", json={"queue": "audio_processing", "target_workers": 2},
                        headers=admin).get_json()
    assert fresh["start"] == ["audio_processing", "audio_processing-2"]
    zero = client.post("/tasks/workers/autoscale?target_workers=0&queue=audio_processing", headers=admin).get_json()
    assert zero["stop"] == ["audio_processing-2", "audio_processing"]
    decisions = client.get("/tasks/workers/decisions", headers=admin).get_json()["decisions"]
    assert decisions[0]["source"] == "manual" and decisions[0]["action"] == "scale_down"


@pytest.mark.parametrize("query, error, field", [
    ("target_workers=65&queue=default", "invalid_request", "target_workers"),
    ("target_workers=-1&queue=default", "invalid_request", "target_workers"),
    ("target_workers=two&queue=default", "invalid_request", "target_workers"),
    ("queue=default", "invalid_request", "target_workers"),
    ("target_workers=1&queue=nope", "unknown_queue", "queue"),
    ("target_workers=1", "invalid_request", "queue"),
    ("target_workers=1&queue=default,maintenance", "invalid_request", "queue"),
])
def test_autoscale_errors(client, admin, query, error, field):
    response = client.post(f"/tasks/workers/autoscale?{query}", headers=admin)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == error and field in body["fields"]


def test_every_control_action_is_audited_with_who_what_when_result(client, admin, make_token):
    control(client, admin, worker_id="a1", action="start", queue="default")
    control(client, admin, worker_id="a1", action="explode")
    control(client, admin, worker_id="ghost", action="stop")
    client.post("/tasks/workers/autoscale?target_workers=99&queue=default", headers=admin)
    entries = client.get("/tasks/workers/audit", headers=admin).get_json()["entries"]
    assert [(e["action"], e["target"], e["status_code"], e["result"]) for e in entries] == [
        ("autoscale", "default", 400, "rejected"),
        ("stop", "ghost", 404, "rejected"),
        ("explode", "a1", 400, "rejected"),
        ("start", "a1", 202, "ok"),
    ]
    assert all(e["actor"] == "token:ops-admin" and e["at"].endswith("Z") for e in entries)
    assert entries[-1]["params"] == {"queue": "default"}


def test_policy_round_trip_and_validation(client, admin):
    body = {"queue": VIDEO_QUEUE, "min_workers": 1, "max_workers": 3, "target_backlog_per_worker": 2,
            "max_wait_seconds": 30, "cooldown_seconds": 60}
    saved = client.post("/tasks/workers/policies", json=body, headers=admin)
    assert saved.status_code == 200 and saved.get_json()["max_workers"] == 3
    listed = client.get("/tasks/workers/policies", headers=admin).get_json()["policies"]
    assert [p["queue"] for p in listed] == [VIDEO_QUEUE] and listed[0]["enabled"] is True
    for bad, field in [({**body, "queue": "nope"}, "queue"), ({**body, "min_workers": 4}, "min_workers"),
                       ({**body, "min_workers": 0}, "min_workers"), ({**body, "max_workers": 65}, "max_workers"),
                       ({**body, "cooldown_seconds": -1}, "cooldown_seconds"),
                       ({**body, "allow_zero": "maybe"}, "allow_zero")]:
        response = client.post("/tasks/workers/policies", json=bad, headers=admin)
        assert response.status_code == 400 and field in response.get_json()["fields"], bad
    assert client.delete(f"/tasks/workers/policies/{VIDEO_QUEUE}", headers=admin).status_code == 200
    assert client.delete(f"/tasks/workers/policies/{VIDEO_QUEUE}", headers=admin).status_code == 404


def test_offline_workers_are_marked_then_purged(app, client, admin):
    from datetime import timedelta

    from webapp.extensions import db
    from webapp.models import WorkerPool, WorkerSlot
    from webapp.timeutil import utcnow

    control(client, admin, worker_id="lost", action="start", queue="default")
    pool = db.session.scalar(db.select(WorkerPool).where(WorkerPool.name == "lost"))
    now = utcnow()
    slot = WorkerSlot(pool_id=pool.id, slot=1, name="lost", owner="dead-host:1:abc", host="dead-host",
                      node="lost@dead-host", state="running", pid=4242, lease_expires_at=now - timedelta(seconds=5),
                      heartbeat_at=now - timedelta(seconds=20), started_at=now - timedelta(minutes=5))
    db.session.add(slot)
    db.session.commit()
    worker = client.get("/tasks/workers", headers=admin).get_json()["workers"][0]
    assert worker["state"] == "offline" and worker["offline"] is True and worker["pid"] is None
    # Stopped and silent for longer than WORKER_OFFLINE_PURGE_SECONDS: forgotten.
    control(client, admin, worker_id="lost", action="stop")
    app.config["WORKER_OFFLINE_PURGE_SECONDS"] = 10
    listing = client.get("/tasks/workers", headers=admin).get_json()
    assert listing["workers"] == []
    assert db.session.scalar(db.select(db.func.count()).select_from(WorkerSlot)) == 0


def test_queue_names_come_from_the_catalog(client, admin):
    for queue in QUEUES:
        assert control(client, admin, worker_id=f"q-{queue}", action="start", queue=queue).status_code == 202


def test_ping_answers_are_cached_in_redis(client, admin, redis_server):
    import redis

    from webapp.services.workers import PING_CACHE_KEY, PING_CACHE_SECONDS

    body = client.get("/tasks/workers?ping=1", headers=admin).get_json()
    assert body["workers"] == []
    ttl = redis.Redis.from_url(redis_server.url).ttl(PING_CACHE_KEY)
    assert 0 < ttl <= PING_CACHE_SECONDS
