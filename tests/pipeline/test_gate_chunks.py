"""The quality gate's black and frozen stretches from the chunks' own runs equal what decoding the
whole joined video finds, including stretches that run across a chunk boundary."""

import subprocess
from pathlib import Path

import pytest

from worker.pipeline.probe import (
    MAX_BLACK,
    MAX_FREEZE,
    chunk_stretches,
    detect_black_and_frozen,
    joined_stretches,
    stretches_over_limits,
)
from worker.pipeline.proc import ffmpeg_exe

FPS = 25
# Lossless, so that a held frame decodes the same on both sides of a keyframe (as the gate needs
# to see a freeze go on across a boundary; lossy stills "refresh" at a keyframe).
ENCODE = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-g", str(FPS * 4),
          "-x264-params", "scenecut=0", "-an"]


def never() -> bool:
    return False


def make_chunk(path: Path, pieces: list[tuple[str, float]]) -> Path:
    """A chunk of 320x180 pieces: ("moving", s), ("still:<n>", s) (frame n held) or ("black", s)."""
    inputs, labels = [], []
    for k, (kind, seconds) in enumerate(pieces):
        if kind == "moving":
            source = f"testsrc2=s=320x180:r={FPS}:d={seconds}"
        elif kind == "black":
            source = f"color=c=black:s=320x180:r={FPS}:d={seconds}"
        else:  # a still: frame <n> of the test pattern, held
            n = int(kind.split(":")[1])
            source = (f"testsrc2=s=320x180:r={FPS},trim=start_frame={n}:end_frame={n + 1},"
                      f"loop=loop=-1:size=1:start=0,trim=end_frame={round(seconds * FPS)},setpts=N/{FPS}/TB")
        inputs += ["-f", "lavfi", "-i", source]
        labels.append(f"[{k}:v]format=yuv420p,setsar=1[v{k}]")
    graph = ";".join(labels) + ";" + "".join(f"[v{k}]" for k in range(len(pieces))) + \
        f"concat=n={len(pieces)}:v=1:a=0,fps={FPS}[out]"
    frames = round(sum(s for _, s in pieces) * FPS)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-frames:v", str(frames), *ENCODE, str(path)], check=True)
    return path


def joined(tmp: Path, chunks: list[Path]) -> Path:
    listing = tmp / "list.txt"
    listing.write_text("".join(f"file '{c}'\n" for c in chunks))
    out = tmp / "joined.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(out)], check=True)
    return out


def gate_both_ways(tmp: Path, layout: list[list[tuple[str, float]]]) -> tuple[dict, dict]:
    chunks = [make_chunk(tmp / f"c{i}.mp4", pieces) for i, pieces in enumerate(layout)]
    parts = [chunk_stretches(c, FPS, round(sum(s for _, s in pieces) * FPS), never)
             for c, pieces in zip(chunks, layout, strict=True)]
    video = joined(tmp, chunks)
    return stretches_over_limits(video, parts, FPS, never), detect_black_and_frozen(video, never)


def rounded(stretches):
    return [(round(s, 1), round(d, 1)) for s, d in stretches]


def test_a_freeze_across_a_boundary_is_found_as_the_whole_video_would(tmp_path):
    # 1.2 s of one still at the end of chunk 0 and 1.2 s more of it at the start of chunk 1.
    ours, whole = gate_both_ways(tmp_path, [[("moving", 2.0), ("still:30", 1.2)],
                                            [("still:30", 1.2), ("moving", 2.0)]])
    assert whole["frozen"], "the reference decode sees the 2.4 s freeze"
    assert rounded(ours["frozen"]) == rounded(whole["frozen"])
    assert ours["frozen"][0][1] >= MAX_FREEZE


def test_two_different_stills_meeting_at_a_boundary_are_not_a_freeze(tmp_path):
    # Each chunk holds a still for 1.2 s on its side of the boundary, but not the same one.
    ours, whole = gate_both_ways(tmp_path, [[("moving", 2.0), ("still:30", 1.2)],
                                            [("still:90", 1.2), ("moving", 2.0)]])
    assert ours["frozen"] == whole["frozen"] == []


