"""Stages "render" (one chunk of video) and "assemble" (join, mux, poster, gate).

Each chunk is one ffmpeg filter graph over the still layers from the visuals stage: the camera
zoom is a per-frame `scale` of the background (even size steps, centred crop, so no jitter),
text slides and fades in with `overlay`/`fade`, scenes cross-fade with `xfade`. Chunks are cut
where no animation window is open, so each one is rendered independently with exact frame counts
and the concatenation is stream-copied. The pixels go through ffmpeg rather than MoviePy because
per-frame compositing in MoviePy is 8-17x slower (see clips.py, which holds the MoviePy work:
the soundtrack mix and the poster frame).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from . import material as own_material
from .cache import remove_quietly, stage_key, temp_path, write_json_atomic
from .clips import grab_frame
from .errors import Cancelled, PipelineError
from .images import render_visuals
from .probe import StretchLog, chunk_edge, chunk_runs, detect_filters, probe_media, quality_gate
from .proc import allotted_cores, run_ffmpeg

THUMB_WIDTH = 320
#: The longest one-way camera zoom; a longer scene zooms back and forth (see _zoom_chain).
ZOOM_SWEEP_SECONDS = 30
#: Input options of a still PNG: decoded once, so decoder threads would only hold more buffers.
STILL_INPUT = ("-threads", "1")


#: Frames above this many pixels are rendered with fewer of them in memory at once (`large_frames`).
LARGE_FRAME_PIXELS = 2560 * 1440
#: B-frames and lookahead frames of the x264 presets (x264's own tables).
PRESET_BFRAMES_LOOKAHEAD = {"ultrafast": (0, 0), "superfast": (3, 0), "veryfast": (3, 10), "faster": (3, 20),
                            "fast": (3, 30), "medium": (3, 40), "slow": (3, 50), "slower": (3, 60)}


def large_frame_x264(preset: str) -> str:
    """x264 options for large frames. x264 keeps 22-50 MB per 3840x2160 frame it holds (the
    picture, its half-size lookahead copy, and for reference frames the half-pel planes); with
    veryfast's defaults (3 B-frames, a 10-frame lookahead, frame threads) it held ~900 MB at
    3840x2160. Sliced threads encode one frame at a time on every thread; at most a 3-frame
    lookahead (it still feeds the macroblock tree) and one B-frame. Never more than the preset's."""
    bframes, lookahead = PRESET_BFRAMES_LOOKAHEAD.get(preset, (3, 60))
    return f"sliced-threads=1:rc-lookahead={min(3, lookahead)}:bframes={min(1, bframes)}"


def large_frames(board: dict) -> bool:
    """Whether the video's frames are big enough to render with the memory-saving settings."""
    return board["width"] * board["height"] > LARGE_FRAME_PIXELS


#: x264 analysis for a chunk made mostly of the user's clips (`motion_chunk`), by preset: a
#: diamond motion search, one step of sub-pixel refinement, no sub-8x8 partitions, a fixed
#: B-frame pattern, luma-only motion estimation, and a lookahead of MOTION_LOOKAHEAD frames (a
#: large frame's is shorter still). Footage changes everywhere on every frame, and the preset's
#: deeper analysis spent about twice a procedural chunk's CPU on it (docs/media-library.md has
#: the measurements). None of these options is written in the stream's parameter sets, so such a
#: chunk still joins the others without re-encoding (tests/assets/test_chunk_headers.py).
#: Presets without an entry (ultrafast analyses less already) encode every chunk alike.
MOTION_X264 = {"veryfast": "me=dia:subme=1:b-adapt=0:partitions=none:chroma-me=0"}
MOTION_LOOKAHEAD = 5


def motion_chunk(board: dict, manifest: dict, index: int) -> bool:
    """Whether at least half of chunk `index`'s frames come from the user's clips."""
    clip_frames = sum(count for i, _, count in chunk_scenes(board, index) if manifest["scenes"][i].get("clip"))
    return 2 * clip_frames >= board["chunks"][index]["frames"]


