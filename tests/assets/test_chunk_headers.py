"""Chunks of the user's clips are encoded with a lighter motion search than the others, and every
chunk of a video still carries the same parameter sets, so they join by stream copy into one
stream that decodes without an error, frame for frame."""

from __future__ import annotations

import subprocess

import pytest
from PIL import Image

from tests.assets.media import make_clip
from tests.streams import parameter_sets, x264_options
from webapp.mediaprobe import ffmpeg_exe
from worker.pipeline import build_storyboard, compose, run_pipeline
from worker.pipeline.probe import count_video_frames
from worker.pipeline.storyboard import QUALITY

pytestmark = pytest.mark.sqlite_only


@pytest.mark.parametrize("size", [(320, 180), (3840, 2160)], ids=["small", "large-frames"])
@pytest.mark.parametrize("quality", sorted(QUALITY))
def test_the_motion_search_of_clips_leaves_the_parameter_sets_alone(tmp_path, quality, size):
    settings = QUALITY[quality]
    board = {"width": size[0], "height": size[1], "fps": settings["fps"], "crf": settings["crf"],
             "preset": settings["preset"]}
    encoded = {}
    for motion in (False, True):
        out = tmp_path / f"{motion}.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        f"testsrc2=size=320x180:rate={settings['fps']}:duration=1,hue=H=4*t",
                        *compose.encoder_args(board, 2, motion), "-f", "mp4", str(out)], check=True, timeout=60)
        encoded[motion] = out
    assert parameter_sets(encoded[True]) == parameter_sets(encoded[False])
    if settings["preset"] in compose.MOTION_X264:
        lookahead = 3 if compose.large_frames(board) else compose.MOTION_LOOKAHEAD
        assert {"me=dia", "subme=1", "b_adapt=0", "chroma_me=0", f"rc_lookahead={lookahead}"} \
            <= x264_options(encoded[True])
        assert {"me=hex", "subme=2"} <= x264_options(encoded[False])
    else:
        assert x264_options(encoded[True]) == x264_options(encoded[False])


def test_a_video_of_clip_and_picture_chunks_joins_into_one_stream(app, tmp_path):
    """A clip scene and a picture scene, a chunk each, at the high quality (veryfast): the clip's
    chunk searches less, the picture's keeps the preset's search, and the two share their SPS and
    PPS (square pixels included), so the joined video decodes cleanly to the exact frame count."""
    from webapp.services.assets import Actor, ingest_file

    me = Actor("token:olga")
    picture = tmp_path / "p.png"
    Image.new("RGB", (640, 360), (40, 200, 60)).save(picture)
    clip_id = ingest_file(make_clip(tmp_path / "c.mp4", seconds=2.0, size="640x360", spin=True), "c.mp4", me).id
    picture_id = ingest_file(picture, "p.png", me).id
    brief = {"theme_id": "Product launch", "keywords_id": ["speed"], "target_duration_id": 12,
             "user_description_id": "", "priority": "normal",
             "config": {"quality": "high", "resolution": "320x180", "seed": 3, "assets": [clip_id, picture_id],
                        "script": [{"narration": "Fast.", "caption": "Fast"},
                                   {"narration": "Calm.", "caption": "Calm"}], "fit": "exact",
                        "subtitles": {"burn": False}}}
    board = build_storyboard(brief)
    result = run_pipeline(brief, tmp_path / "work", tmp_path / "out", lambda *a: None, lambda: False)
    chunks = [compose.chunk_path(board, chunk["index"], tmp_path / "work") for chunk in board["chunks"]]
    assert len(chunks) == 2
    searches = [x264_options(chunk) & {"me=dia", "me=hex", "subme=1", "subme=2"} for chunk in chunks]
    assert searches == [{"me=dia", "subme=1"}, {"me=hex", "subme=2"}]
    assert parameter_sets(chunks[0]) == parameter_sets(chunks[1])
    video = tmp_path / "out" / result["video"]
    decoded = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
    assert decoded.returncode == 0 and decoded.stderr == ""
    assert count_video_frames(video) == board["total_frames"]
