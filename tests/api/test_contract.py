"""Contract tests of the JSON API: exact paths, fields and every error (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import SAMPLE_BRIEF, small_brief
from webapp.catalog import PRIORITIES


def post_brief(client, token, body, headers=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    return client.post("/tasks/video/async", data=data, content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", **(headers or {})})


def get(client, token, path):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_submit_sample_brief_returns_spec_fields(client, make_token):
    token = make_token("operator")
    response = post_brief(client, token, SAMPLE_BRIEF)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"task_id", "status", "priority", "estimated_duration", "message", "timestamp"}
    assert re.fullmatch(r"video_\d{10}_[a-z0-9]{6,}", body["task_id"])
    assert body["status"] == "queued"
    assert body["priority"] == "high"
    assert isinstance(body["estimated_duration"], int) and body["estimated_duration"] > 0
    assert body["message"] == "Video generation task submitted, priority: HIGH"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])


def test_status_keeps_chinese_text_and_spec_fields(client, make_token):
    token = make_token("operator")
    task_id = post_brief(client, token, SAMPLE_BRIEF).get_json()["task_id"]
    response = get(client, token, f"/tasks/status/{task_id}")
    assert response.status_code == 200
    raw = response.get_data(as_text=True)
    assert "产品宣传" in raw  # not \\u-escaped
    body = response.get_json()
    for name in ("task_id", "status", "priority", "progress", "message", "created_at", "updated_at",
                 "estimated_duration", "actual_duration", "result", "error"):
        assert name in body
    assert body["request"] == SAMPLE_BRIEF
    assert body["progress"] == 0.0
    assert body["result"] is None and body["error"] is None


def test_submit_records_a_created_event(app, client, make_token):
    token = make_token("operator")
    task_id = post_brief(client, token, small_brief()).get_json()["task_id"]
    events = get(client, token, f"/tasks/{task_id}/events").get_json()["events"]
    assert [e["kind"] for e in events] == ["created"]


@pytest.mark.parametrize("body,field", [
    ({**SAMPLE_BRIEF, "theme_id": "  "}, "theme_id"),
    ({**SAMPLE_BRIEF, "theme_id": 5}, "theme_id"),
    ({**SAMPLE_BRIEF, "keywords_id": []}, "keywords_id"),
    ({**SAMPLE_BRIEF, "keywords_id": [f"k{i}" for i in range(11)]}, "keywords_id"),
    ({**SAMPLE_BRIEF, "keywords_id": "科技"}, "keywords_id"),
    ({**SAMPLE_BRIEF, "target_duration_id": 4}, "target_duration_id"),
    ({**SAMPLE_BRIEF, "target_duration_id": 601}, "target_duration_id"),
    ({**SAMPLE_BRIEF, "target_duration_id": "60"}, "target_duration_id"),
    ({**SAMPLE_BRIEF, "target_duration_id": True}, "target_duration_id"),
    ({**SAMPLE_BRIEF, "priority": "critical"}, "priority"),
    ({**SAMPLE_BRIEF, "config": {"quality": "ultra", "resolution": "1920x1080"}}, "config.quality"),
    ({**SAMPLE_BRIEF, "config": {"quality": "high", "resolution": "1921x1080"}}, "config.resolution"),
    ({**SAMPLE_BRIEF, "config": {"quality": "high", "resolution": "100x100"}}, "config.resolution"),
    ({**SAMPLE_BRIEF, "config": {"quality": "high", "resolution": "4000x2000"}}, "config.resolution"),
    ({**SAMPLE_BRIEF, "config": {"quality": "high", "resolution": "1920*1080"}}, "config.resolution"),
    ({**SAMPLE_BRIEF, "config": {"quality": "high", "resolution": "1920x1080", "fps": 60}}, "config.fps"),
    ({**SAMPLE_BRIEF, "config": "high"}, "config"),
    ({**SAMPLE_BRIEF, "user_description_id": "长" * 2001}, "user_description_id"),
    ({**SAMPLE_BRIEF, "user_description_id": 12}, "user_description_id"),
    ({**SAMPLE_BRIEF, "colour": "red"}, "colour"),
    (["not", "an", "object"], "body"),
])
def test_bad_briefs_are_400_with_fields_and_create_nothing(client, make_token, body, field):
    token = make_token("operator")
    response = post_brief(client, token, body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid_request"
    assert error["message"]
    assert field in error["fields"], error
    history = get(client, token, "/tasks/history").get_json()
    assert history["tasks"] == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"theme_id": "x",}'])
def test_malformed_json_is_400(client, make_token, raw):
    response = post_brief(client, make_token("operator"), raw)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_body_over_64kb_is_413(client, make_token):
    body = {**SAMPLE_BRIEF, "user_description_id": "x" * 70000}
    response = post_brief(client, make_token("operator"), body)
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_boundaries_are_accepted(client, make_token):
    token = make_token("admin")  # an admin's caps are the validation bounds (limits: tests/security)
    for duration, resolution, keywords in ((5, "144x144", ["a"]), (600, "3840x2160", [f"k{i}" for i in range(10)])):
        body = {**SAMPLE_BRIEF, "target_duration_id": duration, "keywords_id": keywords,
                "user_description_id": "d" * 2000, "config": {"quality": "low", "resolution": resolution}}
        assert post_brief(client, token, body).status_code == 202


def test_defaults_fill_optional_fields(client, make_token):
    token = make_token("operator")
    body = {"theme_id": "Launch", "keywords_id": ["speed"], "target_duration_id": 10}
    task_id = post_brief(client, token, body).get_json()["task_id"]
    status = get(client, token, f"/tasks/status/{task_id}").get_json()
    assert status["priority"] == "normal"
    assert status["request"]["config"] == {"quality": "medium", "resolution": "1280x720"}


def test_idempotency_key_returns_same_task_and_conflicts_on_other_body(client, make_token):
    token = make_token("operator")
    first = post_brief(client, token, SAMPLE_BRIEF, {"Idempotency-Key": "abc-1"})
    again = post_brief(client, token, SAMPLE_BRIEF, {"Idempotency-Key": "abc-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.get_json()["task_id"] == again.get_json()["task_id"]
    other = post_brief(client, token, {**SAMPLE_BRIEF, "theme_id": "别的"}, {"Idempotency-Key": "abc-1"})
    assert other.status_code == 409
    assert other.get_json()["error"] == "idempotency_conflict"
    assert get(client, token, "/tasks/history").get_json()["count"] == 1


@pytest.mark.parametrize("path,method", [
    ("/tasks/video/async", "post"), ("/tasks/status/video_1_x", "get"), ("/tasks/queue/status", "get"),
    ("/tasks/history", "get"), ("/tasks/video_1_x/cancel", "post"),
])
def test_missing_or_wrong_token_is_401(client, make_token, path, method):
    make_token("admin")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"


def test_revoked_token_is_401(app, client):
    from webapp.services import auth

    token, raw = auth.create_token("old", "admin")
    auth.revoke_token(token)
    assert get(client, raw, "/tasks/history").status_code == 401


def test_viewer_reads_but_cannot_submit_or_cancel(client, make_token, make_task):
    viewer = make_token("viewer")
    task = make_task()
    assert get(client, viewer, f"/tasks/status/{task.id}").status_code == 200
    assert get(client, viewer, "/tasks/history").status_code == 200
    response = post_brief(client, viewer, SAMPLE_BRIEF)
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    response = client.post(f"/tasks/{task.id}/cancel", headers={"Authorization": f"Bearer {viewer}"})
    assert response.status_code == 403


def test_unknown_task_ids_are_404_json(client, make_token):
    token = make_token("operator")
    for response in (get(client, token, "/tasks/status/video_0_nothere"),
                     get(client, token, "/tasks/video_0_nothere/events"),
                     client.post("/tasks/video_0_nothere/cancel", headers={"Authorization": f"Bearer {token}"}),
                     get(client, token, "/tasks/status/" + "x" * 300)):
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"
    assert get(client, token, "/tasks/no/such/path").status_code == 404


def test_cancel_queued_task(client, make_token, make_task):
    token = make_token("operator")
    task = make_task(status="queued")
    response = client.post(f"/tasks/{task.id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert get(client, token, f"/tasks/status/{task.id}").get_json()["status"] == "cancelled"
    again = client.post(f"/tasks/{task.id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 409


def test_cancel_running_task_sets_flag(client, make_token, make_task):
    token = make_token("operator")
    task = make_task(status="processing", lease_owner="w", attempt=1)
    body = client.post(f"/tasks/{task.id}/cancel", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["status"] == "processing" and body["cancel_requested"] is True
    kinds = [e["kind"] for e in get(client, token, f"/tasks/{task.id}/events").get_json()["events"]]
    assert kinds == ["cancel_requested"]


def test_queue_status_lists_every_queue_with_depths(client, make_token):
    token = make_token("operator")
    post_brief(client, token, {**SAMPLE_BRIEF, "priority": "low"})
    post_brief(client, token, {**SAMPLE_BRIEF, "priority": "urgent"})
    body = get(client, token, "/tasks/queue/status").get_json()
    assert body["broker"] == "up"
    names = [q["name"] for q in body["queues"]]
    assert set(names) == {"video_generation", "video_processing", "audio_processing", "image_processing",
                          "maintenance", "monitoring", "default"}
    video = next(q for q in body["queues"] if q["name"] == "video_generation")
    assert video["waiting_by_priority"] == {"urgent": 1, "high": 0, "normal": 0, "low": 1}
    assert video["length"] == 2
    assert video["tasks_by_state"]["queued"] == 2
    assert video["oldest_waiting_seconds"] is not None
    assert set(video["throughput"]) == {"completed_5m", "failed_5m", "completed_60m", "failed_60m"}
    assert body["priorities"] == {p.name: {"value": p.value, "redis_level": p.redis_level}
                                  for p in PRIORITIES.values()}


def test_queue_status_throughput_counts_recent_outcomes(client, make_token, make_task):
    from datetime import timedelta

    from webapp.timeutil import utcnow

    now = utcnow()
    make_task(status="completed", finished_at=now - timedelta(minutes=1))
    make_task(status="completed", finished_at=now - timedelta(minutes=30))
    make_task(status="failed", finished_at=now - timedelta(minutes=2))
    make_task(status="completed", finished_at=now - timedelta(minutes=90))
    body = get(client, make_token("viewer"), "/tasks/queue/status").get_json()
    video = next(q for q in body["queues"] if q["name"] == "video_generation")
    assert video["throughput"] == {"completed_5m": 1, "failed_5m": 1, "completed_60m": 2, "failed_60m": 1}


def test_history_filters_and_cursor(client, make_token, make_task):
    from datetime import timedelta

    from webapp.timeutil import utcnow

    token = make_token("viewer")
    base = utcnow() - timedelta(days=3)
    made = []
    for i in range(25):
        status = ["completed", "failed", "queued"][i % 3]
        brief = small_brief(theme_id=f"主题 {i}", priority=["low", "normal", "high", "urgent"][i % 4])
        made.append(make_task(status=status, request=brief, priority=brief["priority"],
                              created_at=base + timedelta(hours=i)))
    page = get(client, token, "/tasks/history?limit=10").get_json()
    assert [t["task_id"] for t in page["tasks"]] == [t.id for t in reversed(made)][:10]
    seen = [t["task_id"] for t in page["tasks"]]
    while page["next_cursor"]:
        page = get(client, token, f"/tasks/history?limit=10&cursor={page['next_cursor']}").get_json()
        seen += [t["task_id"] for t in page["tasks"]]
    assert seen == [t.id for t in reversed(made)]

    completed = get(client, token, "/tasks/history?status=completed&limit=200").get_json()["tasks"]
    assert completed and all(t["status"] == "completed" for t in completed)
    several = get(client, token, "/tasks/history?status=completed,failed&limit=200").get_json()["tasks"]
    assert {t["status"] for t in several} == {"completed", "failed"}
    urgent = get(client, token, "/tasks/history?priority=urgent&limit=200").get_json()["tasks"]
    assert len(urgent) == 6 and all(t["priority"] == "urgent" for t in urgent)
    text = get(client, token, "/tasks/history?q=主题 12").get_json()["tasks"]
    assert [t["theme"] for t in text] == ["主题 12"]
    since = (base + timedelta(hours=20)).isoformat() + "Z"
    recent = get(client, token, f"/tasks/history?since={since}&limit=200").get_json()["tasks"]
    assert len(recent) == 5
    assert get(client, token, "/tasks/history?queue=video_generation").get_json()["count"] == 20


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"), ("status=done", "status"),
    ("priority=max", "priority"), ("queue=nope", "queue"), ("since=yesterday", "since"),
    ("cursor=@@@", "cursor"),
])
def test_history_bad_filters_are_400(client, make_token, query, field):
    response = get(client, make_token("viewer"), f"/tasks/history?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["fields"]


def test_estimate_uses_history_of_similar_tasks(app, client, make_token, make_task):
    from webapp.services import tasks as task_service
    from webapp.timeutil import utcnow

    token = make_token("operator")
    before = post_brief(client, token, SAMPLE_BRIEF).get_json()["estimated_duration"]
    for _ in range(5):
        make_task(status="completed", resolution="1920x1080", quality="high", target_duration=30,
                  actual_duration=300.0, finished_at=utcnow())
    task_service._estimate_cache.clear()
    after = post_brief(client, token, SAMPLE_BRIEF).get_json()["estimated_duration"]
    assert after == 600  # 10 s of processing per second of video, as the similar tasks took
    assert before != after


def test_api_message_follows_accept_language(client, make_token):
    token = make_token("operator")
    response = post_brief(client, token, SAMPLE_BRIEF, {"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code == 202
    message = response.get_json()["message"]
    assert "HIGH" in message and any("\u4e00" <= ch <= "\u9fff" for ch in message)


@pytest.mark.parametrize("probe_rows", [2_000, 4])
def test_short_text_search_pages_through_all_history(client, make_token, make_task, monkeypatch, probe_rows):
    from datetime import timedelta

    from webapp.services import search
    from webapp.timeutil import utcnow

    # A probe of 4 rows meets too few matches: the pages come from the short-term index instead.
    monkeypatch.setattr(search, "PROBE_ROWS", probe_rows)
    token = make_token("viewer")
    base = utcnow() - timedelta(days=1)
    wanted = []
    for i in range(30):
        theme = "城市夜景 launch" if i % 6 == 0 else f"其他 {i}"
        task = make_task(request=small_brief(theme_id=theme), theme=theme, created_at=base + timedelta(minutes=i))
        if i % 6 == 0:
            wanted.append(task.id)
    found, cursor, pages = [], "", 0
    while True:
        page = get(client, token, f"/tasks/history?q=夜景&limit=3&cursor={cursor}").get_json()
        found += [t["task_id"] for t in page["tasks"]]
        pages += 1
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert found == list(reversed(wanted))
    assert pages == 2  # 5 matches in pages of 3: no empty pages between them
    by_id = get(client, token, f"/tasks/history?q={wanted[0]}").get_json()["tasks"]
    assert [t["task_id"] for t in by_id] == [wanted[0]]


def test_status_message_follows_accept_language(client, make_token, make_task):
    token = make_token("viewer")
    task = make_task(status="processing", stage="render",
                     message="Running video processing... Rendering video 12/120 frames (chunk 1/2)")
    english = client.get(f"/tasks/status/{task.id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert english["message"] == "Running video processing... Rendering video 12/120 frames (chunk 1/2)"
    chinese = client.get(f"/tasks/status/{task.id}", headers={"Authorization": f"Bearer {token}",
                                                               "Accept-Language": "zh-CN"}).get_json()
    assert chinese["message"].endswith(" Rendering video 12/120 frames (chunk 1/2)")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese["message"])
