"""Pages of issue 10: webhooks in Settings, the batch upload with its preview and progress line,
alerts on the dashboard and admin page, deliveries on the task page."""

from __future__ import annotations

import html
import io
import json

from tests.conftest import small_brief
from tests.dashboard.conftest import HTMX
from tests.webhooks.conftest import Receiver


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_admin_registers_tests_and_rotates_a_webhook(client, app, sign_in):
    app.config["WEBHOOK_ALLOWED_HOSTS"] = ["127.0.0.1"]
    receiver = Receiver().start()
    try:
        sign_in("admin")
        assert "Manage webhooks" in text_of(client.get("/settings"))
        page = client.post("/settings/webhooks", data={"url": receiver.url, "events": ["task.completed", "alert.fired"],
                                                       "description": "chat"})
        assert page.status_code == 201
        body = text_of(page)
        assert "shown only this once" in body and "whsec_" in body
        from webapp.services import webhooks

        [endpoint] = webhooks.list_endpoints()
        assert endpoint.events == ["task.completed", "alert.fired"]
        tested = client.post(f"/settings/webhooks/{endpoint.id}/test", follow_redirects=True)
        assert "Test ping delivered (HTTP 200)" in text_of(tested)
        assert receiver.requests[0].json["type"] == "ping"
        deliveries = text_of(client.get(f"/settings/webhooks/{endpoint.id}"))
        assert "ping" in deliveries and "delivered" in deliveries and "Redeliver" in deliveries
        rotated = text_of(client.post(f"/settings/webhooks/{endpoint.id}/rotate"))
        assert "the old one also signs for 24 hours" in rotated
        disabled = text_of(client.post(f"/settings/webhooks/{endpoint.id}/disable", follow_redirects=True))
        assert "Webhook disabled." in disabled and "disabled" in disabled
        bad = client.post("/settings/webhooks", data={"url": "ftp://nowhere", "events": ["task.completed"]})
        assert bad.status_code == 400 and "http://" in text_of(bad)
        assert client.post("/settings/webhooks/wh_missing/test").status_code == 404
    finally:
        receiver.stop()


def test_webhooks_page_is_for_admins(client, sign_in):
    sign_in("operator")
    assert client.get("/settings/webhooks").status_code == 403
    assert "Manage webhooks" not in text_of(client.get("/settings"))


def test_batch_upload_shows_invalid_rows_then_queues_the_valid_ones(client, sign_in):
    from webapp.extensions import db
    from webapp.models import RenderTask

    sign_in("operator")
    dashboard = text_of(client.get("/"))
    assert "Batch of videos" in dashboard and "data-dropzone" in dashboard
    csv_text = ("theme_id,keywords_id,target_duration_id,priority,quality,resolution\n"
                "产品宣传,科技;创新,5,high,low,256x144\n"
                ",科技,5,normal,low,256x144\n"
                "城市夜景,灯光|夜晚,abc,low,low,256x144\n"
                "旅行,山;海,6,low,low,320x180\n")
    preview = client.post("/batches/preview", headers=HTMX, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(csv_text.encode()), "briefs.csv")})
    assert preview.status_code == 200
    body = text_of(preview)
    assert "2 valid, 2 invalid" in body
    assert 'data-row="2"' in body and 'data-row="3"' in body and "theme_id" in body
    assert db.session.query(RenderTask).count() == 0  # nothing queued before confirming
    key = body.split('name="upload" value="', 1)[1].split('"', 1)[0]
    queued = client.post("/batches", headers=HTMX, data={"upload": key})
    assert queued.status_code == 200 and queued.headers["HX-Trigger"] == "aura:refresh"
    line = text_of(queued)
    assert "0 of 2 finished" in line and 'role="progressbar"' in line
    assert db.session.query(RenderTask).count() == 2
    again = client.post("/batches", headers=HTMX, data={"upload": key})
    assert again.status_code == 400 and "expired or was queued already" in text_of(again)
    batch_id = line.split('data-batch="', 1)[1].split('"', 1)[0]
    assert batch_id in text_of(client.get("/"))
    polled = client.get(f"/batches/{batch_id}/line", headers=HTMX)
    assert polled.status_code == 200 and "0 of 2 finished" in text_of(polled)
    assert client.get("/batches/batch_missing/line").status_code == 404


def test_batch_upload_of_json_and_bad_files(client, sign_in):
    sign_in("operator")
    good = json.dumps([small_brief(), small_brief(priority="urgent")]).encode()
    body = text_of(client.post("/batches/preview", headers=HTMX, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(good), "b.json")}))
    assert "2 valid, 0 invalid" in body
    broken = client.post("/batches/preview", headers=HTMX, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(b"[{"), "b.json")})
    assert broken.status_code == 400 and "not valid JSON" in text_of(broken)
    no_file = client.post("/batches/preview", headers=HTMX, content_type="multipart/form-data", data={})
    assert no_file.status_code == 400
    # Without JavaScript the preview is a page of its own.
    page = client.post("/batches/preview", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(good), "b.json")})
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)


def test_viewers_cannot_upload_batches(client, sign_in):
    sign_in("viewer")
    assert client.post("/batches/preview", content_type="multipart/form-data", data={}).status_code == 403
    assert "data-dropzone" not in text_of(client.get("/"))


def test_active_alerts_show_on_dashboard_and_admin_page(client, sign_in, app):
    from webapp.extensions import db
    from webapp.services import alerts

    with db.engine.begin() as conn:
        alerts.fire(conn, "backlog:video_generation", "backlog",
                    {"queue": "video_generation", "waiting": 250, "limit": 100})
    sign_in("admin")
    for path in ("/", "/admin"):
        page = text_of(client.get(path))
        assert "Active alerts" in page, path
        assert "Backlog on video_generation: 250 waiting (limit 100)" in page, path


def test_task_page_lists_its_deliveries_for_admins(client, app, sign_in, make_task):
    from webapp.extensions import db
    from webapp.services import webhooks

    app.config["WEBHOOK_ALLOWED_HOSTS"] = ["127.0.0.1"]
    endpoint, _secret = webhooks.create_endpoint({"url": "http://127.0.0.1:9/hook", "events": ["task.cancelled"]},
                                                 "test")
    task = make_task(status="cancelled")
    with db.engine.begin() as conn:
        webhooks.record_task_event(conn, task.id, "task.cancelled")
    webhooks.forget_pending()
    sign_in("admin")
    page = text_of(client.get(f"/videos/{task.id}"))
    assert "Webhook deliveries" in page and "task.cancelled" in page and "pending" in page
