"""The dashboard's library page without a browser: the grid, filters, delete with its refusal, and
the session-authenticated upload endpoint's CSRF check."""

from __future__ import annotations

import re

from tests.assets.media import make_image
from tests.conftest import small_brief
from tests.dashboard.conftest import csrf_from


def test_library_grid_shows_own_and_shared_assets_with_facts(app, client, sign_in, make_token, tmp_path):
    from webapp.services.assets import Actor, ingest_file

    mine = ingest_file(make_image(tmp_path / "beach.png"), "beach.png", Actor("user:olga"), tags="sea")
    shared = ingest_file(make_image(tmp_path / "logo.png", alpha=True), "logo.png", Actor("user:pete"),
                         kind="logo", shared=True)
    hidden = ingest_file(make_image(tmp_path / "secret.png"), "secret.png", Actor("user:pete"))
    sign_in("operator", "olga")
    body = client.get("/library").get_data(as_text=True)
    assert f'data-asset-id="{mine.id}"' in body and f'data-asset-id="{shared.id}"' in body
    assert hidden.id not in body
    assert "400 × 300" in body and f'src="/assets/{mine.id}/thumbnail"' in body
    assert 'href="/library?tag=sea"' in body
    # Olga may delete her own file, not Pete's shared one.
    assert f'action="/library/{mine.id}/delete"' in body and f'action="/library/{shared.id}/delete"' not in body
    assert '<script src="/static/library.js" defer></script>' in body and "<script>" not in body
    filtered = client.get("/library?kind=logo", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert filtered.lstrip().startswith('<section id="asset-grid"')
    assert shared.id in filtered and mine.id not in filtered
    assert client.get("/library?kind=nope").status_code == 400


def test_library_grid_shows_an_hdr_clip_and_its_proxy(app, client, sign_in, tmp_path):
    from tests.assets.media import make_hdr_clip
    from webapp.extensions import db
    from webapp.services.assets import Actor, ingest_file

    clip = ingest_file(make_hdr_clip(tmp_path / "hlg.mp4", "arib-std-b67", seconds=1.0, size="320x180"),
                       "hlg.mp4", Actor("user:olga"))
    sign_in("operator", "olga")
    body = client.get("/library").get_data(as_text=True)
    assert "320 × 180" in body and "hevc · HLG" in body
    assert "Preparing a light copy for renders…" in body
    clip.proxy = "ready"
    db.session.commit()
    client.set_cookie("lang", "zh")
    assert "轻量副本已就绪" in client.get("/library").get_data(as_text=True)


def test_library_in_chinese(app, client, sign_in):
    sign_in("operator", "olga")
    client.set_cookie("lang", "zh")
    body = client.get("/library").get_data(as_text=True)
    assert "素材库" in body and "拖放文件到这里" in body


def test_delete_from_the_page_and_its_refusal_while_in_use(app, client, sign_in, make_task, tmp_path):
    from webapp.services.assets import Actor, ingest_file

    asset = ingest_file(make_image(tmp_path / "a.png"), "a.png", Actor("user:olga"))
    brief = small_brief()
    brief["config"] = {**brief["config"], "logo": {"asset": asset.id, "corner": "top-right"}}
    make_task(status="queued", request=brief)
    sign_in("operator", "olga")
    page = client.get("/library").get_data(as_text=True)
    token = csrf_from(page)
    refused = client.post(f"/library/{asset.id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "used by tasks that are waiting or running" in refused.get_data(as_text=True)
    assert client.post("/library/asset_nothere/delete", data={"csrf_token": token}).status_code == 404


def test_session_upload_needs_the_csrf_header(app, live_server, make_user, tmp_path):
    import requests

    make_user("olga", "operator")
    session = requests.Session()
    login_page = session.get(f"{live_server}/login").text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login_page).group(1)
    session.post(f"{live_server}/login", data={"username": "olga", "password": "password123", "csrf_token": token})
    picture = make_image(tmp_path / "p.png").read_bytes()
    refused = session.post(f"{live_server}/assets", files={"file": ("p.png", picture)}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"] == "bad_request"
    csrf = re.search(r'data-csrf="([^"]+)"', session.get(f"{live_server}/library").text).group(1)
    done = session.post(f"{live_server}/assets", files={"file": ("p.png", picture)},
                        headers={"X-CSRFToken": csrf}, timeout=30)
    assert done.status_code == 201 and done.json()["owner"] == "user:olga"
