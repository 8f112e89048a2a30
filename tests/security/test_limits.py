"""Abuse limits: failed sign-ins per address and per user name, per-token API rates, active tasks
per submitter and per-role caps, all answering 429 with Retry-After where they are rates."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import small_brief
from webapp.config import load_config


@pytest.fixture
def limits(app):
    """The shipped defaults (the suite raises the API rates), changeable per test."""
    defaults = load_config({"ENVIRONMENT": "testing"})
    for name in ("LOGIN_RATE_IP", "LOGIN_RATE_USER", "RATELIMIT_READ", "RATELIMIT_SUBMIT",
                 "MAX_ACTIVE_TASKS_PER_USER", "OPERATOR_MAX_RESOLUTION", "OPERATOR_MAX_DURATION"):
        app.config[name] = defaults[name]
    return app.config


def test_defaults_are_what_a_small_team_keeps():
    config = load_config({"ENVIRONMENT": "testing"})
    assert config["LOGIN_RATE_USER"] == "5/minute" and config["LOGIN_RATE_IP"] == "30/minute"
    assert config["RATELIMIT_SUBMIT"] == "60/minute" and config["RATELIMIT_READ"] == "600/minute"
    assert config["MAX_ACTIVE_TASKS_PER_USER"] == 1000
    assert config["OPERATOR_MAX_RESOLUTION"] == "1920x1080" and config["OPERATOR_MAX_DURATION"] == 300
    assert config["SUPERVISOR_MAX_WORKERS"] == 8 and config["WORKER_MAX_CONCURRENCY"] == 8
    custom = load_config({"RATELIMIT_SUBMIT": "5/second", "OPERATOR_MAX_RESOLUTION": "1280X720",
                          "SUPERVISOR_MAX_WORKERS": "3"})
    assert custom["RATELIMIT_SUBMIT"] == "5/second" and custom["OPERATOR_MAX_RESOLUTION"] == "1280x720"
    assert custom["SUPERVISOR_MAX_WORKERS"] == 3
    with pytest.raises(RuntimeError, match="OPERATOR_MAX_RESOLUTION"):
        load_config({"OPERATOR_MAX_RESOLUTION": "big"})


def wrong(client, username: str, addr: str = "10.0.0.1"):
    return client.post("/login", data={"username": username, "password": "wrong-password"},
                       environ_base={"REMOTE_ADDR": addr})


def test_failed_sign_ins_are_limited_per_user_name(client, make_user, limits):
    make_user("ana", "viewer")
    for i in range(5):
        assert wrong(client, "ana", f"10.0.1.{i}").status_code == 401  # five addresses, one name
    blocked = wrong(client, "ANA ", "10.0.1.99")
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many" in blocked.get_data(as_text=True)
    # Even the right password waits: the name is locked for the window.
    right = client.post("/login", data={"username": "ana", "password": "password123"},
                        environ_base={"REMOTE_ADDR": "10.0.1.100"})
    assert right.status_code == 429
    assert wrong(client, "bob", "10.0.1.99").status_code == 401  # other names are not


def test_failed_sign_ins_are_limited_per_address(client, make_user, limits):
    limits["LOGIN_RATE_IP"] = "3/minute"
    for i in range(3):
        assert wrong(client, f"name{i}").status_code == 401
    assert wrong(client, "name9").status_code == 429
    assert wrong(client, "name9", "10.0.0.2").status_code == 401


def test_successful_sign_ins_are_not_counted(client, make_user, limits):
    make_user("cy", "viewer")
    for _ in range(7):
        response = client.post("/login", data={"username": "cy", "password": "password123"})
        assert response.status_code == 302
        client.post("/logout")


def test_an_unknown_user_costs_the_same_time_as_a_wrong_password(client, make_user, limits):
    limits["LOGIN_RATE_IP"] = limits["LOGIN_RATE_USER"] = "1000/minute"
    make_user("dee", "viewer")

    def timed(name: str) -> float:
        started = time.perf_counter()
        assert wrong(client, name).status_code == 401
        return time.perf_counter() - started

    known = [timed("dee") for _ in range(6)]
    unknown = [timed("nobody-here") for _ in range(6)]
    # The password hash check dominates both; without it an unknown name answers many times faster.
    assert statistics.median(unknown) > 0.5 * statistics.median(known)


def test_api_rates_are_per_token_with_retry_after(client, make_token, limits):
    limits["RATELIMIT_READ"] = "3/minute"
    limits["RATELIMIT_SUBMIT"] = "2/minute"
    first, second = make_token("operator", "first"), make_token("operator", "second")
    h1, h2 = {"Authorization": f"Bearer {first}"}, {"Authorization": f"Bearer {second}"}
    for _ in range(3):
        assert client.get("/tasks/queue/status", headers=h1).status_code == 200
    limited = client.get("/tasks/history", headers=h1)
    assert limited.status_code == 429
    body = limited.get_json()
    assert body["error"] == "rate_limited" and body["message"] and body["fields"] == {}
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/tasks/queue/status", headers=h2).status_code == 200  # another token
    # Writes have their own budget.
    assert client.post("/tasks/video/async", json=small_brief(), headers=h1).status_code == 202
    assert client.post("/tasks/video/async", json=small_brief(), headers=h1).status_code == 202
    assert client.post("/tasks/video/async", json=small_brief(), headers=h1).status_code == 429


def test_active_tasks_per_submitter_are_capped(client, make_token, limits):
    limits["MAX_ACTIVE_TASKS_PER_USER"] = 2
    token = make_token("operator")
    headers = {"Authorization": f"Bearer {token}"}
    ids = [client.post("/tasks/video/async", json=small_brief(), headers=headers).get_json()["task_id"]
           for _ in range(2)]
    refused = client.post("/tasks/video/async", json=small_brief(), headers=headers)
    assert refused.status_code == 429 and refused.get_json()["error"] == "too_many_active_tasks"
    assert int(refused.headers["Retry-After"]) > 0
    assert client.post(f"/tasks/{ids[0]}/cancel", headers=headers).status_code == 200
    assert client.post("/tasks/video/async", json=small_brief(), headers=headers).status_code == 202
    other = {"Authorization": f"Bearer {make_token('operator', 'other')}"}
    assert client.post("/tasks/video/async", json=small_brief(), headers=other).status_code == 202


@pytest.mark.parametrize(("role", "resolution", "duration", "refused"), [
    ("operator", "1920x1080", 300, None),
    ("operator", "2560x1440", 30, "config.resolution"),
    ("operator", "1080x1920", 30, None),
    ("operator", "1280x720", 301, "target_duration_id"),
    ("admin", "3840x2160", 600, None),
])
def test_roles_have_resolution_and_duration_caps(client, make_token, limits, role, resolution, duration, refused):
    headers = {"Authorization": f"Bearer {make_token(role)}"}
    brief = small_brief(target_duration_id=duration, config={"quality": "low", "resolution": resolution})
    response = client.post("/tasks/video/async", json=brief, headers=headers)
    if refused is None:
        assert response.status_code == 202
    else:
        assert response.status_code == 400 and refused in response.get_json()["fields"]


def test_the_form_applies_the_role_caps(client, sign_in, limits):
    sign_in("operator")
    form = {"theme_id": "t", "keywords_id": "k", "target_duration_id": "400", "priority": "normal",
            "quality": "low", "resolution": "1280x720"}
    response = client.post("/", data=form)
    assert response.status_code == 400 and "at most 300 seconds" in response.get_data(as_text=True)


def test_fleet_has_safe_defaults(client, make_token, app, monkeypatch):
    headers = {"Authorization": f"Bearer {make_token('admin')}"}
    body = {"worker_id": "w1", "action": "start", "queue": "default"}
    over = client.post("/tasks/workers/control", json={**body, "concurrency": 9}, headers=headers)
    assert over.status_code == 400 and "from 1 to 8" in over.get_json()["message"]
    app.config["WORKER_MAX_CONCURRENCY"] = 12
    assert client.post("/tasks/workers/control", json={**body, "concurrency": 9}, headers=headers).status_code == 202
    from worker.supervisor import parse_args

    monkeypatch.delenv("SUPERVISOR_MAX_WORKERS", raising=False)
    assert parse_args([]).max_workers == 8
    monkeypatch.setenv("SUPERVISOR_MAX_WORKERS", "3")
    assert parse_args([]).max_workers == 3
    monkeypatch.setenv("SUPERVISOR_MAX_WORKERS", "0")
    assert parse_args([]).max_workers is None


def test_batches_and_previews_keep_the_same_caps(client, make_token, limits):
    limits["MAX_ACTIVE_TASKS_PER_USER"] = 3
    headers = {"Authorization": f"Bearer {make_token('operator')}"}
    too_big = small_brief(config={"quality": "low", "resolution": "2560x1440"})
    # A brief over the role's cap is an error by its index, like an invalid one.
    refused = client.post("/tasks/video/batch", json={"briefs": [small_brief(), too_big]}, headers=headers)
    assert refused.status_code == 400
    assert [(e["index"], list(e["fields"])) for e in refused.get_json()["errors"]] == [(1, ["config.resolution"])]
    each = client.post("/tasks/video/batch", json={"briefs": [small_brief(), too_big], "mode": "each"},
                       headers=headers)
    assert each.status_code == 202 and [t["index"] for t in each.get_json()["tasks"]] == [0]
    # One task is active: a batch of three would pass the cap of three, a batch of two does not.
    over = client.post("/tasks/video/batch", json={"briefs": [small_brief()] * 3}, headers=headers)
    assert over.status_code == 429 and over.get_json()["error"] == "too_many_active_tasks"
    assert int(over.headers["Retry-After"]) > 0
    assert client.post("/tasks/video/batch", json={"briefs": [small_brief()] * 2}, headers=headers).status_code == 202
    # A preview is a task too.
    assert client.post("/tasks/video/preview", json=small_brief(), headers=headers).status_code == 429
    limits["MAX_ACTIVE_TASKS_PER_USER"] = 0
    assert client.post("/tasks/video/preview", json=too_big, headers=headers).status_code == 400


def test_the_media_library_api_keeps_the_token_rates(client, make_token, limits):
    limits["RATELIMIT_READ"] = "2/minute"
    headers = {"Authorization": f"Bearer {make_token('operator', 'library-reader')}"}
    assert [client.get("/assets", headers=headers).status_code for _ in range(3)] == [200, 200, 429]
    limited = client.get("/assets", headers=headers)
    assert limited.get_json()["error"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0
