"""POST /tasks/video/batch and GET /tasks/batches/{id}: modes, errors by index, idempotency, and
every brief published to the broker with its priority (a real worker consumes one)."""

from __future__ import annotations

import pytest

from tests.conftest import small_brief


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_all_or_nothing_refuses_the_whole_batch(client, make_token):
    from webapp.extensions import db
    from webapp.models import RenderTask

    operator = _auth(make_token("operator"))
    briefs = [small_brief(), {**small_brief(), "priority": "asap"}, small_brief(), {"theme_id": ""}]
    answer = client.post("/tasks/video/batch", headers=operator, json={"briefs": briefs})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"] == "invalid_request"
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert "priority" in body["errors"][0]["fields"]
    assert db.session.query(RenderTask).count() == 0


def test_each_mode_accepts_valid_briefs_and_publishes_with_priority(client, make_token, redis_server):
    import redis

    from webapp.services import broker

    operator = _auth(make_token("operator"))
    briefs = [small_brief(priority="urgent"), {"bad": 1}, small_brief(priority="low"), small_brief()]
    answer = client.post("/tasks/video/batch", headers=operator, json={"briefs": briefs, "mode": "each"})
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert [t["index"] for t in body["tasks"]] == [0, 2, 3]
    assert [e["index"] for e in body["errors"]] == [1]
    assert answer.headers["Location"] == f"/tasks/batches/{body['batch_id']}"
    client_redis = redis.Redis.from_url(redis_server.url)
    assert client_redis.llen(broker.list_key("video_generation", 0)) == 1  # urgent
    assert client_redis.llen(broker.list_key("video_generation", 9)) == 1  # low
    assert client_redis.llen(broker.list_key("video_generation", 6)) == 1  # normal
    assert broker.task_ids_in_broker("video_generation") == {t["task_id"] for t in body["tasks"]}

    shown = client.get(f"/tasks/batches/{body['batch_id']}", headers=_auth(make_token("viewer")))
    assert shown.status_code == 200
    listed = shown.get_json()
    assert listed["count"] == 3 and listed["counts"] == {"queued": 3} and listed["done"] is False
    assert [t["task_id"] for t in listed["tasks"]] == [t["task_id"] for t in body["tasks"]]
    assert client.get("/tasks/batches/batch_nope", headers=operator).status_code == 404
    status = client.get(f"/tasks/status/{body['tasks'][0]['task_id']}", headers=operator).get_json()
    assert status["request"] == {**small_brief(priority="urgent"), "user_description_id": status["request"]["user_description_id"]}
    assert status["priority"] == "urgent" and status["cancel_requested"] is False and status["created_at"]
    events = client.get(f"/tasks/{body['tasks'][0]['task_id']}/events", headers=operator).get_json()["events"]
    assert events[0]["kind"] == "created" and events[0]["data"]["batch_id"] == body["batch_id"]


def test_idempotency_key_replays_a_batch(client, make_token):
    operator = _auth(make_token("operator"))
    payload = {"briefs": [small_brief(), small_brief(priority="high")]}
    first = client.post("/tasks/video/batch", headers={**operator, "Idempotency-Key": "b-1"}, json=payload)
    again = client.post("/tasks/video/batch", headers={**operator, "Idempotency-Key": "b-1"}, json=payload)
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["batch_id"] == first.get_json()["batch_id"]
    assert again.get_json()["tasks"] == first.get_json()["tasks"]
    other = client.post("/tasks/video/batch", headers={**operator, "Idempotency-Key": "b-1"},
                        json={"briefs": [small_brief()]})
    assert other.status_code == 409


def test_envelope_errors_and_limits(client, make_token):
    operator = _auth(make_token("operator"))
    assert client.post("/tasks/video/batch", headers=_auth(make_token("viewer")),
                       json={"briefs": [small_brief()]}).status_code == 403
    for payload, field in (({"briefs": []}, "briefs"), ({"briefs": [small_brief()], "mode": "some"}, "mode"),
                           ({"briefs": [small_brief()] * 501}, "briefs"), ([], "body")):
        answer = client.post("/tasks/video/batch", headers=operator, json=payload)
        assert answer.status_code == 400, payload
        assert field in answer.get_json()["fields"], answer.get_json()
    full = client.post("/tasks/video/batch", headers=operator, json={"briefs": [small_brief()] * 500})
    assert full.status_code == 202 and full.get_json()["count"] == 500


