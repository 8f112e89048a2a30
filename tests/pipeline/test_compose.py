import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.streams import x264_options
from worker.pipeline import Cancelled, build_storyboard, probe_media, render_chunk, render_visuals, run_pipeline
from worker.pipeline import compose as compose_module
from worker.pipeline import images as images_module
from worker.pipeline import run as run_module
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


def test_large_frames_encode_with_fewer_frames_in_memory_and_join(tmp_path):
    """Above 2560x1440 every chunk is encoded with sliced threads, a 3-frame lookahead and one
    B-frame (x264's frames are the render's largest memory), and the chunks still join by stream
    copy to the exact frame count; smaller videos keep the preset's settings."""
    small = build_storyboard({**E2E_BRIEF, "config": {"resolution": "1280x720", "quality": "medium"}})
    assert not compose_module.large_frames(small) and compose_module.render_env(small) is None
    assert compose_module.encoder_args(small, 2)[compose_module.encoder_args(small, 2).index("-x264-params") + 1] \
        == "8x8dct=1:scenecut=0"
    brief = {**E2E_BRIEF, "target_duration_id": 8, "config": {"resolution": "2576x1450", "quality": "medium"}}
    board = build_storyboard(brief)
    assert compose_module.large_frames(board)
    assert compose_module.render_env(board)["MALLOC_MMAP_THRESHOLD_"] == str(1 << 20)
    assert len(board["chunks"]) == 2 and board["preset"] == "veryfast"
    # Never more B-frames or lookahead than the preset has: ultrafast has neither.
    assert compose_module.large_frame_x264("ultrafast") == "sliced-threads=1:rc-lookahead=0:bframes=0"
    render_visuals(board, tmp_path, lambda *a: None, never)
    chunks = [render_chunk(board, chunk["index"], tmp_path, lambda *a: None, never, threads=2)
              for chunk in board["chunks"]]
    for path in chunks:
        options = x264_options(path)
        assert {"sliced_threads=1", "slices=2", "rc_lookahead=3", "bframes=1", "mbtree=1"} <= options, options
    concat = tmp_path / "list.txt"
    concat.write_text("".join(f"file '{p}'\n" for p in chunks), encoding="utf-8")
    joined = tmp_path / "joined.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "concat", "-safe", "0", "-i", str(concat), "-c", "copy",
                    str(joined)], check=True)
    assert count_video_frames(joined) == board["total_frames"]
    info = probe_media(joined)
    assert (info["width"], info["height"], info["profile"]) == (2576, 1450, "High")


