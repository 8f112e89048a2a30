"""The admin page: roles, fragments, forms and CSRF (no worker processes)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import IsolatedClient
from tests.dashboard.conftest import csrf_from
from webapp.catalog import QUEUES, VIDEO_QUEUE

HTMX = {"HX-Request": "true"}


@pytest.fixture
def browser_client(app):
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def sign_in(browser_client, make_user):
    def login(role: str):
        user = make_user(f"{role}-person", role)
        response = browser_client.post("/login", data={"username": user.username, "password": "password123"})
        assert response.status_code == 302
        return user

    return login


def test_anonymous_visitors_are_sent_to_sign_in(browser_client):
    response = browser_client.get("/admin")
    assert response.status_code == 302 and "/login" in response.location


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_admins_get_403_everywhere(browser_client, sign_in, role):
    sign_in(role)
    assert browser_client.get("/admin").status_code == 403
    assert browser_client.get("/admin/fleet", headers=HTMX).status_code == 403
    assert browser_client.post("/admin/control", data={"worker_id": "x", "action": "start",
                                                       "queue": "default"}).status_code == 403


def test_page_shows_fleet_forms_and_logs_with_polling_that_never_stacks(browser_client, sign_in):
    sign_in("admin")
    html = browser_client.get("/admin").get_data(as_text=True)
    for marker in ('id="fleet"', 'id="start-form"', 'id="queues"', 'id="fleet-logs"',
                   "Scaling decisions", "Audit log", "No supervisor is running"):
        assert marker in html, marker
    fleet_div = re.search(r'<section id="fleet"[^>]*>', html).group(0)
    assert 'hx-sync="this:drop"' in fleet_div and 'data-poll="fleet"' in fleet_div
    assert all(f'value="{q}"' in html for q in QUEUES)
    assert '"X-CSRFToken"' in html and 'name="csrf_token"' in html


def test_start_pause_stop_through_the_page_with_csrf(app, browser_client, sign_in):
    sign_in("admin")
    app.config["WTF_CSRF_ENABLED"] = True
    token = csrf_from(browser_client.get("/admin").get_data(as_text=True))
    refused = browser_client.post("/admin/control", data={"worker_id": "w", "action": "start", "queue": "default"},
                                  headers=HTMX)
    assert refused.status_code == 400  # no CSRF token
    started = browser_client.post("/admin/control", headers=HTMX, data={
        "csrf_token": token, "worker_id": "pagew", "action": "start", "queue": [VIDEO_QUEUE, "default"],
        "concurrency": "2"})
    assert started.status_code == 200 and started.headers["HX-Trigger"] == "aura:fleet-changed"
    html = started.get_data(as_text=True)
    assert 'data-worker="pagew"' in html and "notice-success" in html and "video_generation, default" in html
    assert 'hx-confirm="Stop worker pagew?' in html
    again = browser_client.post("/admin/control", headers=HTMX, data={
        "csrf_token": token, "worker_id": "pagew", "action": "start", "queue": "default"})
    assert "notice-error" in again.get_data(as_text=True) and "already running" in again.get_data(as_text=True)
    paused = browser_client.post("/admin/control", headers=HTMX,
                                 data={"csrf_token": token, "worker_id": "pagew", "action": "pause"})
    assert 'data-action="resume"' in paused.get_data(as_text=True)
    stopped = browser_client.post("/admin/control", data={"csrf_token": token, "worker_id": "pagew", "action": "stop"})
    assert stopped.status_code == 302  # without htmx: back to the page with a flash message
    logs = browser_client.get("/admin/logs", headers=HTMX).get_data(as_text=True)
    assert logs.count('data-result="ok"') == 3 and logs.count('data-result="rejected"') == 1
    assert "user:admin-person" in logs


def test_queue_target_and_policy_forms(browser_client, sign_in):
    sign_in("admin")
    target = browser_client.post(f"/admin/queues/{VIDEO_QUEUE}/target", data={"target_workers": "2"}, headers=HTMX)
    html = target.get_data(as_text=True)
    assert "will start video_generation, video_generation-2" in html
    bad = browser_client.post(f"/admin/queues/{VIDEO_QUEUE}/target", data={"target_workers": "99"}, headers=HTMX)
    assert "notice-error" in bad.get_data(as_text=True)
    saved = browser_client.post(f"/admin/queues/{VIDEO_QUEUE}/policy", headers=HTMX, data={
        "enabled": "1", "min_workers": "1", "max_workers": "3", "target_backlog_per_worker": "2",
        "cooldown_seconds": "30"})
    assert "saved (enabled)" in saved.get_data(as_text=True) and "on: 1–3" in saved.get_data(as_text=True)
    removed = browser_client.post(f"/admin/queues/{VIDEO_QUEUE}/policy", data={"remove": "1"}, headers=HTMX)
    assert "removed" in removed.get_data(as_text=True)
    decisions = browser_client.get("/admin/logs", headers=HTMX).get_data(as_text=True)
    assert 'data-action="scale_up"' in decisions


def test_fragments_redirect_without_htmx(browser_client, sign_in):
    sign_in("admin")
    assert browser_client.get("/admin/fleet").status_code == 302
    assert browser_client.get("/admin/logs").status_code == 302
