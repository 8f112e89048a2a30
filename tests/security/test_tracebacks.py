"""A failed task's traceback is for admins: viewers and operators see its type, message and stage,
in the API and on the task page."""

from __future__ import annotations

import pytest

from webapp.extensions import db
from webapp.models import TaskEvent

ERROR = {"type": "RuntimeError", "message": "ffmpeg gave up", "stage": "render",
         "traceback": "Traceback (most recent call last):\n  File \"/srv/aura/secret_path.py\", line 1\nRuntimeError"}


@pytest.fixture
def failed(make_task):
    task = make_task(status="failed", error=ERROR, message="Failed at render: ffmpeg gave up")
    db.session.add(TaskEvent(task_id=task.id, kind="failed", status="failed", message="RuntimeError: ffmpeg gave up",
                             data={"attempt": 1, "error": ERROR}))
    db.session.commit()
    return task


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_api_hides_tracebacks_below_admin(client, make_token, failed, role):
    headers = {"Authorization": f"Bearer {make_token(role)}"}
    status = client.get(f"/tasks/status/{failed.id}", headers=headers).get_json()
    assert status["error_detail"] == {"type": "RuntimeError", "message": "ffmpeg gave up", "stage": "render"}
    assert status["error"] == "RuntimeError: ffmpeg gave up"
    events = client.get(f"/tasks/{failed.id}/events", headers=headers).get_data(as_text=True)
    assert "ffmpeg gave up" in events and "secret_path" not in events


def test_api_shows_tracebacks_to_admins(client, make_token, failed):
    headers = {"Authorization": f"Bearer {make_token('admin')}"}
    status = client.get(f"/tasks/status/{failed.id}", headers=headers).get_json()
    assert "secret_path" in status["error_detail"]["traceback"]
    assert "secret_path" in client.get(f"/tasks/{failed.id}/events", headers=headers).get_data(as_text=True)


@pytest.mark.parametrize(("role", "shown"), [("viewer", False), ("operator", False), ("admin", True)])
def test_task_page_shows_tracebacks_to_admins_only(client, sign_in, failed, role, shown):
    sign_in(role)
    page = client.get(f"/videos/{failed.id}").get_data(as_text=True)
    assert "RuntimeError" in page and "ffmpeg gave up" in page
    assert ("secret_path" in page) is shown