@pytest.mark.sqlite_only
def test_a_worker_runs_a_batch_task(client, make_token, stack):
    """The pipelined messages are ones Celery consumes: a cancelled-before-start task proves the
    claim ran without spending CPU on a render."""
    operator = _auth(make_token("operator"))
    body = client.post("/tasks/video/batch", headers=operator,
                       json={"briefs": [small_brief(), small_brief()]}).get_json()
    first, second = (t["task_id"] for t in body["tasks"])
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import RenderTask

    db.session.execute(update(RenderTask).where(RenderTask.id == second).values(cancel_requested=True))
    db.session.commit()
    stack.start_worker(["video_generation", "video_processing", "image_processing", "audio_processing"],
                       concurrency=2)
    stack.wait_status(second, "cancelled", 60)
    stack.wait_status(first, "completed", 180)
    shown = client.get(f"/tasks/batches/{body['batch_id']}", headers=operator).get_json()
    assert shown["done"] is True and shown["progress"] == 100.0
    assert shown["counts"] == {"completed": 1, "cancelled": 1}


def test_batch_messages_carry_the_render_id_a_cancel_revokes_in_submission_order(client, make_token, redis_server):
    import json

    import redis

    from webapp.services import broker
    from webapp.services.dispatch import render_message_id

    operator = _auth(make_token("operator"))
    briefs = [small_brief(priority="high" if i % 3 else "low") for i in range(9)]
    body = client.post("/tasks/video/batch", headers=operator, json={"briefs": briefs}).get_json()
    client_redis = redis.Redis.from_url(redis_server.url)
    for priority, level in (("high", 3), ("low", 9)):
        # kombu pops from the right: the first brief of a priority is consumed first.
        raw = client_redis.lrange(broker.list_key("video_generation", level), 0, -1)[::-1]
        messages = [json.loads(m) for m in raw]
        expected = [t["task_id"] for t in body["tasks"] if t["priority"] == priority]
        assert [m["headers"]["id"] for m in messages] == [render_message_id(t, 0) for t in expected]
        assert all(m["properties"]["priority"] == level for m in messages)
        assert len({m["properties"]["delivery_tag"] for m in messages}) == len(messages)


def test_a_batch_over_the_parameter_limit_is_written_in_several_statements(client, make_token, monkeypatch):
    from webapp.services import batches

    monkeypatch.setattr(batches, "_max_params", lambda: 50)  # two task rows per INSERT
    operator = _auth(make_token("operator"))
    briefs = [small_brief(theme_id=f"分批写入的主题 {i}") for i in range(7)]
    body = client.post("/tasks/video/batch", headers=operator, json={"briefs": briefs}).get_json()
    shown = client.get(f"/tasks/batches/{body['batch_id']}", headers=operator).get_json()
    assert [t["task_id"] for t in shown["tasks"]] == [t["task_id"] for t in body["tasks"]]
    found = client.get("/tasks/history?q=分批写入", headers=operator).get_json()["tasks"]
    assert sorted(t["task_id"] for t in found) == sorted(t["task_id"] for t in body["tasks"])
    events = client.get(f"/tasks/{body['tasks'][6]['task_id']}/events", headers=operator).get_json()["events"]
    assert events[0]["data"] == {"priority": "normal", "batch_id": body["batch_id"]}


def test_batches_of_any_size_are_written_with_a_few_statement_shapes():
    """Each shape is a compiled statement a connection caches (about 1 MB for 500 rows on SQLite)."""
    from webapp.services.batches import MAX_BRIEFS, _chunk_sizes

    shapes = set()
    for count in range(1, MAX_BRIEFS + 1):
        sizes = _chunk_sizes(count, MAX_BRIEFS)
        assert sum(sizes) == count and len(sizes) <= 9
        shapes.update(sizes)
    assert _chunk_sizes(MAX_BRIEFS, MAX_BRIEFS) == [MAX_BRIEFS] and len(shapes) <= 10
    assert _chunk_sizes(7, 2) == [2, 2, 2, 1]
