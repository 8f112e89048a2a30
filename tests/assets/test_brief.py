"""The brief's extensions under `config`: shapes, asset references (unknown, someone else's, wrong
kind, a font without the glyphs), stored with the task so submitting again reproduces them;
variants as child tasks; previews."""

from __future__ import annotations

import json

import pytest

from tests.assets.media import make_audio, make_clip, make_font, make_image
from tests.conftest import small_brief


@pytest.fixture
def library(app, tmp_path):
    """olga's image, clip, audio, logo and font, and pete's private image."""
    from webapp.services.assets import Actor, ingest_file

    olga = Actor("token:olga")
    made = {
        "image": ingest_file(make_image(tmp_path / "i.png"), "i.png", olga),
        "clip": ingest_file(make_clip(tmp_path / "c.mp4", seconds=1.0), "c.mp4", olga),
        "audio": ingest_file(make_audio(tmp_path / "a.wav"), "a.wav", olga),
        "logo": ingest_file(make_image(tmp_path / "l.png", alpha=True), "l.png", olga, kind="logo"),
        "font": ingest_file(make_font(tmp_path / "f.ttf"), "f.ttf", olga),
        "pete": ingest_file(make_image(tmp_path / "p.png"), "p.png", Actor("token:pete")),
    }
    return {k: v.id for k, v in made.items()}


def full_config(ids):
    return {
        "quality": "low", "resolution": "1920x1080",
        "assets": [ids["image"], ids["clip"]],
        "script": [{"narration": "Hello there", "caption": "Hello"}, {"narration": "Goodbye now"}],
        "fit": "exact", "voice": {"name": "en-us+f3", "speed": 160},
        "music": {"asset": ids["audio"], "volume": 0.3},
        "logo": {"asset": ids["logo"], "corner": "top-right"},
        "subtitles": {"burn": True, "size": 48, "color": "#ffffff", "outline": 2, "position": "bottom"},
        "brand": {"font": ids["font"], "colors": ["#0a84ff"]},
    }


def post(client, token, brief, path="/tasks/video/async"):
    return client.post(path, json=brief, headers={"Authorization": f"Bearer {token}"})


def test_a_full_brief_is_stored_and_submitting_it_again_reproduces_it(client, make_token, library):
    token = make_token("operator", "olga")
    brief = small_brief(config=full_config(library))
    response = post(client, token, brief)
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["task_id"]
    status = client.get(f"/tasks/status/{task_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    stored = status["request"]["config"]
    assert stored["assets"] == [library["image"], library["clip"]]
    assert stored["script"][1] == {"narration": "Goodbye now", "caption": "Goodbye now"}
    assert stored["subtitles"]["color"] == "#FFFFFF" and stored["brand"]["colors"] == ["#0A84FF"]
    assert stored["logo"] == {"asset": library["logo"], "corner": "top-right", "scale": 0.15}
    again = post(client, token, status["request"])
    assert again.status_code == 202
    second = client.get(f"/tasks/status/{again.get_json()['task_id']}",
                        headers={"Authorization": f"Bearer {token}"}).get_json()
    assert second["request"] == status["request"]


@pytest.mark.parametrize("config, field", [
    ({"assets": []}, "config.assets"),
    ({"assets": ["nope"]}, "config.assets[0]"),
    ({"script": [{"narration": 3}]}, "config.script[0].narration"),
    ({"script": [{"narration": "", "caption": ""}]}, "config.script[0]"),
    ({"script": [{"narration": "x", "speaker": "y"}]}, "config.script[0].speaker"),
    ({"fit": "loose"}, "config.fit"),
    ({"voice": {"name": "fr"}}, "config.voice.name"),
    ({"voice": {"speed": 1000}}, "config.voice.speed"),
    ({"music": {"volume": 2}}, "config.music.volume"),
    ({"logo": {"asset": "asset_0000000000000000", "corner": "middle"}}, "config.logo.corner"),
    ({"subtitles": {"burn": "yes"}}, "config.subtitles.burn"),
    ({"subtitles": {"color": "white"}}, "config.subtitles.color"),
    ({"subtitles": {"position": "left"}}, "config.subtitles.position"),
    ({"brand": {"colors": ["blue"]}}, "config.brand.colors"),
    ({"variants": 6}, "config.variants"),
    ({"variants": True}, "config.variants"),
    ({"mood": "happy"}, "config.mood"),
])
def test_bad_extension_shapes_name_the_field(client, make_token, config, field):
    response = post(client, make_token("operator"), small_brief(config={"quality": "low", "resolution": "256x144",
                                                                         **config}))
    assert response.status_code == 400
    assert field in response.get_json()["fields"], response.get_json()


def test_asset_references_are_checked_against_the_library(client, make_token, library):
    token = make_token("operator", "olga")
    cases = [
        ({"assets": [library["image"], "asset_ffffffffffffffff"]}, "config.assets[1]", "No asset with id"),
        ({"assets": [library["pete"]]}, "config.assets[0]", "No asset with id"),
        ({"assets": [library["audio"]]}, "config.assets[0]", "is a audio; this field takes: image, clip"),
        ({"music": {"asset": library["clip"]}}, "config.music.asset", "this field takes: audio"),
        ({"logo": {"asset": library["font"]}}, "config.logo.asset", "this field takes: logo, image"),
        ({"brand": {"font": library["image"]}}, "config.brand.font", "this field takes: font"),
        # The box font has Latin letters only; the sample brief's theme is Chinese.
        ({"brand": {"font": library["font"]}}, "config.brand.font", "The font has no glyphs for: 产 品"),
    ]
    for extra, field, text in cases:
        response = post(client, token, small_brief(config={"quality": "low", "resolution": "256x144", **extra}))
        assert response.status_code == 400, extra
        assert text in response.get_json()["fields"][field], response.get_json()
    # An admin may use anyone's asset; a shared one is everyone's.
    assert post(client, make_token("admin"), small_brief(
        config={"quality": "low", "resolution": "256x144", "assets": [library["pete"]]})).status_code == 202


def test_variants_are_child_tasks_with_their_own_seed_and_order(app, client, make_token, library):
    from webapp.extensions import db
    from webapp.models import RenderTask

    token = make_token("operator", "olga")
    config = {"quality": "low", "resolution": "256x144", "variants": 3,
              "assets": [library["image"], library["clip"]]}
    response = post(client, token, small_brief(config=config))
    body = response.get_json()
    assert response.status_code == 202 and len(body["variants"]) == 3 and body["variants"][0] == body["task_id"]
    tasks = [db.session.get(RenderTask, task_id) for task_id in body["variants"]]
    assert [t.parent_id for t in tasks] == [None, body["task_id"], body["task_id"]]
    assert all(t.status == "queued" for t in tasks)
    seeds = {t.request["config"].get("seed") for t in tasks[1:]}
    assert len(seeds) == 2 and None not in seeds
    orders = [tuple(t.request["config"]["assets"]) for t in tasks]
    assert len(set(orders)) == 2 and orders[0] != orders[1]
    assert all("variants" not in t.request["config"] for t in tasks[1:])
    # A replay with the same Idempotency-Key answers the same variants and makes no new tasks.
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "v-1"}
    first = client.post("/tasks/video/async", json=small_brief(config=config), headers=headers).get_json()
    replay = client.post("/tasks/video/async", json=small_brief(config=config), headers=headers)
    assert replay.status_code == 200 and replay.get_json()["variants"] == first["variants"]
    assert db.session.query(RenderTask).count() == 6


