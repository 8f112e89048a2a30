"""Briefs with the user's own material rendered by the real pipeline (ffmpeg, espeak-ng) and checked
with ffprobe and by looking at frames: image and clip scenes, a logo, a script with its own voice,
music from the library, sidecar-only subtitles, a portrait render from landscape clips, a preview."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.assets.media import make_audio, make_clip, make_image
from webapp.mediaprobe import ffmpeg_exe, probe
from worker.pipeline import build_storyboard, run_pipeline

pytestmark = pytest.mark.sqlite_only


def never() -> bool:
    return False


def frame_at(video, seconds: float, dest) -> np.ndarray:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{seconds:.3f}",
                    "-i", str(video), "-frames:v", "1", str(dest)], check=True, timeout=60)
    return np.asarray(Image.open(dest).convert("RGB"), dtype=np.int16)


@pytest.fixture
def material(app, tmp_path):
    from webapp.services.assets import Actor, ingest_file

    me = Actor("token:olga")
    # A plain green picture (no test pattern), so a frame of its scene is recognisably it.
    green = tmp_path / "green.png"
    Image.new("RGB", (640, 360), (40, 200, 60)).save(green)
    return {
        "image": ingest_file(green, "green.png", me).id,
        "clip": ingest_file(make_clip(tmp_path / "c.mp4", seconds=2.0, size="640x360", spin=True), "c.mp4", me).id,
        "music": ingest_file(make_audio(tmp_path / "m.ogg", seconds=3.0), "m.ogg", me).id,
        "logo": ingest_file(make_image(tmp_path / "l.png", size=(200, 100), alpha=True), "l.png", me,
                            kind="logo").id,
        "blue": ingest_file(make_image(tmp_path / "b.jpg"), "b.jpg", me).id,
    }


def brief_with(config: dict, **fields) -> dict:
    brief = {"theme_id": "Product launch", "keywords_id": ["speed", "care"], "target_duration_id": 8,
             "user_description_id": "", "priority": "normal",
             "config": {"quality": "low", "resolution": "320x180", "seed": 3, **config}}
    brief.update(fields)
    return brief


def test_images_clips_script_voice_music_and_logo(app, material, tmp_path):
    config = {
        "assets": [material["image"], material["clip"]],
        "script": [{"narration": "Meet the new phone.", "caption": "Meet the phone"},
                   {"narration": "It is fast and it cares.", "caption": "Fast and caring"},
                   {"narration": "Order it today.", "caption": "Order today"}],
        "fit": "exact", "voice": {"name": "en-us+f3", "speed": 180},
        "music": {"asset": material["music"], "volume": 0.4},
        "logo": {"asset": material["logo"], "corner": "top-right", "scale": 0.25},
        "subtitles": {"burn": False},
    }
    brief = brief_with(config)
    board = build_storyboard(brief)
    assert [s["caption"] for s in board["scenes"]] == ["Meet the phone", "Fast and caring", "Order today"]
    assert [s["asset"] for s in board["scenes"]] == [material["image"], material["clip"], material["image"]]
    result = run_pipeline(brief, tmp_path / "work", tmp_path / "out", lambda *a: None, never)
    video = tmp_path / "out" / result["video"]
    info = probe(video)
    assert abs(info["duration"] - 8.0) < 0.1
    streams = {s["type"]: s for s in info["streams"]}
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
    assert streams["video"]["codec"] == "h264" and streams["audio"]["codec"] == "aac"
    # The first scene shows the green picture, not the procedural background.
    scene = board["scenes"][0]
    middle = (scene["start_frame"] + scene["frames"] / 2) / board["fps"]
    frame = frame_at(video, middle, tmp_path / "f0.png")
    centre = frame[60:120, 100:220].reshape(-1, 3).mean(axis=0)
    assert centre[1] > centre[0] + 50 and centre[1] > centre[2] + 50, centre
    # The logo's red block sits in the top-right corner; the caption is not burned in.
    logo_w = int(320 * 0.25)
    margin = max(4, int(180 * 0.04))
    corner = frame[margin + 2:margin + 10, 320 - margin - logo_w + 2:320 - margin - logo_w + 10]
    red = corner.reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 and red[1] < 110, red
    # The clip's scene: a frame of the test pattern (many colours), not the green picture.
    clip_scene = board["scenes"][1]
    frame = frame_at(video, (clip_scene["start_frame"] + clip_scene["frames"] / 2) / board["fps"],
                     tmp_path / "f1.png")
    assert frame.reshape(-1, 3).std(axis=0).mean() > 40
    # ... and it moves: the clip plays (testsrc2 animates), where a still scene only zooms slowly.
    later = frame_at(video, (clip_scene["start_frame"] + clip_scene["frames"] / 2 + 6) / board["fps"],
                     tmp_path / "f2.png")
    assert np.abs(later - frame).mean() > 20
    # Narration was spoken with the script's words, and the cues carry the script's captions.
    vtt = (tmp_path / "out").glob("*.vtt")
    cues = next(vtt).read_text(encoding="utf-8")
    assert "Meet the phone" in cues and "Order today" in cues


def test_fit_narration_follows_the_script_length(app):
    short = brief_with({"script": [{"narration": "One."}, {"narration": "Two."}], "fit": "narration"},
                       target_duration_id=60)
    long = brief_with({"script": [{"narration": "word " * 60}, {"narration": "word " * 60}], "fit": "narration"},
                      target_duration_id=5)
    assert build_storyboard(short)["duration"] == 5.0
    assert 40 <= build_storyboard(long)["duration"] <= 50
    exact = brief_with({"script": [{"narration": "One."}, {"narration": "Two."}], "fit": "exact"},
                       target_duration_id=20)
    assert build_storyboard(exact)["duration"] == 20.0


def test_portrait_render_from_landscape_material(app, material, tmp_path):
    brief = brief_with({"resolution": "180x320", "assets": [material["blue"], material["clip"]]},
                       target_duration_id=6)
    result = run_pipeline(brief, tmp_path / "work", tmp_path / "out", lambda *a: None, never)
    video = tmp_path / "out" / result["video"]
    stream = next(s for s in probe(video)["streams"] if s["type"] == "video")
    assert (stream["width"], stream["height"]) == (180, 320)
    board = build_storyboard(brief)
    scene = board["scenes"][0]
    frame = frame_at(video, (scene["start_frame"] + scene["frames"] / 2) / board["fps"], tmp_path / "p.png")
    # The blue picture covers the whole portrait frame (the texts aside, inside the safe box): its
    # colour reaches the top, bottom and side edges.
    for row, col in ((4, 90), (316, 90), (160, 3), (160, 176)):
        pixel = frame[row, col]
        assert pixel[2] > pixel[0] + 60, (row, col, pixel)


def test_a_phone_clip_stands_upright_in_portrait_and_landscape_renders(app, tmp_path):
    """HEVC stored sideways with a display matrix, as phones record portrait video: the library
    reads it as portrait with an upright poster, and every render shows it upright (red above)."""
    from tests.assets.media import make_phone_clip
    from webapp.services.assets import Actor, ingest_file
    from webapp.storage import get_storage

    asset = ingest_file(make_phone_clip(tmp_path / "phone.mp4"), "phone.mp4", Actor("token:olga"))
    assert (asset.kind, asset.codec, asset.width, asset.height) == ("clip", "hevc", 360, 640)
    get_storage().download(asset.thumbnail_key, tmp_path / "thumb.jpg")
    poster = np.asarray(Image.open(tmp_path / "thumb.jpg").convert("RGB"), dtype=np.int16)
    height = poster.shape[0]
    assert poster.shape[1] < height  # portrait, as the clip is shown
    top, bottom = poster[height // 8].mean(axis=0), poster[height * 7 // 8].mean(axis=0)
    assert top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100, (top, bottom)
    for resolution, (width, height) in (("180x320", (180, 320)), ("320x180", (320, 180))):
        brief = brief_with({"resolution": resolution, "assets": [asset.id], "subtitles": {"burn": False}},
                           target_duration_id=4)
        result = run_pipeline(brief, tmp_path / f"work-{resolution}", tmp_path / f"out-{resolution}",
                              lambda *a: None, never)
        video = tmp_path / f"out-{resolution}" / result["video"]
        stream = next(s for s in probe(video)["streams"] if s["type"] == "video")
        assert (stream["width"], stream["height"]) == (width, height)
        board = build_storyboard(brief)
        assert all(scene["asset"] == asset.id for scene in board["scenes"])
        frame = frame_at(video, board["duration"] / 2, tmp_path / f"{resolution}.png")
        # Covered and upright: red along the top edge, blue along the bottom one (the texts sit
        # inside the safe box, away from both).
        top, bottom = frame[3, 10:-10].mean(axis=0), frame[-4, 10:-10].mean(axis=0)
        assert top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100, (resolution, top, bottom)


def assert_halves(picture: np.ndarray, what: str) -> None:
    """The two halves of `make_hdr_clip`'s picture show its SDR colours (the middle third of
    each, beside the texts that sit in the frame's centre)."""
    from tests.assets.media import HDR_CLIP_COLOURS

    teal, grey = (np.array(colour) for colour in HDR_CLIP_COLOURS)
    rows, cols = picture.shape[0], picture.shape[1]
    left = picture[rows // 3:rows * 2 // 3, cols // 8:cols * 3 // 8].reshape(-1, 3).mean(axis=0)
    right = picture[rows // 3:rows * 2 // 3, cols * 5 // 8:cols * 7 // 8].reshape(-1, 3).mean(axis=0)
    # Read as BT.709 the teal comes out near (121, 165, 158) from HLG, (108, 130, 128) from PQ,
    # and the grey 30 (HLG) to 65 (PQ) darker.
    assert np.abs(left - teal).max() < 30 and np.abs(right - grey).max() < 20, (what, left, right)


@pytest.mark.parametrize("transfer", ["arib-std-b67", "smpte2084"])
def test_an_hdr_clip_keeps_its_colours_in_the_sdr_video(app, tmp_path, transfer):
    """A phone's HLG clip, or an HDR10 (PQ) one: the poster and the render show the colours the
    clip shows on an HDR screen, not its BT.2020 values read as BT.709 (pale, and dark for PQ)."""
    from tests.assets.media import make_hdr_clip
    from webapp.services.assets import Actor, ingest_file
    from webapp.storage import get_storage

    asset = ingest_file(make_hdr_clip(tmp_path / "hdr.mp4", transfer), "hdr.mp4", Actor("token:olga"))
    assert asset.probe["hdr"] == {"arib-std-b67": "HLG", "smpte2084": "PQ"}[transfer]
    get_storage().download(asset.thumbnail_key, tmp_path / "thumb.jpg")
    assert_halves(np.asarray(Image.open(tmp_path / "thumb.jpg").convert("RGB"), dtype=np.int16), "poster")
    brief = brief_with({"assets": [asset.id], "subtitles": {"burn": False}}, target_duration_id=4)
    result = run_pipeline(brief, tmp_path / "work", tmp_path / "out", lambda *a: None, never)
    video = tmp_path / "out" / result["video"]
    board = build_storyboard(brief)
    assert all(scene["asset"] == asset.id for scene in board["scenes"])
    # Halfway, away from the fades in and out; the texts sit in the middle third's centre and the
    # halves are measured beside them.
    assert_halves(frame_at(video, board["duration"] / 2, tmp_path / "f.png"), "render")


def test_preview_is_the_first_ten_seconds_of_the_same_storyboard(app, tmp_path):
    from webapp.services.validation import validate_brief
    from webapp.services.variants import preview_brief

    full = validate_brief(brief_with({"resolution": "1280x720"}, target_duration_id=30))
    preview = preview_brief(full)
    board, whole = build_storyboard(preview), build_storyboard({**full, "config": {**preview["config"],
                                                                                     "preview": False}})
    assert board["total_frames"] == 10 * board["fps"]
    assert [s["caption"] for s in board["scenes"]] == [s["caption"] for s in whole["scenes"][:len(board["scenes"])]]
    assert board["scenes"][0]["frames"] == whole["scenes"][0]["frames"]
    result = run_pipeline(preview, tmp_path / "work", tmp_path / "out", lambda *a: None, never)
    info = probe(tmp_path / "out" / result["video"])
    stream = next(s for s in info["streams"] if s["type"] == "video")
    assert (stream["width"], stream["height"]) == (640, 360)
    assert abs(info["duration"] - 10.0) < 0.1


def test_subtitle_style_and_brand_font_are_drawn(app, tmp_path):
    from tests.assets.media import make_font
    from webapp.services.assets import Actor, ingest_file
    from worker.pipeline import render_visuals

    font = ingest_file(make_font(tmp_path / "box.ttf"), "box.ttf", Actor("token:olga")).id
    base = brief_with({"script": [{"narration": "Hello", "caption": "HELLO"}, {"narration": "Bye", "caption": "BYE"}]})
    styled = brief_with({**base["config"], "brand": {"font": font},
                         "subtitles": {"size": 30, "color": "#FF0000", "outline": 3, "position": "top"}})
    plain = render_visuals(build_storyboard(base), tmp_path / "w1", lambda *a: None, never)
    fancy = render_visuals(build_storyboard(styled), tmp_path / "w2", lambda *a: None, never)
    caption_plain = plain["scenes"][0]["layers"][1]
    caption = fancy["scenes"][0]["layers"][1]
    assert caption["y"] < 90 < caption_plain["y"]  # moved to the top
    pixels = np.asarray(Image.open(f"{fancy['dir']}/{caption['png']}").convert("RGBA"), dtype=np.int16)
    solid = pixels[pixels[:, :, 3] > 250]
    assert (np.abs(solid[:, :3] - [255, 0, 0]).sum(axis=1) < 60).any()  # red glyphs
    assert (solid[:, :3].sum(axis=1) < 40).any()  # the black outline
    # The box font draws every glyph as a solid box: the heading's layer is made of rectangles.
    heading = np.asarray(Image.open(f"{fancy['dir']}/{fancy['scenes'][0]['layers'][0]['png']}").convert("RGBA"))
    heading_plain = np.asarray(Image.open(f"{plain['dir']}/{plain['scenes'][0]['layers'][0]['png']}").convert("RGBA"))
    assert heading.shape != heading_plain.shape or np.abs(heading.astype(int) - heading_plain).mean() > 5


def test_quality_gate_lets_still_material_be_still_but_not_procedural_scenes(app):
    from worker.pipeline.material import inside_asset_scenes

    board = build_storyboard(brief_with({"assets": ["asset_0000000000000001"]}, keywords_id=["a", "b"],
                                        target_duration_id=12))
    fps = board["fps"]
    board["scenes"][1].pop("asset")  # a procedural scene between two from the material
    first, second, third = board["scenes"][:3]
    assert inside_asset_scenes(board, 0.5, first["frames"] / fps - 0.6)
    assert not inside_asset_scenes(board, second["start_frame"] / fps + 0.7, 1.0)
    # The last scenes are from the material: a freeze that runs to the end is theirs.
    assert inside_asset_scenes(board, third["start_frame"] / fps + 0.1, float("inf"))
    assert not inside_asset_scenes(board, first["start_frame"] / fps + 0.5, float("inf"))


def pan_positions(board: dict, scene_index: int, manifest: dict) -> list[int]:
    """The crop's left edge on every frame of a picture scene, from the render's own expression."""
    import math
    import re

    from worker.pipeline import compose

    scene = board["scenes"][scene_index]
    chain = compose._pan_chain(scene, board, 0, [], tuple(manifest["bg_size"]))
    x_expr = re.search(r"crop=\d+:\d+:'([^']+)'", chain).group(1)
    names = {"mod": math.fmod, "abs": abs, "round": lambda v: math.floor(v + 0.5)}
    return [eval(x_expr, names, {"t": n / board["fps"]}) for n in range(scene["frames"])]  # noqa: S307


def test_a_picture_pans_in_whole_steps(app, tmp_path):
    # A picture scene moves by panning: each drawn frame is the one before moved by whole pixels
    # (no resampling, which blurs a photograph a little differently at every zoom step).
    from webapp.services.assets import Actor, ingest_file
    from worker.pipeline import render_visuals

    rng = np.random.default_rng(5)
    picture = tmp_path / "texture.png"
    Image.fromarray(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)).resize(
        (640, 360), Image.Resampling.NEAREST).save(picture)
    asset = ingest_file(picture, "texture.png", Actor("token:olga")).id
    brief = brief_with({"assets": [asset], "quality": "high"}, target_duration_id=12)
    board = build_storyboard(brief)
    result = run_pipeline(brief, tmp_path / "work", tmp_path / "out", lambda *a: None, never)
    video = tmp_path / "out" / result["video"]
    manifest = render_visuals(board, tmp_path / "work", lambda *a: None, never)  # cached
    scene, fps, width = board["scenes"][1], board["fps"], board["width"]
    assert scene["asset"] == asset
    positions = pan_positions(board, 1, manifest)
    steps = {b - a for a, b in zip(positions, positions[1:], strict=False)}
    assert steps <= {0, 2} or steps <= {0, -2}, steps  # one way, two pixels at a time
    first = scene["caption_in"] + 2 * board["text_in_frames"]  # the texts have settled
    last = min(first + fps, scene["frames"] - 1)
    shift = positions[last] - positions[first]
    assert shift != 0 and shift % 2 == 0
    a = frame_at(video, (scene["start_frame"] + first) / fps, tmp_path / "a.png")
    b = frame_at(video, (scene["start_frame"] + last) / fps, tmp_path / "b.png")
    if shift > 0:
        moved, before = b[:, :width - shift], a[:, shift:]
    else:
        moved, before = b[:, -shift:], a[:, :width + shift]
    # Most pixels (the texts aside) are the earlier frame's, moved by the camera's step.
    assert np.median(np.abs(moved - before)) < 6
    assert np.median(np.abs(b - a)) > 20



def test_black_inside_the_users_material_passes_the_gate_but_not_over_a_procedural_scene(app, tmp_path):
    """A clip that is black for seconds (a night shot, a fade) is the user's own: a video black
    from end to end passes the gate when every scene is from the material, and fails it, naming
    the stretch, when one scene is procedural."""
    from worker.pipeline import probe

    board = build_storyboard(brief_with({"assets": ["asset_0000000000000001"]}, keywords_id=["a", "b"],
                                        target_duration_id=12))
    fps, frames = board["fps"], board["total_frames"]
    video = tmp_path / "black.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    f"color=c=black:s={board['width']}x{board['height']}:r={fps}", "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=stereo", "-frames:v", str(frames), "-t", f"{frames / fps:.6f}",
                    "-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-movflags", "+faststart", str(video)], check=True, timeout=60)
    assert probe.quality_gate(video, board, never)["width"] == board["width"]
    second = board["scenes"][1]
    second.pop("asset")
    with pytest.raises(probe.PipelineError, match=r"black stretch of 1[12]\.\d\d s at 0\.00 s"):
        probe.quality_gate(video, board, never)
