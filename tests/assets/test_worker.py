"""Briefs with library material through real Celery workers: the stages fetch the assets from
storage; a preview and variants finish too."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.assets.media import make_audio, make_clip, make_image
from webapp.mediaprobe import probe
from webapp.storage import get_storage, output_key

pytestmark = pytest.mark.sqlite_only


def test_library_brief_preview_and_variants_render_on_workers(app, client, make_token, stack, tmp_path):
    token = make_token("operator", "olga")
    auth = {"Authorization": f"Bearer {token}"}

    def upload(path, **fields):
        with open(path, "rb") as handle:
            response = client.post("/assets", data={"file": (handle, path.name), **fields}, headers=auth,
                                   content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    green = tmp_path / "green.png"
    Image.new("RGB", (400, 300), (40, 200, 60)).save(green)
    image = upload(green)
    clip = upload(make_clip(tmp_path / "wide.mp4", seconds=1.5, size="320x180", spin=True))
    music = upload(make_audio(tmp_path / "bed.mp3", seconds=2.0))
    logo = upload(make_image(tmp_path / "mark.png", size=(100, 50), alpha=True), kind="logo")
    stack.start_worker(concurrency=2)

    brief = {"theme_id": "Launch", "keywords_id": ["fast"], "target_duration_id": 6, "priority": "high",
             "config": {"quality": "low", "resolution": "180x320", "assets": [image, clip], "variants": 2,
                        "music": {"asset": music, "volume": 0.5}, "logo": {"asset": logo},
                        "script": [{"narration": "Fast.", "caption": "Fast"}, {"narration": "Done.", "caption": "Done"}]}}
    submitted = client.post("/tasks/video/async", json=brief, headers=auth).get_json()
    assert len(submitted["variants"]) == 2
    preview = client.post("/tasks/video/preview", json={**brief, "target_duration_id": 20}, headers=auth).get_json()
    # While they wait or run, their assets cannot be deleted.
    assert client.delete(f"/assets/{logo}", headers=auth).status_code == 409
    for task_id in [*submitted["variants"], preview["task_id"]]:
        task = stack.wait_status(task_id, ("completed", "failed"), timeout=240)
        assert task.status == "completed", (task_id, task.error)
    storage = get_storage()
    for task_id in submitted["variants"]:
        video = tmp_path / f"{task_id}.mp4"
        storage.download(output_key(task_id, "video.mp4"), video)
        info = probe(video)
        stream = next(s for s in info["streams"] if s["type"] == "video")
        assert (stream["width"], stream["height"]) == (180, 320) and abs(info["duration"] - 6.0) < 0.1
    video = tmp_path / "preview.mp4"
    storage.download(output_key(preview["task_id"], "video.mp4"), video)
    info = probe(video)
    stream = next(s for s in info["streams"] if s["type"] == "video")
    assert (stream["width"], stream["height"]) == (360, 640) and abs(info["duration"] - 10.0) < 0.1
    # Finished: the logo may go now.
    assert client.delete(f"/assets/{logo}", headers=auth).status_code == 200