@pytest.mark.parametrize("resolution, expected", [("1920x1080", "640x360"), ("1080x1920", "360x640"),
                                                  ("1080x1080", "360x360")])
def test_preview_renders_the_first_seconds_small(app, client, make_token, resolution, expected):
    token = make_token("operator")
    brief = small_brief(target_duration_id=30, config={"quality": "high", "resolution": resolution, "variants": 2})
    response = post(client, token, brief, "/tasks/video/preview")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["resolution"] == expected and body["preview_seconds"] == 10
    stored = client.get(f"/tasks/status/{body['task_id']}", headers={"Authorization": f"Bearer {token}"}).get_json()
    config = stored["request"]["config"]
    assert config["preview"] is True and config["resolution"] == expected and "variants" not in config
    assert stored["request"]["target_duration_id"] == 30  # the same storyboard, cut by the worker
    assert post(client, token, {"theme_id": ""}, "/tasks/video/preview").status_code == 400


def test_dashboard_submit_again_keeps_the_extensions(app, client, sign_in, make_token, library):
    from tests.dashboard.conftest import csrf_from
    from webapp.extensions import db
    from webapp.models import Asset, RenderTask

    user = sign_in("operator", "olga")
    for asset_id in library.values():
        asset = db.session.get(Asset, asset_id)
        if asset.owner == "token:olga":
            asset.owner = f"user:{user.username}"
    db.session.commit()
    config = {"quality": "low", "resolution": "256x144", "assets": [library["image"]],
              "logo": {"asset": library["logo"], "corner": "bottom-left"}, "subtitles": {"burn": False}}
    first = post(client, make_token("admin"), small_brief(config=config)).get_json()["task_id"]
    page = client.get(f"/?from={first}").get_data(as_text=True)
    assert 'name="extensions"' in page and "data-extensions" in page
    import html
    import re

    extensions = html.unescape(re.search(r'name="extensions"[^>]*>([^<]*)</textarea>', page).group(1))
    assert json.loads(extensions)["logo"]["corner"] == "bottom-left"
    form = {"csrf_token": csrf_from(page), "theme_id": "Again", "keywords_id": "a, b", "target_duration_id": "8",
            "user_description_id": "", "priority": "normal", "quality": "low", "resolution": "custom",
            "custom_resolution": "256x144", "parent_id": first, "extensions": extensions}
    response = client.post("/", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    child = db.session.query(RenderTask).filter(RenderTask.parent_id == first).one()
    assert child.request["config"]["logo"] == {"asset": library["logo"], "corner": "bottom-left", "scale": 0.15}
    assert child.request["config"]["subtitles"] == {"burn": False}
    # Pete's private asset in the hidden field is refused like in the API.
    form["extensions"] = json.dumps({"assets": [library["pete"]]})
    refused = client.post("/", data=form)
    assert refused.status_code == 400 and "No asset with id" in refused.get_data(as_text=True)