def encoder_args(board: dict, threads: int, motion: bool = False) -> list[str]:
    """x264 settings of a chunk. Every chunk of a video gets the same parameter sets (required for
    the stream-copy join): the settings depend on the storyboard and the thread count, and a chunk
    of `motion` (clips) may search for motion less deeply (MOTION_X264), which they do not record."""
    preset = board["preset"]
    params = "8x8dct=1:scenecut=0"
    if large_frames(board):
        params += ":" + large_frame_x264(preset)
    if motion and preset in MOTION_X264:
        params += ":" + MOTION_X264[preset]
        if not large_frames(board):
            params += f":rc-lookahead={min(MOTION_LOOKAHEAD, PRESET_BFRAMES_LOOKAHEAD[preset][1])}"
    return [
        "-c:v", "libx264", "-preset", preset, "-crf", str(board["crf"]),
        "-profile:v", "high", "-pix_fmt", "yuv420p",
        # 8x8 transforms keep even the ultrafast preset in the High profile.
        "-x264-params", params,
        "-g", str(board["fps"] * 4), "-threads", str(threads),
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
        # A track timescale that is a multiple of the frame rate: with MP4's default (12800 for
        # 25 fps) a 30 fps frame lasts 426.67 ticks, chunk durations round, and the joined video
        # drifts by a frame or more.
        "-video_track_timescale", str(board["fps"] * 512),
    ]


def render_env(board: dict) -> dict[str, str] | None:
    """Environment of the render ffmpeg (None: this process's own).

    For large frames glibc's malloc gets a fixed mmap threshold: with its default, which rises to
    the largest block freed, the frame buffers that the zoom's `scale` reallocates at each new
    size come from the heap once freed and their pages are kept (~100 MB more at 3840x2160);
    above a fixed threshold each is mapped, and unmapped when freed. Output is unchanged.
    """
    if not large_frames(board):
        return None
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def filter_thread_args(threads: int) -> list[str]:
    """Global ffmpeg options that hold the filter graphs to `threads` threads (set with the encoder's)."""
    return ["-filter_threads", str(threads), "-filter_complex_threads", str(threads)]


def _progress(span: int, offset: int, steps: int, fps: int, frame: str) -> str:
    """The camera's progress (0..1) at piece frame `frame` (scene frame offset+frame) of a move of
    `steps` even-pixel steps across `span` frames.

    A long scene moves there and back again rather than crawling: one sweep over two minutes
    moves a smooth 4K background too little per second for the eye, and for the quality gate's
    freeze detection. A leg lasts ZOOM_SWEEP_SECONDS at most, and no longer than its steps allow
    at one a second (a 320-pixel frame zooms by 11 steps)."""
    sweeps = max(1, math.ceil(span / (min(ZOOM_SWEEP_SECONDS, max(1, steps)) * fps)))
    progress = f"({frame}+{offset})/{span}"
    if sweeps > 1:  # a triangle wave: 0 -> 1 -> 0 ... over `sweeps` legs
        progress = f"(1-abs(1-mod({progress}*{sweeps},2)))"
    return progress


def _drawn_frames(moving: list[tuple[int, int]], changes: list[Callable[[str], str]]) -> str:
    """`select` of the frames to draw: the first, those where a layer moves (piece frame windows
    `moving`), and those where one of the `changes` (expressions of a frame) differs from frame n-1;
    `fps`, after the text layers, repeats each drawn frame by reference until the next."""
    keep = ["eq(n,0)"] + [f"between(n,{a},{b})" for a, b in moving]
    keep += [f"not(eq({change('n')},{change('n-1')}))" for change in changes]
    return f"select='{'+'.join(keep)}'"


def _zoom_chain(scene: dict, board: dict, offset: int, moving: list[tuple[int, int]]) -> str:
    """Filters after the looped background still of a procedural scene piece starting at scene
    frame `offset`: the frames to draw, and the camera zoom.

    The zoomed size moves in even steps, so most frames repeat the one before: only the frames
    where the size changes, or where a layer moves, are drawn (`_drawn_frames`). The scale and
    crop count frames by their time, as `select` leaves gaps.
    """
    width, height = board["width"], board["height"]
    fps, z0, z1 = board["fps"], *scene["zoom"]
    span = max(1, scene["frames"] + board["transition_frames"] - 1)
    steps = int(width * abs(z1 - z0) / 2)

    def half_extra(side: int, frame: str) -> str:
        # Half the size added by the zoom at piece frame `frame`.
        progress = _progress(span, offset, steps, fps, frame)
        return f"round({side}*({z0 - 1:.6f}+({z1 - z0:.6f})*{progress})/2)"

    frame = f"round(t*{fps})"
    dx, dy = half_extra(width, frame), half_extra(height, frame)
    changes = [functools.partial(half_extra, side) for side in (width, height)]
    return (f"{_drawn_frames(moving, changes)},"
            f"scale=w='{width}+2*{dx}':h='{height}+2*{dy}':eval=frame:flags=bilinear,"
            f"crop={width}:{height}:'{dx}':'{dy}'")


