"""A clip scene's piece that starts mid-scene seeks the looped clip instead of decoding and
dropping the scene's earlier frames: the frames must be the very ones the looped clip gives when
decoded from its start (real ffmpeg, frame checksums)."""

import subprocess

import pytest

from worker.pipeline import material
from worker.pipeline.proc import ffmpeg_exe

BOARD = {"width": 160, "height": 90, "fps": 30}


def make_clip(path, rate: int, seconds: float, audio_seconds: float | None = None):
    args = ["-f", "lavfi", "-i", f"testsrc2=size=192x108:rate={rate}:duration={seconds},hue=H=4*t"]
    if audio_seconds:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={audio_seconds}", "-c:a", "aac"]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args, "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def frame_sums(clip, offset: int, count: int, loop: dict | None) -> list[str]:
    chain = material.clip_chain(0, offset, count, BOARD, "s0", loop).replace("[s0b0]", "[out]")
    out = subprocess.run([ffmpeg_exe(), "-v", "error", *material.clip_input(offset, BOARD["fps"], loop),
                          "-i", str(clip), "-filter_complex", chain, "-map", "[out]", "-frames:v", str(count),
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize(("rate", "seconds", "audio"), [(30, 2.0, None), (25, 1.6, 2.5)])
def test_seeked_piece_has_the_frames_of_the_clip_decoded_from_its_start(tmp_path, rate, seconds, audio):
    clip = make_clip(tmp_path / f"c{rate}.mp4", rate, seconds, audio)
    loop = material.clip_facts(clip)["clip_loop"]
    # One pass of the picture, not the longer sound track: ffmpeg loops after the video's duration.
    assert loop["seconds"] == pytest.approx(seconds, abs=0.05)
    assert loop["rate"] == pytest.approx(rate)
    for offset in (7, 45, 101):
        assert "-ss" in material.clip_input(offset, BOARD["fps"], loop)
        seeked = frame_sums(clip, offset, 40, loop)
        decoded = frame_sums(clip, offset, 40, None)
        assert len(seeked) == 40
        assert seeked == decoded, offset


def test_a_clip_of_unknown_length_is_decoded_from_its_start():
    assert material.clip_input(90, 30, {}) == ["-stream_loop", "-1"]
    assert "trim=start_frame=90:end_frame=100" in material.clip_chain(0, 90, 10, BOARD, "s0", {})