def test_black_across_a_boundary_and_inside_a_chunk(tmp_path):
    ours, whole = gate_both_ways(tmp_path, [[("moving", 1.0), ("black", 0.6)],
                                            [("black", 0.6), ("moving", 1.0), ("black", 1.4), ("moving", 1.0)]])
    assert len(whole["black"]) == 2
    assert rounded(ours["black"]) == rounded(whole["black"])
    assert all(d >= MAX_BLACK for _, d in ours["black"])


def test_runs_join_only_where_they_meet_a_boundary():
    parts = [{"seconds": 4.0, "black": [], "frozen": [(1.0, 0.5), (3.0, 1.0)]},
             {"seconds": 4.0, "black": [], "frozen": [(0.0, 1.5), (2.0, 0.5)]},
             {"seconds": 2.0, "black": [], "frozen": [(0.5, 1.5)]}]
    found = joined_stretches(parts, FPS)
    assert [(s, d) for s, d, _ in found["frozen"]] == [(1.0, 0.5), (3.0, 2.5), (6.0, 0.5), (8.5, 1.5)]
    assert found["frozen"][1][2] == [1.0, 1.5]


@pytest.mark.parametrize("pieces", [[1.5], [2.5, 0.5]])
def test_a_piece_over_the_limit_needs_no_second_look(tmp_path, pieces):
    # A joined run with a piece over the limit is a freeze whatever the boundary frames are; the
    # video is not read (the path does not exist).
    parts, offset = [], 0.0
    for i, d in enumerate(pieces):
        start = 3.0 - d if i == 0 else 0.0
        parts.append({"seconds": 3.0, "black": [], "frozen": [(start, d)]})
        offset += 3.0
    found = stretches_over_limits(tmp_path / "missing.mp4", parts, FPS, never)
    if max(pieces) >= MAX_FREEZE:
        assert found["frozen"] == [(3.0 - pieces[0], sum(pieces))]
    else:
        assert found["frozen"] == []


def test_every_run_of_a_long_log_is_found(tmp_path):
    # 30 short stills between moving pieces: 90 log lines of freezedetect, more than the tail of
    # stderr that a failing child's message keeps; none may be lost.
    pieces = [kind for k in range(30) for kind in (("moving", 0.2), (f"still:{k * 7}", 0.4))]
    found = detect_black_and_frozen(make_chunk(tmp_path / "many.mp4", pieces), never, max_freeze=0.2)
    assert len(found["frozen"]) == 30
    assert [round(s, 1) for s, _ in found["frozen"]] == [round(0.2 + 0.6 * k, 1) for k in range(30)]


def render_runs(board: dict, folder: Path) -> list[dict]:
    import json

    from worker.pipeline import render_chunk
    from worker.pipeline.compose import chunk_runs_path

    for chunk in board["chunks"]:
        render_chunk(board, chunk["index"], folder, lambda *_: None, never)
    return [json.loads(chunk_runs_path(board, c["index"], folder).read_text()) for c in board["chunks"]]


def test_the_render_records_the_runs_of_the_frames_it_draws(tmp_path):
    # The chunks' runs come from the frames on their way to the encoder, not from a decode: a scene
    # whose camera stands still (a stalled picture) is a freeze across its chunks, and the same
    # storyboard with the camera moving has none.
    from worker.pipeline import build_storyboard

    board = build_storyboard({"theme_id": "t", "keywords_id": ["a", "b", "c"], "target_duration_id": 20,
                              "user_description_id": "d", "config": {"quality": "low", "resolution": "320x180"}})
    moving = stretches_over_limits(tmp_path / "unused.mp4", render_runs(board, tmp_path / "a"), board["fps"], never)
    assert moving == {"black": [], "frozen": []}
    scene = board["scenes"][2]
    scene["zoom"] = [1.0, 1.0]
    stalled = render_runs(board, tmp_path / "b")
    joined = joined_stretches(stalled, board["fps"])
    start, end = scene["start_frame"] / board["fps"], (scene["start_frame"] + scene["frames"]) / board["fps"]
    longest = max(joined["frozen"], key=lambda run: run[1])
    assert start - 0.1 <= longest[0] < end - MAX_FREEZE  # from when its text has settled
    assert longest[0] + longest[1] >= end - 0.1
    assert longest[1] >= MAX_FREEZE
