"""The media library through the JSON API: every kind taken in and probed, every refusal, ownership,
paging and filters, files served with their owner's rights, delete refused while a task uses it."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.assets.media import make_audio, make_clip, make_font, make_image
from tests.conftest import small_brief
from webapp.storage import get_storage


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_clip(folder / "clip.mp4", size="320x180")
    make_clip(folder / "clip.mov", seconds=1.0)
    make_clip(folder / "clip.webm", seconds=1.0)
    for ext in ("mp3", "wav", "m4a", "ogg"):
        make_audio(folder / f"tone.{ext}")
    make_image(folder / "photo.jpg", size=(400, 300), orientation=6)
    make_image(folder / "photo.png")
    make_image(folder / "photo.webp")
    make_image(folder / "logo.png", size=(200, 100), alpha=True)
    make_font(folder / "box.ttf")
    make_font(folder / "box.otf", cff=True)
    make_clip(folder / "long.mp4", seconds=4.0, audio=False)
    return folder


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token, path: Path, name: str | None = None, **fields):
    with open(path, "rb") as handle:
        data = {"file": (handle, name or path.name), **{k: str(v) for k, v in fields.items()}}
        return client.post("/assets", data=data, headers=bearer(token), content_type="multipart/form-data")


@pytest.fixture(params=["local", "s3"])
def backend(request, app):
    if request.param == "s3":
        app.config.update(request.getfixturevalue("s3_server").config(f"assets-{secrets.token_hex(4)}"))
    return request.param


EXPECTED = {
    "clip.mp4": ("clip", "h264", 320, 180, 2.0),
    "clip.mov": ("clip", "h264", 320, 180, 1.0),
    "clip.webm": ("clip", "vp9", 320, 180, 1.0),
    "tone.mp3": ("audio", "mp3", None, None, 2.0),
    "tone.wav": ("audio", "pcm_s16le", None, None, 2.0),
    "tone.m4a": ("audio", "aac", None, None, 2.0),
    "tone.ogg": ("audio", "vorbis", None, None, 2.0),
    "photo.png": ("image", "png", 400, 300, None),
    "photo.webp": ("image", "webp", 400, 300, None),
    "box.ttf": ("font", "truetype", None, None, None),
    "box.otf": ("font", "cff", None, None, None),
}


def test_every_kind_is_taken_in_probed_thumbnailed_and_served(app, client, make_token, media, backend):
    token = make_token("operator")
    for name, (kind, codec, width, height, duration) in EXPECTED.items():
        response = upload(client, token, media / name, tags="Brand, summer,brand", shared="false")
        assert response.status_code == 201, (name, response.get_json())
        body = response.get_json()
        assert (body["kind"], body["codec"], body["width"], body["height"]) == (kind, codec, width, height), name
        if duration is None:
            assert body["duration"] is None
        else:
            assert abs(body["duration"] - duration) < 0.15, (name, body["duration"])
        assert body["tags"] == ["brand", "summer"] and body["shared"] is False
        assert body["size"] == (media / name).stat().st_size
        assert body["url"] == f"/assets/{body['id']}/file"
        assert response.headers["Location"] == f"/assets/{body['id']}"
        # The stored bytes are the upload's, and the thumbnail is a real picture.
        stored = client.get(body["url"], headers=bearer(token))
        thumb = client.get(body["thumbnail_url"], headers=bearer(token))
        if backend == "s3":
            assert stored.status_code == 302 and thumb.status_code == 302
            stored_bytes = requests.get(stored.headers["Location"], timeout=10).content
            thumb_bytes = requests.get(thumb.headers["Location"], timeout=10).content
        else:
            assert stored.status_code == 200 and thumb.status_code == 200
            stored_bytes, thumb_bytes = stored.data, thumb.data
        assert stored_bytes == (media / name).read_bytes(), name
        picture = Image.open(io.BytesIO(thumb_bytes))
        assert picture.format == "JPEG" and max(picture.size) <= 320, name
    assert {k for k in get_storage().list("assets/")} and not any(
        k.startswith("assets/") for k in get_storage().list("") if "/" not in k)


def test_jpeg_exif_orientation_is_applied(client, make_token, media):
    token = make_token("operator")
    body = upload(client, token, media / "photo.jpg").get_json()
    # Orientation 6 (rotate 90 degrees): the 400x300 picture stands upright as 300x400.
    assert (body["width"], body["height"]) == (300, 400)
    assert body["probe"]["exif_orientation"] == 6
    stored = Image.open(io.BytesIO(client.get(body["url"], headers=bearer(token)).data))
    assert stored.size == (300, 400)
    assert stored.getexif().get(0x0112, 1) in (1, None)
    # The red corner block was top-left; after the turn it is top-right.
    assert stored.convert("RGB").getpixel((290, 10))[0] > 200
    assert stored.convert("RGB").getpixel((10, 10))[2] > 150


def test_a_logo_is_a_png_with_transparency(client, make_token, media):
    token = make_token("operator")
    body = upload(client, token, media / "logo.png", kind="logo").get_json()
    assert body["kind"] == "logo" and body["probe"]["alpha"] is True
    refused = upload(client, token, media / "photo.png", kind="logo")
    assert refused.status_code == 400
    assert "transparency" in refused.get_json()["message"]
    wrong = upload(client, token, media / "photo.webp", kind="logo")
    assert wrong.status_code == 400 and "kind" in wrong.get_json()["fields"]


def test_refusals_are_clear(app, client, make_token, media, tmp_path):
    token = make_token("operator")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video at all" * 100)
    (tmp_path / "empty.png").write_bytes(b"")
    cases = [
        (media / "photo.png", "photo.mp4", "not a valid MP4"),
        (media / "clip.mp4", "clip.jpg", "not a valid JPEG"),
        (media / "tone.wav", "tone.mp3", "not a valid MP3"),
        (media / "clip.mp4", "clip.mp3", "not a valid MP3"),
        (media / "photo.png", "font.ttf", "not a valid TrueType"),
        (media / "box.otf", "box.ttf", "not a valid TrueType"),
        (media / "clip.webm", "clip.mov", "not a valid MOV"),
        (tmp_path / "junk.mp4", "junk.mp4", "not a valid MP4"),
        (tmp_path / "empty.png", "empty.png", "empty"),
        (media / "photo.png", "photo.gif", "Unsupported file type .gif"),
        (media / "photo.png", "noextension", "Unsupported file type"),
    ]
    for path, name, text in cases:
        response = upload(client, token, path, name=name)
        body = response.get_json()
        assert response.status_code == 400, (name, body)
        assert body["error"] == "invalid_asset" and text in body["message"], (name, body)
        assert "file" in body["fields"]
    # Audio in a clip's clothing: an m4a renamed .mp4 has no video stream.
    response = upload(client, token, media / "tone.m4a", name="tone.mp4")
    assert response.status_code == 400 and "no video stream" in response.get_json()["message"]
    # No file at all.
    response = client.post("/assets", data={"tags": "x"}, headers=bearer(token), content_type="multipart/form-data")
    assert response.status_code == 400 and response.get_json()["fields"] == {"file": "A file is required."}
    bad_tags = upload(client, token, media / "photo.png", tags="x" * 40)
    assert bad_tags.status_code == 400 and "tags" in bad_tags.get_json()["fields"]
    # Nothing of the refused files was kept.
    assert client.get("/assets", headers=bearer(token)).get_json()["total"] == 0
    assert not list(get_storage().list("assets/"))


def test_limits_are_configurable(app, client, make_token, media):
    token = make_token("operator")
    app.config["ASSET_MAX_SECONDS"] = 3
    response = upload(client, token, media / "long.mp4")
    assert response.status_code == 400
    assert "lasts 4.0 s; the limit is 3 s" in response.get_json()["message"]
    app.config["ASSET_MAX_PIXELS"] = 100_000
    response = upload(client, token, media / "photo.png")
    assert response.status_code == 400 and "megapixels" in response.get_json()["message"]
    app.config["ASSET_MAX_BYTES"] = 20_000
    response = upload(client, token, media / "clip.mp4")
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "payload_too_large"
    assert body["message"] == "The file is larger than the limit of 20 KB."


def test_upload_larger_than_the_limit_is_refused_before_it_is_read(app, live_server, make_token):
    """A declared Content-Length past the limit is refused by the server, JSON and 413."""
    token = make_token("operator")
    app.config["ASSET_MAX_BYTES"] = 1024 * 1024
    blob = b"\0" * (3 * 1024 * 1024)
    response = requests.post(f"{live_server}/assets", headers=bearer(token),
                             files={"file": ("big.mp4", blob)}, timeout=30)
    assert response.status_code == 413
    assert "larger than the limit of 1 MB" in response.json()["message"]


def test_font_glyph_check(client, make_token, media):
    token = make_token("operator")
    body = upload(client, token, media / "box.ttf", text="Hello 2026").get_json()
    assert body["kind"] == "font" and body["probe"]["characters"] == 63 and "cmap" not in body["probe"]
    refused = upload(client, token, media / "box.ttf", text="Hello 世界")
    assert refused.status_code == 400
    assert refused.get_json()["fields"] == {"text": "The font has no glyphs for: 世 界."}


def test_ownership_listing_filters_and_paging(app, client, make_token, make_user, media):
    from webapp.services import auth

    olga = make_user("olga", "operator")
    _t, olga_token = auth.create_token("olga-script", "operator", olga)
    pete = make_token("operator", "pete")
    admin = make_token("admin")
    viewer = make_token("viewer")
    mine = upload(client, olga_token, media / "photo.png", tags="beach").get_json()
    shared = upload(client, pete, media / "tone.wav", tags="music,beach", shared="true").get_json()
    private = upload(client, pete, media / "clip.mp4", tags="secret").get_json()
    assert mine["owner"] == "user:olga" and private["owner"] == "token:pete"

    def ids(token, **args):
        response = client.get("/assets", query_string=args, headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        return [a["id"] for a in response.get_json()["assets"]]

    assert ids(olga_token) == [shared["id"], mine["id"]]
    assert ids(pete) == [private["id"], shared["id"]]
    assert set(ids(admin)) == {mine["id"], shared["id"], private["id"]}
    assert ids(viewer) == [shared["id"]]
    assert ids(admin, kind="audio") == [shared["id"]]
    assert ids(admin, tag="BEACH") == [shared["id"], mine["id"]]
    assert ids(admin, tag="bea") == []
    assert ids(admin, q="photo") == [mine["id"]]
    assert ids(admin, q="secr") == [private["id"]]
    page = client.get("/assets", query_string={"limit": 2}, headers=bearer(admin)).get_json()
    assert page["count"] == 2 and page["total"] == 3 and page["next_offset"] == 2
    rest = client.get("/assets", query_string={"limit": 2, "offset": 2}, headers=bearer(admin)).get_json()
    assert rest["count"] == 1 and rest["next_offset"] is None
    bad = client.get("/assets", query_string={"limit": 0, "kind": "movie"}, headers=bearer(admin))
    assert bad.status_code == 400 and set(bad.get_json()["fields"]) == {"limit", "kind"}

    # Someone else's private asset does not exist for olga: 404 on every route, like an unknown id.
    for path in (f"/assets/{private['id']}", f"/assets/{private['id']}/file",
                 f"/assets/{private['id']}/thumbnail", "/assets/asset_0000000000000000"):
        assert client.get(path, headers=bearer(olga_token)).status_code == 404, path
    assert client.delete(f"/assets/{private['id']}", headers=bearer(olga_token)).status_code == 404
    assert client.get(f"/assets/{private['id']}", headers=bearer(admin)).status_code == 200
    # A shared asset is visible, but only its owner (or an admin) deletes it.
    assert client.get(f"/assets/{shared['id']}/file", headers=bearer(olga_token)).status_code == 200
    assert client.delete(f"/assets/{shared['id']}", headers=bearer(olga_token)).status_code == 403
    # Viewers read but do not upload or delete; no token at all is a 401.
    assert upload(client, viewer, media / "photo.png").status_code == 403
    assert client.delete(f"/assets/{shared['id']}", headers=bearer(viewer)).status_code == 403
    assert client.get("/assets").status_code == 401
    assert client.get(f"/assets/{shared['id']}/file").status_code == 401


def test_delete_is_refused_while_a_task_uses_the_asset(app, client, make_token, make_task, media):
    token = make_token("operator")
    asset = upload(client, token, media / "photo.png").get_json()
    brief = small_brief()
    brief["config"] = {**brief["config"], "assets": [asset["id"]]}
    task = make_task(status="processing", request=brief)
    response = client.delete(f"/assets/{asset['id']}", headers=bearer(token))
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "asset_in_use" and task.id in body["message"]
    assert client.get(f"/assets/{asset['id']}", headers=bearer(token)).get_json()["used_by"] == [task.id]
    from webapp.extensions import db

    task.status = "completed"
    db.session.commit()
    response = client.delete(f"/assets/{asset['id']}", headers=bearer(token))
    assert response.status_code == 200 and response.get_json() == {"id": asset["id"], "deleted": True}
    assert client.get(f"/assets/{asset['id']}", headers=bearer(token)).status_code == 404
    assert not list(get_storage().list(f"assets/{asset['id']}/"))


def test_import_command_takes_in_a_server_folder(app, media, tmp_path):
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    for name in ("photo.png", "tone.ogg"):
        (folder / name).write_bytes((media / name).read_bytes())
    (folder / "sub" / "clip.mp4").write_bytes((media / "clip.mp4").read_bytes())
    (folder / "notes.txt").write_text("not media")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["assets", "import", str(folder), "--owner", "olga", "--tags", "import",
                                 "--shared"])
    assert result.exit_code == 0, result.output
    assert "Imported 3 file(s), refused 1." in result.output
    assert "notes.txt" in result.output and "Unsupported file type .txt" in result.output
    from webapp.services.assets import Actor, list_assets

    rows, total, _next = list_assets(Actor("user:someone"), tag="import")
    assert total == 3 and {r.kind for r in rows} == {"image", "audio", "clip"}
    assert all(r.owner == "user:olga" and r.shared for r in rows)


def test_import_command_runs_as_a_real_process(app, media, tmp_path):
    """`flask --app wsgi assets import DIR` from a shell, against the test database."""
    import os
    import sys

    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "box.ttf").write_bytes((media / "box.ttf").read_bytes())
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "MEDIA_ROOT": app.config["MEDIA_ROOT"], "AURA_INSTANCE": app.config["INSTANCE_DIR"]}
    flask = str(Path(sys.executable).parent / "flask")
    done = subprocess.run([flask, "--app", "wsgi", "assets", "import", str(folder)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    asset_id = done.stdout.split("\t", 1)[0]
    from webapp.extensions import db
    from webapp.models import Asset

    db.session.expire_all()
    asset = db.session.get(Asset, asset_id)
    assert asset is not None and asset.kind == "font" and asset.owner == "user:admin"
    assert json.dumps(asset.to_dict())  # serialisable


def test_asset_keys_are_never_served_by_media_nor_taken_for_tasks(app, client, make_token, media):
    from webapp.storage import public_key, task_ids_in

    token = make_token("admin")
    asset = upload(client, token, media / "photo.png").get_json()
    key = f"assets/{asset['id']}/original.png"
    assert get_storage().exists(key) and public_key(key) is None
    assert client.get(f"/media/{key}", headers=bearer(token)).status_code == 404
    # The orphan sweep looks for task ids in storage: an asset folder is not one.
    assert asset["id"] not in task_ids_in(get_storage()) and "assets" not in task_ids_in(get_storage())
