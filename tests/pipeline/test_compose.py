import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worker.pipeline import Cancelled, build_storyboard, probe_media, render_chunk, render_visuals, run_pipeline
from worker.pipeline import compose as compose_module
from worker.pipeline import images as images_module
from worker.pipeline.probe import count_video_frames, top_level_atoms
from worker.pipeline.proc import ffmpeg_exe


def parse_cues(text: str) -> list[tuple[float, float]]:
    def seconds(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return [(seconds(line.split(" --> ")[0]), seconds(line.split(" --> ")[1]))
            for line in text.splitlines() if " --> " in line]


def never() -> bool:
    return False


E2E_BRIEF = {
    "theme_id": "公益倡导", "keywords_id": ["环保", "节水"], "target_duration_id": 12,
    "user_description_id": "十秒公益短片：每个人节约一滴水。", "priority": "normal",
    "config": {"quality": "low", "resolution": "256x144", "seed": 7},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A 12 s Chinese brief at 256x144 (two chunks), rendered once with run_pipeline."""
    root = tmp_path_factory.mktemp("e2e")
    cwd = root / "cwd"
    cwd.mkdir()
    calls = []
    brief = E2E_BRIEF
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = run_pipeline(brief, root / "work", root / "out", lambda *a: calls.append(a), never)
    finally:
        os.chdir(old)
    return {"result": result, "out": root / "out", "work": root / "work", "cwd": cwd, "calls": calls,
            "board": build_storyboard(brief)}


def test_video_meets_the_delivery_spec(rendered):
    board, out = rendered["board"], rendered["out"]
    video = out / rendered["result"]["video"]
    info = probe_media(video)
    assert abs(info["duration"] - 12.0) <= 1 / board["fps"]
    assert (info["width"], info["height"]) == (256, 144)
    assert (info["video_codec"], info["profile"], info["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (info["audio_codec"], info["sample_rate"]) == ("aac", 48000)
    assert count_video_frames(video) == board["total_frames"] == 288
    atoms = top_level_atoms(video)
    assert atoms.index("moov") < atoms.index("mdat")
    assert len(board["chunks"]) == 2


def test_result_lists_every_file(rendered):
    result, out = rendered["result"], rendered["out"]
    kinds = {f["kind"]: f for f in result["files"]}
    assert set(kinds) == {"video", "poster", "thumbnail", "srt", "vtt"}
    for entry in result["files"]:
        assert (out / entry["name"]).stat().st_size == entry["size"] > 0
    assert kinds["thumbnail"]["width"] == 320 or kinds["thumbnail"]["width"] <= 320
    assert (result["width"], result["height"], result["fps"]) == (256, 144, 24)
    assert not list(out.glob(".tmp-*"))


def decoded_frame(video: Path, index: int, size: tuple[int, int]) -> np.ndarray:
    """Frame `index` of `video` as RGB, decoded by ffmpeg on its own (no MoviePy)."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", f"select=eq(n\\,{index})",
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0], 3).astype(float)


def test_poster_is_the_video_frame_at_the_poster_time(rendered):
    board, out = rendered["board"], rendered["out"]
    at = compose_module.poster_time(board)
    with Image.open(out / "poster.jpg") as image:
        poster = np.asarray(image.convert("RGB"), dtype=float)
    with Image.open(out / "thumb.jpg") as thumb:
        assert thumb.size == (320, 180)
    size = (board["width"], board["height"])
    index = round(at * board["fps"])
    assert poster.shape == (size[1], size[0], 3)
    assert np.abs(poster - decoded_frame(out / "video.mp4", index, size)).mean() < 3.0
    # A frame from another scene is clearly different, so the check above can fail.
    assert np.abs(poster - decoded_frame(out / "video.mp4", board["total_frames"] - 30, size)).mean() > 10.0
    assert _children() == []  # MoviePy's reader process was closed


def test_subtitle_cues_are_inside_the_video(rendered):
    out, duration = rendered["out"], rendered["result"]["duration"]
    for name in ("subtitles.srt", "subtitles.vtt"):
        cues = parse_cues((out / name).read_text(encoding="utf-8"))
        assert len(cues) == len(rendered["board"]["scenes"])
        assert all(0 <= a < b <= duration for a, b in cues)
    assert "节约一滴水" in (out / "subtitles.srt").read_text(encoding="utf-8")


def test_progress_is_ordered_and_names_the_stages(rendered):
    calls = rendered["calls"]
    fractions = [c[0] for c in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [s for s in dict.fromkeys(c[1] for c in calls)] == ["storyboard", "visuals", "audio", "render", "assemble"]
    assert any("Rendering video" in c[2] and "frames" in c[2] for c in calls)


def test_nothing_lands_in_the_working_directory(rendered):
    assert list(rendered["cwd"].iterdir()) == []
    assert not list(rendered["work"].glob(".tmp-*"))


def test_rerun_returns_cached_artifacts_without_work(rendered, monkeypatch):
    board, work = rendered["board"], rendered["work"]
    monkeypatch.setattr(compose_module, "run_ffmpeg", lambda *a, **k: pytest.fail("ffmpeg ran again"))
    monkeypatch.setattr(images_module, "render_background", lambda *a: pytest.fail("visuals ran again"))
    chunk = render_chunk(board, 0, work, lambda *a: None, never)
    assert chunk.is_file() and render_visuals(board, work, lambda *a: None, never)["scenes"]
    again = run_pipeline(E2E_BRIEF, work,
                         rendered["out"], lambda *a: None, never)
    assert again == rendered["result"]  # and neither ffmpeg nor the visuals ran (patched to fail)


def _children() -> list[int]:
    """Live ffmpeg child processes of this test process (the suite has other children: Redis,
    browsers, workers)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"ffmpeg" in cmdline:
                    kids.append(int(entry.name))
    return kids


def test_cancel_during_render_stops_ffmpeg_and_removes_partial_files(tmp_path):
    brief = {**E2E_BRIEF, "target_duration_id": 10, "config": {"resolution": "1280x720", "quality": "high"}}
    board = build_storyboard(brief)
    render_visuals(board, tmp_path, lambda *a: None, never)
    flag = threading.Event()
    frames_seen = []

    def progress(fraction, message):
        frames_seen.append(fraction)
        if fraction > 0:
            flag.set()

    cancelled_at = []

    def cancelled() -> bool:
        if flag.is_set() and not cancelled_at:
            cancelled_at.append(time.monotonic())
        return flag.is_set()

    before = set(os.listdir(tmp_path))
    with pytest.raises(Cancelled):
        render_chunk(board, 0, tmp_path, progress, cancelled)
    assert time.monotonic() - cancelled_at[0] < 2.0
    assert _children() == []
    assert set(os.listdir(tmp_path)) == before
    assert not compose_module.chunk_path(board, 0, tmp_path).exists()


def test_chunks_of_any_frame_count_join_to_the_exact_duration(tmp_path):
    """30 fps chunks of 160 and 200 frames: with MP4's default timescale their durations round
    (5.36 s, 6.68 s) and the joined video drifted past one frame; every chunk must be exact."""
    brief = {**E2E_BRIEF, "target_duration_id": 20, "config": {"resolution": "256x144", "quality": "medium"}}
    board = build_storyboard(brief)
    assert board["fps"] == 30
    render_visuals(board, tmp_path, lambda *a: None, never)
    for chunk in board["chunks"]:
        path = render_chunk(board, chunk["index"], tmp_path, lambda *a: None, never)
        info = probe_media(path)
        assert abs(info["duration"] - chunk["frames"] / 30) < 1e-3, (chunk, info["duration"])
