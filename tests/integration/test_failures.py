"""Failures through real workers: a brief that cannot be rendered fails at once, with details."""

from __future__ import annotations

import json

import pytest

from tests.conftest import small_brief

pytestmark = [pytest.mark.integration, pytest.mark.sqlite_only]


def test_unrenderable_character_fails_at_once_with_stage_and_traceback(app, client, stack, make_token):
    token = make_token("operator")
    stack.start_worker()
    brief = small_brief(keywords_id=["科技", "\U0010fffd"])
    response = client.post("/tasks/video/async", data=json.dumps(brief), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"})
    task_id = response.get_json()["task_id"]
    task = stack.wait_status(task_id, "failed", timeout=60)
    assert task.attempt == 1  # not retried: retrying cannot draw a missing glyph
    status = client.get(f"/tasks/status/{task_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert status["error"].startswith("MissingGlyph")
    assert status["error_detail"]["stage"] == "visuals"
    assert "U+10FFFD" in status["error_detail"]["message"]
    assert "traceback" not in status["error_detail"]  # the traceback is for admins
    admin = make_token("admin", name="failures-admin")
    status = client.get(f"/tasks/status/{task_id}", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert "Traceback" in status["error_detail"]["traceback"]
    from pathlib import Path

    media = Path(app.config["MEDIA_ROOT"])
    assert not (media / task_id).exists() and not (media / "work" / task_id).exists()
