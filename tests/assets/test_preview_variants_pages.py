"""The dashboard's Preview button and the task page's variants, without a browser."""

from __future__ import annotations

from tests.dashboard.conftest import HTMX
from webapp.timeutil import utcnow

FORM = {"theme_id": "Launch", "keywords_id": "fast, simple", "target_duration_id": "30",
        "user_description_id": "", "priority": "normal", "quality": "high", "resolution": "1920x1080",
        "custom_resolution": "", "parent_id": "", "extensions": ""}


def test_preview_button_starts_a_preview_and_its_box_polls_until_done(app, client, sign_in):
    from webapp.extensions import db
    from webapp.services import tasks as task_service

    sign_in("operator", "olga")
    page = client.get("/").get_data(as_text=True)
    assert 'hx-post="/preview"' in page and 'id="preview-box"' in page
    response = client.post("/preview", data=FORM, headers=HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Rendering a preview" in body
    task_id = body.split('data-preview-task="', 1)[1].split('"', 1)[0]
    task = task_service.get_task(task_id)
    assert task.resolution == "640x360" and task.request["config"]["preview"] is True
    assert f'hx-get="/preview/{task_id}"' in body
    task.status, task.result = "completed", {"video": "video.mp4", "video_url": f"/media/{task_id}/video.mp4"}
    task.finished_at = utcnow()
    db.session.commit()
    done = client.get(f"/preview/{task_id}", headers=HTMX)
    assert done.status_code == 286
    assert f'<video id="preview-player" controls playsinline preload="auto" src="/media/{task_id}/video.mp4">' in \
        done.get_data(as_text=True)
    bad = client.post("/preview", data={**FORM, "theme_id": ""}, headers=HTMX)
    assert bad.status_code == 400 and "theme_id" in bad.get_data(as_text=True)
    # Only previews are served by the preview box.
    normal, _ = task_service.submit({"theme_id": "x", "keywords_id": ["a"], "target_duration_id": 5,
                                     "user_description_id": "", "priority": "normal",
                                     "config": {"quality": "low", "resolution": "256x144"}})
    assert client.get(f"/preview/{normal.id}").status_code == 404


def test_variants_side_by_side_and_keep_one(app, client, sign_in, make_token):
    from webapp.extensions import db
    from webapp.services import tasks as task_service

    brief = {"theme_id": "Launch", "keywords_id": ["a"], "target_duration_id": 5, "priority": "normal",
             "user_description_id": "",
             "config": {"quality": "low", "resolution": "256x144", "variants": 3}}
    ids = client.post("/tasks/video/async", json=brief,
                      headers={"Authorization": f"Bearer {make_token('operator')}"}).get_json()["variants"]
    first = task_service.get_task(ids[0])
    first.status, first.result = "completed", {"video": "video.mp4", "video_url": f"/media/{ids[0]}/video.mp4"}
    db.session.commit()
    sign_in("operator", "olga")
    page = client.get(f"/videos/{ids[1]}").get_data(as_text=True)
    for task_id in ids:
        assert f'data-variant="{task_id}"' in page
    assert f'src="/media/{ids[0]}/video.mp4"' in page
    assert page.count("Keep this one") == 3
    kept = client.post(f"/videos/{ids[0]}/keep", follow_redirects=True).get_data(as_text=True)
    assert f"Kept {ids[0]}." in kept and "data-kept" in kept and "Keep this one" not in kept
    db.session.expire_all()
    assert [task_service.get_task(i).status for i in ids] == ["completed", "cancelled", "cancelled"]
    assert client.post("/videos/video_1_nothere/keep").status_code == 404
    single = task_service.submit({**brief, "config": {"quality": "low", "resolution": "256x144"}})[0]
    assert client.post(f"/videos/{single.id}/keep").status_code == 400
    assert "variants-title" not in client.get(f"/videos/{single.id}").get_data(as_text=True)
