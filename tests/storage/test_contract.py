"""One storage contract, run against the local backend and S3 (moto's standalone server)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from webapp.storage import (
    MULTIPART_BYTES,
    BadKey,
    LocalStorage,
    NotFound,
    S3Storage,
    StorageError,
    open_storage,
    output_key,
    public_key,
    remove_task_files,
    scratch_dir,
    scratch_task_id,
    sweep_scratch,
    task_ids_in,
    with_urls,
    work_key,
)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage((tmp_path / "objects").as_uri())
    server = request.getfixturevalue("s3_server")
    bucket = f"contract-{secrets.token_hex(4)}"
    settings = server.config(bucket)
    return open_storage(settings["STORAGE_URL"], settings)


def test_backend_is_chosen_by_url(storage):
    assert isinstance(storage, (LocalStorage, S3Storage))
    assert storage.url.startswith(("file://", "s3://"))


def test_put_read_size_exists_delete(storage, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"0123456789" * 10)
    storage.put_file("t1/video.mp4", source)
    storage.put_bytes("work/t1/board.json", b'{"a": 1}')
    assert storage.exists("t1/video.mp4") and storage.size("t1/video.mp4") == 100
    assert storage.read_bytes("work/t1/board.json") == b'{"a": 1}'
    assert storage.size("t1/missing.mp4") is None and not storage.exists("t1/missing.mp4")
    storage.delete("t1/video.mp4")
    assert not storage.exists("t1/video.mp4")
    storage.delete("t1/video.mp4")  # deleting twice is fine


def test_byte_ranges_and_streaming(storage):
    data = bytes(range(256)) * 4
    storage.put_bytes("t2/data.bin", data)
    with storage.open("t2/data.bin", 10, 19) as part:
        assert part.read() == data[10:20]
    with storage.open("t2/data.bin", 1000) as tail:
        assert tail.read() == data[1000:]
    assert b"".join(storage.stream("t2/data.bin")) == data
    assert b"".join(storage.stream("t2/data.bin", 5, 5)) == data[5:6]
    with pytest.raises(StorageError):
        storage.open("t2/nothing.bin")
    with pytest.raises(NotFound):
        storage.open("t2/nothing.bin")


def test_list_by_prefix_and_delete_prefix(storage):
    for key in ("work/a/visuals-1/bg.png", "work/a/visuals-1/manifest.json", "work/ab/x", "a/video.mp4"):
        storage.put_bytes(key, b"x")
    assert sorted(storage.list("work/a/")) == ["work/a/visuals-1/bg.png", "work/a/visuals-1/manifest.json"]
    assert sorted(storage.list("work/")) == ["work/a/visuals-1/bg.png", "work/a/visuals-1/manifest.json",
                                             "work/ab/x"]
    assert task_ids_in(storage) == {"a": {"work", "output"}, "ab": {"work"}}
    assert remove_task_files(storage, "a", keep_outputs=True) == 2
    assert sorted(storage.list("")) == ["a/video.mp4", "work/ab/x"]
    assert remove_task_files(storage, "a", keep_outputs=False) == 1
    assert sorted(storage.list("")) == ["work/ab/x"]


def test_trees_round_trip_with_the_closing_file_last(storage, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.png").write_bytes(b"1")
    (src / "sub" / "two.png").write_bytes(b"2")
    (src / "manifest.json").write_text("{}")
    keys = storage.put_tree("work/t3/visuals-k", src)
    assert len(keys) == 3
    dest = tmp_path / "dest"
    assert storage.get_tree("work/t3/visuals-k", dest, last="manifest.json") == 3
    assert (dest / "sub" / "two.png").read_bytes() == b"2" and (dest / "manifest.json").is_file()


def test_a_tree_of_many_files_goes_up_whole_before_its_closing_file(storage, tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for n in range(24):
        (src / f"scene{n:02d}.png").write_bytes(bytes([n]) * (n + 1))
    (src / "manifest.json").write_text("{}")
    keys = storage.put_tree("work/t4/visuals-k", src, last="manifest.json")
    assert keys[-1] == "work/t4/visuals-k/manifest.json" and len(keys) == 25
    assert sorted(storage.list("work/t4/")) == sorted(keys)
    dest = tmp_path / "back"
    assert storage.get_tree("work/t4/visuals-k", dest, last="manifest.json") == 25
    assert all((dest / f"scene{n:02d}.png").read_bytes() == bytes([n]) * (n + 1) for n in range(24))


def test_chosen_files_come_down_and_a_missing_one_is_not_found(storage, tmp_path):
    for name in ("a.png", "b.png", "c.png", "manifest.json"):
        storage.put_bytes(f"work/t6/visuals-k/{name}", name.encode())
    dest = tmp_path / "some"
    assert storage.get_files("work/t6/visuals-k", ["c.png", "a.png", "a.png"], dest) == 2
    assert sorted(p.name for p in dest.iterdir()) == ["a.png", "c.png"]
    assert (dest / "c.png").read_bytes() == b"c.png"
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(NotFound):
        storage.get_files("work/t6/visuals-k", ["a.png", "gone.png"], tmp_path / "other")
    with pytest.raises(NotFound):
        storage.download("work/t6/visuals-k/gone.png", tmp_path / "gone.png")
    assert not (tmp_path / "gone.png").exists()
    # A folder without its closing file is incomplete: nothing to fetch.
    storage.put_bytes("work/t6/audio-k/voice.wav", b"w")
    with pytest.raises(NotFound):
        storage.get_tree("work/t6/audio-k", tmp_path / "audio", last="audio.json")


def test_large_file_goes_up_in_parts_and_comes_down_streamed(storage, tmp_path):
    big = tmp_path / "big.bin"
    block = os.urandom(1024 * 1024)
    with open(big, "wb") as handle:
        for _ in range(MULTIPART_BYTES // len(block) + 3):  # past the multipart threshold
            handle.write(block)
    storage.put_file("t4/video.mp4", big)
    assert storage.size("t4/video.mp4") == big.stat().st_size
    back = tmp_path / "back.bin"
    storage.download("t4/video.mp4", back)
    assert back.read_bytes() == big.read_bytes()
    if isinstance(storage, S3Storage):
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage._name("t4/video.mp4"))
        assert "-" in head["ETag"]  # a multipart upload's ETag is "<md5>-<parts>"


def test_signed_url_is_a_short_lived_link_on_s3_only(storage):
    storage.put_bytes("t5/poster.jpg", b"jpeg")
    url = storage.signed_url("t5/poster.jpg", 60)
    if isinstance(storage, LocalStorage):
        assert url is None  # the app streams local files itself
        return
    import requests

    assert "Expires=" in url or "X-Amz-Expires=60" in url
    response = requests.get(url, headers={"Range": "bytes=1-2"}, timeout=10)
    assert response.status_code == 206 and response.content == b"pe"


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "a/.hidden", "", "a\\b"])
def test_keys_cannot_escape(storage, key):
    with pytest.raises(BadKey):
        storage.put_bytes(key, b"x")


def test_key_layout_and_urls():
    assert output_key("video_1_abc", "video.mp4") == "video_1_abc/video.mp4"
    assert work_key("video_1_abc", "chunk000.mp4") == "work/video_1_abc/chunk000.mp4"
    assert public_key("video_1_abc/video.mp4") == "video_1_abc/video.mp4"
    for bad in ("work/video_1_abc/chunk.mp4", "tmp/x/y", "x/../work/y", "video.mp4", ".env/x"):
        assert public_key(bad) is None
    shown = with_urls({"video": "video.mp4", "files": [{"kind": "srt", "name": "subtitles.srt"}]}, "t9")
    assert shown["video_url"] == "/media/t9/video.mp4" and shown["files"][0]["url"] == "/media/t9/subtitles.srt"


def test_scratch_is_emptied_whatever_the_outcome(tmp_path):
    config = {"SCRATCH_DIR": str(tmp_path)}
    with pytest.raises(RuntimeError):
        with scratch_dir(config, "video_1_abc", "chunk-3") as folder:
            (folder / "partial.mp4").write_bytes(b"x")
            assert scratch_task_id(folder.name) == "video_1_abc"
            raise RuntimeError("ffmpeg died")
    assert list(tmp_path.iterdir()) == []
    stale = tmp_path / "aura-video_2_dead-audio-0123abcd"
    live = tmp_path / "aura-video_3_live-audio-0123abcd"
    for folder in (stale, live):
        folder.mkdir()
    assert sweep_scratch(config, live={"video_3_live"}, min_age=0) == 1
    assert [p.name for p in Path(tmp_path).iterdir()] == [live.name]