def test_camera_zoom_stays_centred_on_every_frame(tmp_path):
    """The zoom's scale and crop take the same frame's size: a vertical edge at the middle of the
    background stays at the middle of every frame (a crop a frame behind the scale moved the
    picture by a pixel at each step of the zoom)."""
    board = build_storyboard(E2E_BRIEF)
    width, height = board["width"], board["height"]
    bg_width, bg_height = images_module.background_size(width, height)
    still = np.zeros((bg_height, bg_width, 3), np.uint8)
    still[:, bg_width // 2:] = 255
    Image.fromarray(still).save(tmp_path / "bg.png")
    manifest = {"scenes": [{"bg": "bg.png", "layers": []} for _ in board["scenes"]]}
    edges = []
    for chunk in board["chunks"]:
        inputs, graph = compose_module.chunk_graph(board, manifest, tmp_path, chunk["index"])
        raw = subprocess.run([ffmpeg_exe(), "-v", "error", *inputs, "-filter_complex", graph, "-map", "[out]",
                              "-frames:v", str(chunk["frames"]), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                             capture_output=True, check=True).stdout
        frames = np.frombuffer(raw, np.uint8).reshape(chunk["frames"], -1)[:, :width * height]
        rows = frames.reshape(chunk["frames"], height, width)[:, height // 2].astype(int)
        lit = rows.max(axis=1) - rows.min(axis=1) > 100  # not in the fade from or to black
        middle = (rows.max(axis=1, keepdims=True) + rows.min(axis=1, keepdims=True)) / 2
        edges += [int(np.argmax(row > mid)) for row, mid, on in zip(rows, middle[:, 0], lit, strict=True) if on]
    assert len(edges) > board["total_frames"] * 0.8
    assert set(edges) == {width // 2}


def test_chunks_render_two_at_a_time_on_two_cores(tmp_path, monkeypatch):
    board = build_storyboard({**E2E_BRIEF, "target_duration_id": 20})
    assert len(board["chunks"]) >= 3
    both_running = threading.Barrier(2, timeout=10)
    calls = []

    def fake_render_chunk(board, index, work_dir, progress, cancelled, threads):
        calls.append((index, threads))
        if len(calls) <= 2:
            both_running.wait()  # fails unless a second chunk starts while this one runs
        progress(0.5, f"half of chunk {index}")
        progress(1.0, f"chunk {index}")

    monkeypatch.setattr(run_module, "allotted_cores", lambda: 2)
    monkeypatch.setattr(run_module, "render_chunk", fake_render_chunk)
    reports = []
    run_module.render_chunks(board, tmp_path, lambda fraction, message: reports.append(fraction), never)
    assert sorted(index for index, _ in calls) == [c["index"] for c in board["chunks"]]
    assert {threads for _, threads in calls} == {1}  # each ffmpeg gets one of the two cores
    assert reports == sorted(reports) and reports[-1] == pytest.approx(1.0)


def test_a_failed_chunk_stops_the_chunk_beside_it(tmp_path, monkeypatch):
    board = build_storyboard({**E2E_BRIEF, "target_duration_id": 20})
    started, stopped, calls = threading.Event(), threading.Event(), []

    def fake_render_chunk(board, index, work_dir, progress, cancelled, threads):
        calls.append(index)
        if len(calls) == 1:
            deadline = time.monotonic() + 10
            started.set()
            while not cancelled() and time.monotonic() < deadline:
                time.sleep(0.01)
            if cancelled():
                stopped.set()
                raise Cancelled("render cancelled")
            return
        started.wait(10)
        raise compose_module.PipelineError("ffmpeg exited with 1", "render")

    monkeypatch.setattr(run_module, "allotted_cores", lambda: 2)
    monkeypatch.setattr(run_module, "render_chunk", fake_render_chunk)
    with pytest.raises(compose_module.PipelineError, match="exited with 1"):
        run_module.render_chunks(board, tmp_path, lambda *a: None, never)
    assert stopped.is_set()
    assert len(calls) == 2  # no chunk started after the failure


def zoom_widths(board: dict, scene_index: int) -> list[int]:
    """The zoomed width of every frame of a scene, evaluated from the render's own scale expression."""
    import math
    import re

    scene = board["scenes"][scene_index]
    chain = compose_module._zoom_chain(scene, board, 0, [])
    width_expr = re.search(r"scale=w='([^']+)'", chain).group(1)
    fps = board["fps"]
    names = {"trunc": math.trunc, "mod": math.fmod, "abs": abs, "round": round}
    return [eval(width_expr, names, {"t": n / fps}) for n in range(scene["frames"])]  # noqa: S307


def test_a_long_scene_keeps_the_camera_moving():
    # 600 s at 3840x2160: scenes of two minutes. One zoom over the whole scene changed the frame
    # once a second or less, and the quality gate read 4-6 s of that as frozen; the camera now
    # sweeps back and forth, so every 2 s window has several zoom steps.
    board = build_storyboard({"theme_id": "产品宣传", "keywords_id": ["科技", "创新", "未来"],
                              "target_duration_id": 600, "user_description_id": "一个展示AI技术发展的宣传视频",
                              "config": {"quality": "medium", "resolution": "3840x2160"}})
    fps = board["fps"]
    scene = max(range(len(board["scenes"])), key=lambda i: board["scenes"][i]["frames"])
    assert board["scenes"][scene]["frames"] > 100 * fps
    widths = zoom_widths(board, scene)
    window = 2 * fps
    fewest = min(sum(a != b for a, b in zip(widths[k:k + window], widths[k + 1:k + window + 1], strict=False))
                 for k in range(0, len(widths) - window, fps))
    assert fewest >= 6
    assert min(widths) >= 3840 and max(widths) <= round(3840 * 1.07) + 2  # within the painted margin
    # A short scene still zooms one way across the whole scene.
    short = build_storyboard({"theme_id": "t", "keywords_id": ["a", "b"], "target_duration_id": 20,
                              "user_description_id": "d", "config": {"quality": "low", "resolution": "640x360"}})
    first = zoom_widths(short, 0)
    assert first == sorted(first) and first[0] < first[-1]


def test_a_small_frame_changes_size_at_least_once_a_second():
    # 320x180 zooms in 2-pixel steps of which a 7 % zoom has only 11: a 30 s leg changed the frame
    # every 2.7 s, which the quality gate reads as frozen; the legs of a small frame are shorter,
    # and the zoom rounds to the nearest step, so a turn holds a step no longer than 1.5 s.
    board = build_storyboard({"theme_id": "t", "keywords_id": ["a", "b", "c"], "target_duration_id": 600,
                              "user_description_id": "d", "config": {"quality": "low", "resolution": "320x180"}})
    fps = board["fps"]
    for index, scene in enumerate(board["scenes"]):
        widths = zoom_widths(board, index)
        changes = [n for n in range(1, len(widths)) if widths[n] != widths[n - 1]]
        gaps = [b - a for a, b in zip([0, *changes], [*changes, len(widths) - 1], strict=True)]
        assert max(gaps) <= 1.5 * fps, (index, scene["frames"], max(gaps))  # the gate allows 2 s
