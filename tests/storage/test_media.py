"""/media/... on both storage backends: auth, Range, redirects to S3, no way into private keys."""

from __future__ import annotations

import secrets

import pytest
import requests

from webapp.storage import get_storage, output_key, work_key


@pytest.fixture(params=["local", "s3"])
def backend(request, app):
    if request.param == "s3":
        app.config.update(request.getfixturevalue("s3_server").config(f"media-{secrets.token_hex(4)}"))
    return request.param


def test_media_streams_or_redirects_with_range(app, client, make_token, backend):
    token = make_token("viewer")
    auth = {"Authorization": f"Bearer {token}"}
    data = bytes(range(256)) * 8
    get_storage().put_bytes(output_key("video_1_media", "video.mp4"), data)
    response = client.get("/media/video_1_media/video.mp4", headers={**auth, "Range": "bytes=100-199"})
    if backend == "local":
        assert response.status_code == 206 and response.data == data[100:200]
        assert response.headers["Accept-Ranges"] == "bytes"
    else:
        assert response.status_code == 302
        target = response.headers["Location"]
        assert target.startswith(app.config["S3_ENDPOINT_URL"])
        fetched = requests.get(target, headers={"Range": "bytes=100-199"}, timeout=10)
        assert fetched.status_code == 206 and fetched.content == data[100:200]
    assert client.get("/media/video_1_media/video.mp4").status_code == 401
    assert client.get("/media/video_1_media/missing.mp4", headers=auth).status_code == 404


def test_media_refuses_private_keys_and_path_tricks(app, client, make_token, backend):
    auth = {"Authorization": f"Bearer {make_token('admin')}"}
    get_storage().put_bytes(work_key("video_2_media", "chunk000-abc.mp4"), b"private")
    get_storage().put_bytes(output_key("video_2_media", "video.mp4"), b"public")
    for path in ("/media/work/video_2_media/chunk000-abc.mp4",
                 "/media/video_2_media/../work/video_2_media/chunk000-abc.mp4",
                 "/media/x/../work/video_2_media/chunk000-abc.mp4",
                 "/media/video_2_media/%2e%2e/work/video_2_media/chunk000-abc.mp4",
                 "/media/video_2_media/.hidden", "/media/video_2_media"):
        response = client.get(path, headers=auth)
        assert response.status_code == 404, path
        assert b"private" not in response.data
    assert client.get("/media/video_2_media/video.mp4", headers=auth).status_code in (200, 302)
