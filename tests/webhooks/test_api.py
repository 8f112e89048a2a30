"""The webhooks API: registration, secrets, SSRF refusals, test pings signed the documented way,
rotation with both signatures, callback_url restricted to registered origins."""

from __future__ import annotations

import base64

from tests.conftest import small_brief
from tests.webhooks.conftest import verify


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_list_change_delete(client, webhook_app, make_token, receiver):
    admin = _auth(make_token("admin"))
    created = client.post("/webhooks", headers=admin,
                          json={"url": receiver.url, "events": ["task.completed", "task.failed"],
                                "description": "CI"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"][len("whsec_"):])) >= 24
    listed = client.get("/webhooks", headers=admin).get_json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]
    changed = client.patch(f"/webhooks/{body['id']}", headers=admin,
                           json={"events": ["task.progress"], "enabled": False})
    assert changed.status_code == 200
    assert changed.get_json()["events"] == ["task.progress"] and changed.get_json()["enabled"] is False
    assert client.delete(f"/webhooks/{body['id']}", headers=admin).status_code == 204
    missing = client.get(f"/webhooks/{body['id']}", headers=admin)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.get("/webhooks/nope/deliveries", headers=admin).status_code == 404


def test_only_admins_and_clear_errors(client, webhook_app, make_token, receiver):
    assert client.get("/webhooks", headers=_auth(make_token("operator"))).status_code == 403
    assert client.get("/webhooks").status_code == 401
    admin = _auth(make_token("admin"))
    bad = client.post("/webhooks", headers=admin, json={"url": receiver.url, "events": ["task.exploded"]})
    assert bad.status_code == 400 and "task.exploded" in bad.get_json()["message"]
    bad = client.post("/webhooks", headers=admin, json={"url": "ftp://example.com/x"})
    assert bad.status_code == 400 and bad.get_json()["fields"]["url"]
    bad = client.post("/webhooks", headers=admin, data="not json", content_type="application/json")
    assert bad.status_code == 400
    for url in ("http://a..b/x", "http://" + "x" * 70 + ".example/x"):  # names IDNA cannot encode
        bad = client.post("/webhooks", headers=admin, json={"url": url})
        assert bad.status_code == 400 and bad.get_json()["fields"]["url"] == "unknown host", url
    bad = client.post("/webhooks", headers=admin, json={"url": receiver.url, "events": []})
    assert bad.status_code == 400 and "events" in bad.get_json()["fields"]
    assert client.patch("/webhooks/wh_nope", headers=admin, json={"enabled": True}).status_code == 404
    assert client.get("/webhooks/wh_nope/deliveries?limit=0", headers=admin).status_code == 400


def test_private_and_loopback_targets_are_refused_unless_allowed(client, app, make_token):
    admin = _auth(make_token("admin"))
    app.config["WEBHOOK_ALLOWED_HOSTS"] = []
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "http://192.168.0.10/x"):
        answer = client.post("/webhooks", headers=admin, json={"url": url})
        assert answer.status_code == 400, url
        assert "WEBHOOK_ALLOWED_HOSTS" in answer.get_json()["message"], url
    app.config["WEBHOOK_ALLOWED_HOSTS"] = ["10.0.0.0/8"]
    assert client.post("/webhooks", headers=admin, json={"url": "http://10.1.2.3/x"}).status_code == 201


def test_test_ping_is_signed_and_listed(client, webhook_app, make_token, receiver):
    admin = _auth(make_token("admin"))
    created = client.post("/webhooks", headers=admin, json={"url": receiver.url}).get_json()
    answer = client.post(f"/webhooks/{created['id']}/test", headers=admin)
    assert answer.status_code == 200
    delivery = answer.get_json()
    assert delivery["status"] == "delivered" and delivery["response_code"] == 200
    [got] = receiver.requests
    assert got.headers["webhook-id"] == delivery["id"]
    assert got.json["type"] == "ping"
    assert verify(created["secret"], got.headers, got.body)
    assert not verify(created["secret"], got.headers, got.body + b" ")
    listed = client.get(f"/webhooks/{created['id']}/deliveries", headers=admin).get_json()["deliveries"]
    assert [d["id"] for d in listed] == [delivery["id"]]

    # Redelivery keeps the id (a worker sends it; here we only check the row is due again).
    again = client.post(f"/webhooks/{created['id']}/deliveries/{delivery['id']}/redeliver", headers=admin)
    assert again.status_code == 202
    assert client.post(f"/webhooks/{created['id']}/deliveries/msg_nope/redeliver", headers=admin).status_code == 404


def test_rotation_signs_with_both_secrets(client, webhook_app, make_token, receiver):
    admin = _auth(make_token("admin"))
    created = client.post("/webhooks", headers=admin, json={"url": receiver.url}).get_json()
    rotated = client.post(f"/webhooks/{created['id']}/rotate-secret", headers=admin).get_json()
    assert rotated["secret"] != created["secret"] and rotated["secret_rotating_until"]
    client.post(f"/webhooks/{created['id']}/test", headers=admin)
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verify(created["secret"], got.headers, got.body)
    assert verify(rotated["secret"], got.headers, got.body)


def test_callback_url_must_share_a_registered_origin(client, webhook_app, make_token, receiver):
    from webapp.extensions import db
    from webapp.models import TaskCallback

    admin, operator = _auth(make_token("admin")), _auth(make_token("operator"))
    refused = client.post("/tasks/video/async", headers=operator,
                          json={**small_brief(), "callback_url": receiver.url})
    assert refused.status_code == 400
    assert refused.get_json()["fields"]["callback_url"]
    created = client.post("/webhooks", headers=admin, json={"url": receiver.url}).get_json()
    other_port = f"http://127.0.0.1:{receiver.port + 1}/cb"
    assert client.post("/tasks/video/async", headers=operator,
                       json={**small_brief(), "callback_url": other_port}).status_code == 400
    accepted = client.post("/tasks/video/async", headers=operator,
                           json={**small_brief(), "callback_url": f"http://127.0.0.1:{receiver.port}/task-cb"})
    assert accepted.status_code == 202, accepted.get_json()
    row = db.session.get(TaskCallback, accepted.get_json()["task_id"])
    assert row.endpoint_id == created["id"] and row.url.endswith("/task-cb")
    # The stored brief stays as SPEC defines it.
    status = client.get(f"/tasks/status/{row.task_id}", headers=operator).get_json()
    assert "callback_url" not in status["request"]