def _pan_chain(scene: dict, board: dict, offset: int, moving: list[tuple[int, int]],
               bg_size: tuple[int, int]) -> str:
    """Filters after the looped background of a scene from the user's picture: the camera pans
    across the picture (painted MAX_ZOOM times the frame) along its longer margin, in even-pixel
    steps, one way in even scenes and back in odd ones.

    A pan moves every pixel by the same whole step, which the encoder predicts exactly (a zoom
    resamples the picture at each step, and a photograph's detail costs bits and time at every
    one), and the picture is never resampled, so it stays as sharp as it was painted."""
    width, height = board["width"], board["height"]
    fps = board["fps"]
    span = max(1, scene["frames"] + board["transition_frames"] - 1)
    spare_x, spare_y = (bg_size[0] - width) // 2, (bg_size[1] - height) // 2  # in 2-pixel steps
    across = spare_x >= spare_y
    steps = spare_x if across else spare_y
    forward = scene["zoom"][0] <= scene["zoom"][1]

    def position(frame: str) -> str:
        progress = _progress(span, offset, steps, fps, frame)
        if not forward:
            progress = f"(1-{progress})"
        return f"2*round({steps}*{progress})"

    x = position(f"round(t*{fps})") if across else str(2 * (spare_x // 2))
    y = str(2 * (spare_y // 2)) if across else position(f"round(t*{fps})")
    return f"{_drawn_frames(moving, [position])},crop={width}:{height}:'{x}':'{y}'"


def _join_pieces(pieces: list[tuple[str, int]], trans: int, fps: int, parts: list[str]) -> str:
    """Label of the scene pieces (label, frames) played one after another, each cross-fading
    into the next over its first `trans` frames.

    `xfade` costs a full-frame copy on every frame it passes, transition or not, so it gets only
    the overlapping frames: each piece is cut into head (fading in), solo and tail (fading out),
    and the solos and cross-fades are concatenated.
    """
    if len(pieces) == 1:
        return pieces[0][0]
    segments: list[str] = []
    last = len(pieces) - 1
    for k, (label, count) in enumerate(pieces):
        head, tail = (trans if k else 0), (trans if k < last else 0)
        cuts = [(name, a, b) for name, a, b in (("h", 0, head), ("s", head, count - tail), ("e", count - tail, count))
                if b > a]
        parts.append(f"[{label}]split={len(cuts)}" + "".join(f"[{label}{name}]" for name, _, _ in cuts))
        for name, a, b in cuts:
            parts.append(f"[{label}{name}]trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS[{label}{name}c]")
        if k:
            before = pieces[k - 1][0]
            parts.append(f"[{before}ec][{label}hc]xfade=transition=fade:duration={trans / fps:.6f}:offset=0[{label}x]")
            segments.append(f"{label}x")
        if count - tail > head:
            segments.append(f"{label}sc")
    parts.append("".join(f"[{s}]" for s in segments) + f"concat=n={len(segments)}:v=1:a=0[joined]")
    return "joined"


def chunk_scenes(board: dict, index: int) -> list[tuple[int, int, int]]:
    """The scenes seen in chunk `index`: (scene index, first scene frame, frame count) each; a
    scene is seen from its start to the end of its cross-fade into the next."""
    chunk = board["chunks"][index]
    c0, c1 = chunk["start_frame"], chunk["start_frame"] + chunk["frames"]
    scenes = board["scenes"]
    seen = []
    for i, scene in enumerate(scenes):
        last = i == len(scenes) - 1
        vis_start = scene["start_frame"]
        vis_end = scene["start_frame"] + scene["frames"] + (0 if last else board["transition_frames"])
        p0, p1 = max(c0, vis_start), min(c1, vis_end)
        if p1 > p0:
            seen.append((i, p0 - scene["start_frame"], p1 - p0))
    return seen


def chunk_files(board: dict, manifest: dict, index: int) -> list[str]:
    """Names of the visuals files that chunk `index` reads (a host fetches only these)."""
    names = []
    for i, _, _ in chunk_scenes(board, index):
        art = manifest["scenes"][i]
        names.append(art["clip"] if art.get("clip") else art["bg"])
        names += [layer["png"] for layer in art["layers"]]
    return names


def chunk_graph(board: dict, manifest: dict, visuals_dir: Path, index: int, checks: str = "") -> tuple[list[str], str]:
    """ffmpeg input arguments and filter graph for one chunk; output label [out]. `checks`:
    pass-through filters that look at every finished frame on its way to the encoder."""
    chunk = board["chunks"][index]
    c0, c1 = chunk["start_frame"], chunk["start_frame"] + chunk["frames"]
    fps, trans, text_in = board["fps"], board["transition_frames"], board["text_in_frames"]
    scenes = board["scenes"]
    inputs: list[str] = []
    parts: list[str] = []
    pieces: list[tuple[str, int]] = []
    for i, offset, count in chunk_scenes(board, index):
        scene = scenes[i]
        art = manifest["scenes"][i]
        bg = inputs.count("-i")
        label = f"s{i}"
        layers = art["layers"]
        if art.get("clip"):  # a scene from the user's clip (worker/pipeline/material.py)
            loop = art.get("clip_loop")
            inputs += [*own_material.clip_input(offset, fps, loop), "-i", str(visuals_dir / art["clip"])]
            parts.append(own_material.clip_chain(bg, offset, count, board, label, loop, art.get("clip_hdr", False)))
        else:
            inputs += [*STILL_INPUT, "-i", str(visuals_dir / art["bg"])]
            # Piece frames where a layer slides in, and the last frame, which `fps` repeats up to.
            moving = [(max(0, layer["start"] - offset), layer["start"] - offset + text_in) for layer in layers
                      if 0 < layer["start"] - offset + text_in and layer["start"] - offset < count]
            moving.append((count - 1, count - 1))
            camera = (_pan_chain(scene, board, offset, moving, tuple(manifest["bg_size"])) if scene.get("asset")
                      else _zoom_chain(scene, board, offset, moving))
            parts.append(
                f"[{bg}:v]format=yuv420p,loop=loop={count - 1}:size=1:start=0,settb=expr=1/{fps},setpts=N,fps={fps},"
                f"{camera}[{label}b0]"
            )
        current = f"{label}b0"
        for k, layer in enumerate(layers):
            src = inputs.count("-i")
            inputs += [*STILL_INPUT, "-i", str(visuals_dir / layer["png"])]
            chain = f"[{src}:v]format=yuva420p,loop=loop={count - 1}:size=1:start=0,settb=expr=1/{fps},setpts=N,fps={fps}"
            start = layer["start"] - offset  # frames from the start of this piece
            if start + text_in <= 0:
                y = str(layer["y"])
            else:
                chain += f",fade=t=in:st={start / fps:.6f}:d={text_in / fps:.6f}:alpha=1"
                progress = f"clip((t-{start / fps:.6f})/{text_in / fps:.6f},0,1)"
                y = f"{layer['y']}+{layer['slide']}*pow(1-{progress},3)"
            parts.append(f"{chain}[{label}t{k}]")
            nxt = f"{label}b{k + 1}"
            parts.append(f"[{current}][{label}t{k}]overlay=x={layer['x']}:y='{y}':eval=frame:format=yuv420[{nxt}]")
            current = nxt
        if not art.get("clip"):
            parts.append(f"[{current}]fps={fps}[{label}f]")
            current = f"{label}f"
        pieces.append((current, count))
    stream = _join_pieces(pieces, trans, fps, parts)
    # Frame n of the chunk at n/fps. A piece of one frame (a chunk that starts on a scene's last
    # frame before its cross-fade) has no duration for `concat` to add, so the next piece started
    # on its timestamp; two frames with one timestamp made x264 start the chunk one frame late in
    # decode order, and the join repeated a timestamp at the boundary.
    tail = [f"settb=expr=1/{fps},setpts=N"]
    if c0 == 0:
        tail.append(f"fade=t=in:st=0:d={board['fade_in_frames'] / fps:.6f}")
    if c1 == board["total_frames"]:
        fade_out = board["fade_out_frames"]
        tail.append(f"fade=t=out:st={(c1 - c0 - fade_out) / fps:.6f}:d={fade_out / fps:.6f}")
    # Square pixels, written into every chunk's parameter sets alike (a clip's chain sets them, a
    # still's did not, and the joined video keeps the first chunk's).
    tail.append("setsar=1,format=yuv420p")
    if checks:
        tail.append(checks)
    parts.append(f"[{stream}]{','.join(tail)}[out]")
    return inputs, ";\n".join(parts)


def visuals_dir(board: dict, work_dir: Path) -> Path:
    """Where the visuals stage keeps this storyboard's stills."""
    return Path(work_dir) / f"visuals-{stage_key(board, 'visuals')}"


def chunk_path(board: dict, index: int, work_dir: Path) -> Path:
    """Artifact path of one rendered chunk."""
    return Path(work_dir) / f"chunk{index:03d}-{stage_key(board, 'render', index)}.mp4"


def chunk_runs_path(board: dict, index: int, work_dir: Path) -> Path:
    """The black and frozen runs of a rendered chunk (probe.chunk_runs), written before it."""
    return chunk_path(board, index, work_dir).with_suffix(".json")


def render_chunk(board: dict, index: int, work_dir: Path, progress, cancelled, threads: int | None = None) -> Path:
    """Encode chunk `index` (exact frame count, starts on a keyframe); cached by content. ffmpeg
    uses `threads` threads for the filters and for x264 (default: every core this process may use)."""
    work_dir = Path(work_dir)
    final = chunk_path(board, index, work_dir)
    chunk = board["chunks"][index]
    frames = chunk["frames"]
    if final.is_file():
        progress(1.0, f"Chunk {index + 1}/{len(board['chunks'])} ready (cached)")
        return final
    manifest = render_visuals(board, work_dir, lambda *_: None, cancelled)
    # The quality gate's black and frozen runs are found on the frames as they go to the encoder
    # (blackdetect and freezedetect pass each frame on), so no one decodes the chunk again to check
    # it; the assembly joins them across boundaries (probe.stretches_over_limits). Not on a branch
    # of their own: a `split` to a `nullsink` queued every frame of the chunk (2.2 GB at 4K).
    edge = chunk_edge(board["fps"])
    inputs, graph = chunk_graph(board, manifest, visuals_dir(board, work_dir), index, detect_filters(edge, edge))
    graph_file = temp_path(final.with_suffix(".graph.txt"))
    graph_file.write_text(graph, encoding="utf-8")
    tmp = temp_path(final)
    threads = threads or allotted_cores()
    label = f"chunk {index + 1}/{len(board['chunks'])}"

    def on_frames(done: int) -> None:
        progress(done / frames, f"Rendering video {chunk['start_frame'] + done}/{board['total_frames']} frames ({label})")

    progress(0.0, f"Rendering video {chunk['start_frame']}/{board['total_frames']} frames ({label})")
    found = StretchLog()
    try:
        run_ffmpeg(
            [*filter_thread_args(threads), *inputs, "-/filter_complex", str(graph_file),
             "-map", "[out]", "-frames:v", str(frames), "-fps_mode", "passthrough",
             *encoder_args(board, threads, motion_chunk(board, manifest, index)), "-an", "-f", "mp4", str(tmp)],
            "render", cancelled, total_frames=frames, on_frames=on_frames, partial=[tmp], env=render_env(board),
            on_err_line=found,
        )
        write_json_atomic(chunk_runs_path(board, index, work_dir), chunk_runs(found.stretches(), board["fps"], frames))
        os.replace(tmp, final)
    finally:
        remove_quietly(graph_file)
        remove_quietly(tmp)
    progress(1.0, f"Rendered {label}")
    return final


def _file_entry(kind: str, path: Path, mime: str, **extra) -> dict:
    return {"kind": kind, "name": path.name, "size": path.stat().st_size, "mime": mime, **extra}


def poster_time(board: dict) -> float:
    """Seconds into the video of the poster: the first keyword scene once its caption has settled."""
    scene = board["scenes"][1] if len(board["scenes"]) > 2 else board["scenes"][0]
    frame = scene["start_frame"] + min(scene["frames"] - 1, scene["caption_in"] + 2 * board["text_in_frames"])
    return frame / board["fps"]


def assemble(board: dict, work_dir: Path, out_dir: Path, progress, cancelled) -> dict:
    """Join the chunks without re-encoding, mux the audio, write poster, thumbnail and subtitles."""
    from .audio import render_audio

    work_dir, out_dir = Path(work_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = stage_key(board, "assemble")
    result_path = work_dir / f"assemble-{key}.json"
    names = {"video": "video.mp4", "poster": "poster.jpg", "thumbnail": "thumb.jpg",
             "srt": "subtitles.srt", "vtt": "subtitles.vtt"}
    if result_path.is_file() and all((out_dir / n).is_file() for n in names.values()):
        progress(1.0, "Video ready (cached)")
        return json.loads(result_path.read_text(encoding="utf-8"))

    chunks = [chunk_path(board, c["index"], work_dir) for c in board["chunks"]]
    missing = [p.name for p in chunks if not p.is_file()]
    if missing:
        raise PipelineError(f"chunks not rendered: {', '.join(missing)}", "assemble")
    audio = render_audio(board, work_dir, lambda *_: None, cancelled)
    fps, total = board["fps"], board["total_frames"]
    duration = total / fps

    concat_list = temp_path(work_dir / f"concat-{key}.txt")
    concat_list.write_text("".join(f"file '{p.resolve()}'\n" for p in chunks), encoding="utf-8")
    video_tmp = temp_path(out_dir / names["video"])
    progress(0.05, "Joining chunks")
    try:
        run_ffmpeg(
            ["-f", "concat", "-safe", "0", "-i", str(concat_list), "-i", audio["aac"],
             "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "copy",
             "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", str(video_tmp)],
            "assemble", cancelled, total_frames=total,
            on_frames=lambda done: progress(0.05 + 0.35 * done / total, f"Muxing {done}/{total} frames"),
            partial=[video_tmp],
        )
        progress(0.45, "Checking the video")
        runs = [chunk_runs_path(board, c["index"], work_dir) for c in board["chunks"]]
        chunk_runs = ([json.loads(path.read_text(encoding="utf-8")) for path in runs]
                      if all(path.is_file() for path in runs) else None)
        info = quality_gate(video_tmp, board, cancelled, chunk_runs)
        progress(0.85, "Writing poster and thumbnail")
        poster_tmp = temp_path(out_dir / names["poster"])
        if cancelled():
            raise Cancelled("assemble cancelled")
        poster = Image.fromarray(grab_frame(video_tmp, poster_time(board)))
        poster.save(poster_tmp, "JPEG", quality=90)
        thumb_tmp = temp_path(out_dir / names["thumbnail"])
        thumb_height = max(2, round(poster.height * THUMB_WIDTH / poster.width))
        poster.resize((THUMB_WIDTH, thumb_height), Image.Resampling.BILINEAR).save(thumb_tmp, "JPEG", quality=85)
        for kind in ("srt", "vtt"):
            tmp = temp_path(out_dir / names[kind])
            shutil.copyfile(audio[kind], tmp)
            os.replace(tmp, out_dir / names[kind])
        os.replace(thumb_tmp, out_dir / names["thumbnail"])
        os.replace(poster_tmp, out_dir / names["poster"])
        os.replace(video_tmp, out_dir / names["video"])
    finally:
        remove_quietly(concat_list)
        remove_quietly(video_tmp)
        for leftover in out_dir.glob(".tmp-*"):
            remove_quietly(leftover)

    width, height = board["width"], board["height"]
    with Image.open(out_dir / names["thumbnail"]) as thumb:
        thumb_size = thumb.size
    result = {
        "duration": round(info["duration"], 3),
        "width": width,
        "height": height,
        "fps": fps,
        "video": names["video"],
        "poster": names["poster"],
        "thumbnail": names["thumbnail"],
        "subtitles": {"srt": names["srt"], "vtt": names["vtt"]},
        "lang": board["lang"],
        "files": [
            _file_entry("video", out_dir / names["video"], "video/mp4", duration=round(info["duration"], 3),
                        width=width, height=height),
            _file_entry("poster", out_dir / names["poster"], "image/jpeg", width=width, height=height),
            _file_entry("thumbnail", out_dir / names["thumbnail"], "image/jpeg", width=thumb_size[0],
                        height=thumb_size[1]),
            _file_entry("srt", out_dir / names["srt"], "application/x-subrip"),
            _file_entry("vtt", out_dir / names["vtt"], "text/vtt"),
        ],
    }
    write_json_atomic(result_path, result)
    progress(1.0, "Video ready")
    return result


__all__ = ["assemble", "chunk_files", "chunk_graph", "chunk_runs_path", "chunk_scenes", "encoder_args",
           "filter_thread_args", "large_frames", "poster_time", "probe_media", "render_chunk", "render_env"]
