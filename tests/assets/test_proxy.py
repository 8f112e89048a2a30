"""Proxies of heavy clips: a real worker makes them after the upload, renders read them when they
cover the frame (and the original otherwise), the reconciler asks again for a lost one, and a
deleted asset takes its proxy with it."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from tests.assets.media import make_clip, make_hdr_clip
from tests.assets.test_render import assert_halves, brief_with, frame_at, never
from webapp.mediaprobe import probe, video_stream
from webapp.services.proxies import PROXY_NAME, needs_proxy, proxy_size
from webapp.storage import asset_key, get_storage
from worker.pipeline import build_storyboard, run_pipeline


@pytest.mark.parametrize(("clip", "expected"), [
    ((3840, 2160, 30, False), True),  # a phone's 4K
    ((2160, 3840, 30, False), True),  # ... held upright
    ((1920, 1080, 60, False), True),  # 60 frames per second
    ((640, 360, 25, True), True),  # HDR
    ((1920, 1080, 30, False), False),
    ((1080, 1920, 29.97, False), False),
    ((320, 180, 25, False), False),
])
def test_which_clips_get_a_proxy(clip, expected):
    assert needs_proxy(*clip) is expected


@pytest.mark.parametrize(("size", "expected"), [
    ((3840, 2160), (1920, 1080)),
    ((2160, 3840), (1080, 1920)),
    ((4000, 3000), (1440, 1080)),
    ((3840, 1600), (1920, 800)),
    ((640, 360), (640, 360)),  # never enlarged
])
def test_proxy_size_fits_1080p_in_the_clips_orientation(size, expected):
    assert proxy_size(*size) == expected


def test_a_proxy_of_a_sideways_stored_phone_clip_stands_upright(tmp_path):
    from PIL import Image

    from tests.assets.media import ffmpeg, make_phone_clip
    from worker.pipeline.material import make_proxy

    make_proxy(make_phone_clip(tmp_path / "phone.mp4"), tmp_path / "proxy.mp4", 360, 640, 25, False, 2.0)
    video = video_stream(probe(tmp_path / "proxy.mp4"))
    assert (video["width"], video["height"], video["rotation"]) == (360, 640, 0)
    ffmpeg("-i", str(tmp_path / "proxy.mp4"), "-frames:v", "1", str(tmp_path / "first.png"))
    frame = np.asarray(Image.open(tmp_path / "first.png").convert("RGB"), dtype=np.int16)
    top, bottom = frame[20].mean(axis=0), frame[-20].mean(axis=0)
    assert top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100, (top, bottom)


@pytest.mark.sqlite_only
def test_a_worker_makes_the_proxy_renders_read_it_and_a_lost_request_is_asked_again(
        app, client, make_token, stack, tmp_path):
    from webapp.extensions import db
    from webapp.models.assets import Asset
    from webapp.services.reconcile import reconcile
    from webapp.timeutil import utcnow

    auth = {"Authorization": f"Bearer {make_token('operator', 'olga')}"}

    def upload(path):
        with open(path, "rb") as handle:
            response = client.post("/assets", data={"file": (handle, path.name)}, headers=auth,
                                   content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def proxy_state(asset_id):
        return client.get(f"/assets/{asset_id}", headers=auth).get_json()["proxy"]

    plain = upload(make_clip(tmp_path / "plain.mp4", size="320x180"))
    assert plain["proxy"] is None
    hdr = upload(make_hdr_clip(tmp_path / "hlg.mp4", "arib-std-b67", size="640x360"))
    assert hdr["proxy"] == "wanted"
    storage = get_storage()
    key = asset_key(hdr["id"], PROXY_NAME)
    assert not storage.exists(key)

    stack.start_worker(concurrency=1)
    stack.wait_for(lambda: proxy_state(hdr["id"]) == "ready", 90, "the proxy to be ready", interval=0.3)
    storage.download(key, tmp_path / "proxy.mp4")
    info = probe(tmp_path / "proxy.mp4")
    video = video_stream(info)
    assert [s["type"] for s in info["streams"]] == ["video"]  # the clip's sound is never used
    assert (video["codec"], video["width"], video["height"], video["transfer"]) == ("h264", 640, 360, "bt709")
    assert abs(video["fps"] - 25) < 0.01

    def render(resolution: str):
        brief = brief_with({"resolution": resolution, "assets": [hdr["id"]], "subtitles": {"burn": False}},
                           target_duration_id=4)
        result = run_pipeline(brief, tmp_path / f"w{resolution}", tmp_path / f"o{resolution}", lambda *a: None, never)
        manifest = json.loads(next((tmp_path / f"w{resolution}").glob("visuals-*/manifest.json")).read_text())
        board = build_storyboard(brief)
        assert_halves(frame_at(tmp_path / f"o{resolution}" / result["video"], board["duration"] / 2,
                               tmp_path / f"{resolution}.png"), resolution)
        return [scene["clip"] for scene in manifest["scenes"]]

    # A board the proxy covers reads the proxy (already SDR); a larger one reads the original and
    # brings it to SDR itself. Both show the clip's colours.
    assert all(name.endswith("-proxy.mp4") for name in render("320x180"))
    assert all(name.endswith("-clip.mp4") for name in render("1280x720"))

    # A lost request (the message gone, the proxy never made): the reconciler asks again once the
    # request is older than its grace, and the worker makes it.
    storage.delete(key)
    asset = db.session.get(Asset, hdr["id"])
    asset.proxy, asset.proxy_at = "wanted", utcnow() - timedelta(hours=1)
    db.session.commit()
    assert reconcile()["proxies_republished"] == 1
    assert reconcile()["proxies_republished"] == 0  # asked again just now
    stack.wait_for(lambda: proxy_state(hdr["id"]) == "ready", 90, "the proxy to be made again", interval=0.3)
    assert storage.exists(key)

    # Deleting the asset removes its proxy too.
    assert client.delete(f"/assets/{hdr['id']}", headers=auth).status_code == 200
    assert not list(storage.list(f"assets/{hdr['id']}/"))


def test_a_proxy_that_keeps_failing_is_given_up(app, tmp_path):
    from webapp.extensions import db
    from webapp.models.assets import Asset
    from webapp.services import proxies
    from webapp.services.assets import Actor, ingest_file

    asset = ingest_file(make_hdr_clip(tmp_path / "hlg.mp4", "arib-std-b67", seconds=1.0, size="320x180"),
                        "hlg.mp4", Actor("token:olga"))
    assert asset.proxy == "wanted"
    assert proxies.failed(asset.id, "boom") == {"state": "wanted", "tries": 1}
    assert proxies.failed(asset.id, "boom") == {"state": "wanted", "tries": 2}
    assert proxies.failed(asset.id, "boom") == {"state": "failed", "tries": 3}
    db.session.expire_all()
    assert db.session.get(Asset, asset.id).proxy == "failed"
    assert proxies.wanted(asset.id) is None  # a late message does nothing
