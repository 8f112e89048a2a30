"""Probing media files and the quality gate run after assembly."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

from .errors import PipelineError
from .material import inside_asset_scenes
from .proc import die_with_parent, ffmpeg_exe, run_child


def probe_media(path) -> dict:
    """Duration, size, pix_fmt/profile/sample rate and codec of every stream of a media file."""
    path = str(path)
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        result = subprocess.run(
            [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", path],
            capture_output=True, text=True, timeout=60, check=False, preexec_fn=die_with_parent(),
        )
        if result.returncode != 0:
            raise PipelineError(f"ffprobe cannot read {path}: {result.stderr.strip()[-300:]}", "probe")
        return _from_ffprobe(json.loads(result.stdout))
    return _from_ffmpeg_banner(path)


def _from_ffprobe(data: dict) -> dict:
    streams = []
    for s in data.get("streams", []):
        rate = s.get("avg_frame_rate") or s.get("r_frame_rate") or "0/1"
        num, _, den = rate.partition("/")
        streams.append({
            "type": s.get("codec_type"),
            "codec": s.get("codec_name"),
            "profile": s.get("profile"),
            "pix_fmt": s.get("pix_fmt"),
            "width": s.get("width"),
            "height": s.get("height"),
            "fps": float(num) / float(den) if den and float(den) else None,
            "sample_rate": int(s["sample_rate"]) if s.get("sample_rate") else None,
            "channels": s.get("channels"),
            "duration": float(s["duration"]) if s.get("duration") else None,
            "frames": int(s["nb_frames"]) if s.get("nb_frames", "").isdigit() else None,
        })
    return _summary(float(data.get("format", {}).get("duration") or 0.0), streams,
                    data.get("format", {}).get("format_name"))


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+.*?: (Video|Audio): (\w+)(?: \(([^)]*)\))?(.*)")


def _from_ffmpeg_banner(path: str) -> dict:
    """Fallback when ffprobe is absent: parse the banner `ffmpeg -i` prints."""
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", path], capture_output=True, text=True,
                          timeout=60, check=False).stderr
    match = _DURATION.search(text)
    if not match:
        raise PipelineError(f"cannot read {path}: {text.strip()[-300:]}", "probe")
    duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    streams = []
    for kind, codec, profile, rest in _STREAM.findall(text):
        size = re.search(r"(\d{2,5})x(\d{2,5})", rest)
        rate = re.search(r"(\d+) Hz", rest)
        fps = re.search(r"([\d.]+) fps", rest)
        pix = re.search(r", (yuv\w+|rgb\w+|gray\w*)", rest)
        streams.append({
            "type": kind.lower(), "codec": codec, "profile": profile or None,
            "pix_fmt": pix.group(1) if pix else None,
            "width": int(size.group(1)) if size and kind == "Video" else None,
            "height": int(size.group(2)) if size and kind == "Video" else None,
            "fps": float(fps.group(1)) if fps else None,
            "sample_rate": int(rate.group(1)) if rate else None,
            "channels": None, "duration": None, "frames": None,
        })
    return _summary(duration, streams, None)


def _summary(duration: float, streams: list[dict], format_name) -> dict:
    video = next((s for s in streams if s["type"] == "video"), {})
    audio = next((s for s in streams if s["type"] == "audio"), {})
    return {
        "duration": duration,
        "format": format_name,
        "width": video.get("width"),
        "height": video.get("height"),
        "fps": video.get("fps"),
        "video_codec": video.get("codec"),
        "profile": video.get("profile"),
        "pix_fmt": video.get("pix_fmt"),
        "audio_codec": audio.get("codec"),
        "sample_rate": audio.get("sample_rate"),
        "streams": streams,
    }


def top_level_atoms(path) -> list[str]:
    """Types of the top-level MP4 boxes in file order (to check moov precedes mdat)."""
    atoms = []
    with open(path, "rb") as fh:
        while True:
            header = fh.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
                fh.seek(size - 16, 1)
            elif size == 0:
                atoms.append(kind.decode("latin-1"))
                break
            else:
                fh.seek(size - 8, 1)
            atoms.append(kind.decode("latin-1"))
    return atoms


def count_video_frames(path) -> int | None:
    """Exact number of video packets (demux only, fast); None without ffprobe."""
    ffprobe = shutil.which("ffprobe")
    if not ffprobe:
        return None
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=120, check=False, preexec_fn=die_with_parent(),
    ).stdout.strip()
    return int(out) if out.isdigit() else None


_BLACK = re.compile(r"black_start:([\d.]+) black_end:([\d.]+) black_duration:([\d.]+)")
_FREEZE_START = re.compile(r"freeze_start: ([\d.]+)")
_FREEZE_DURATION = re.compile(r"freeze_duration: ([\d.]+)")


#: The gate's limits: a black stretch longer than MAX_BLACK or a frozen one longer than MAX_FREEZE
#: seconds fails the video (unless it lies within the user's own material).
MAX_BLACK, MAX_FREEZE = 1.0, 2.0
#: Frames closer than this (freezedetect's mean absolute difference) count as the same picture. A
#: stalled picture repeats frames exactly (difference 0); one zoom step of a smooth 3840x2160
#: background differs by about -62 dB, so -60 dB took a slow 4K zoom for a freeze.
FREEZE_NOISE = "-70dB"


def detect_filters(max_black: float = MAX_BLACK, max_freeze: float = MAX_FREEZE) -> str:
    """The filters that report black and frozen stretches (on ffmpeg's log, at the info level)."""
    return f"blackdetect=d={max_black}:pix_th=0.10,freezedetect=n={FREEZE_NOISE}:d={max_freeze}"


class StretchLog:
    """Collects the black and frozen stretches that `detect_filters` report, line by line (give it
    as `on_err_line`). Every line counts: a chunk of slow zoom has scores of short frozen runs,
    more than any tail of the log keeps."""

    def __init__(self, shift: float = 0.0):
        self.shift = shift
        self.black: list[tuple[float, float]] = []
        self.starts: list[float] = []
        self.durations: list[float] = []

    def __call__(self, line: str) -> None:
        if "black_start" in line:
            self.black += [(float(a) + self.shift, float(d)) for a, _b, d in _BLACK.findall(line)]
        elif "freeze_" in line:
            self.starts += [float(x) + self.shift for x in _FREEZE_START.findall(line)]
            self.durations += [float(x) for x in _FREEZE_DURATION.findall(line)]

    def stretches(self) -> dict:
        """{"black": [(start, duration)], "frozen": [...]}; a frozen stretch still open at the end
        has an infinite duration."""
        frozen = [(s, self.durations[i] if i < len(self.durations) else float("inf"))
                  for i, s in enumerate(self.starts)]
        return {"black": list(self.black), "frozen": frozen}


def detect_black_and_frozen(path, cancelled, max_black: float = MAX_BLACK, max_freeze: float = MAX_FREEZE,
                            start: float | None = None, seconds: float | None = None) -> dict:
    """Run blackdetect + freezedetect over the video (or `seconds` of it from `start`); lists of
    (start, duration) stretches in the video's time. A stretch still open at the end has an
    infinite duration."""
    window = [] if start is None else ["-ss", f"{max(0.0, start):.6f}", "-t", f"{seconds:.6f}"]
    found = StretchLog(shift=max(0.0, start or 0.0))
    run_child(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "info", *window, "-i", str(path), "-an",
         "-vf", detect_filters(max_black, max_freeze), "-f", "null", "-"],
        "assemble", cancelled, on_err_line=found,
    )
    return found.stretches()


def chunk_edge(fps: int) -> float:
    """The shortest run a chunk records (1.5 frames), so that runs meeting at a boundary can be joined."""
    return 1.5 / fps


def chunk_runs(found: dict, fps: int, frames: int) -> dict:
    """A chunk's runs as the gate joins them (`joined_stretches`): {"seconds", "black":
    [(start, duration)], "frozen": [...]}, an open run cut at the chunk's end."""
    seconds = frames / fps
    return {"seconds": seconds,
            **{kind: [(s, min(d, seconds - s)) for s, d in found[kind]] for kind in ("black", "frozen")}}


def chunk_stretches(path, fps: int, frames: int, cancelled) -> dict:
    """Every black and frozen run of an encoded chunk file that lasts 1.5 frames or more (the render
    finds them on the frames it encodes, `compose.render_chunk`; this decodes a file)."""
    edge = chunk_edge(fps)
    return chunk_runs(detect_black_and_frozen(path, cancelled, max_black=edge, max_freeze=edge), fps, frames)


def joined_stretches(parts: list[dict], fps: int) -> dict:
    """The runs of every chunk (in order) in the video's time, a run that reaches the end of one
    chunk joined with one that starts the next. {"black": [(start, duration)], "frozen":
    [(start, duration, pieces)]}, pieces being the durations that were joined.

    Blackness is a property of each frame, so joined black runs are exact. Whether a frozen run
    goes on across a boundary depends on the two frames on either side, which no chunk saw
    together: `stretches_over_limits` checks such a run on the video itself when it matters."""
    tol = 1.5 / fps
    out: dict[str, list] = {}
    for kind in ("black", "frozen"):
        runs: list[list] = []  # [start, end, pieces]
        offset = 0.0
        for part in parts:
            for s, d in part[kind]:
                if runs and s <= tol and abs(runs[-1][1] - offset) <= tol and offset > 0:
                    runs[-1][1] = offset + s + d
                    runs[-1][2].append(d)
                else:
                    runs.append([offset + s, offset + s + d, [d]])
            offset += part["seconds"]
        out[kind] = [(a, b - a, pieces) for a, b, pieces in runs]
    return {"black": [(a, d) for a, d, _ in out["black"]], "frozen": out["frozen"]}


def stretches_over_limits(path, parts: list[dict], fps: int, cancelled) -> dict:
    """The gate's black and frozen stretches from the chunks' runs: those over the limits. A frozen
    run joined across a boundary whose pieces are each within the limit is checked on `path`
    (the joined video, from a little before it to a little after), which decides it exactly."""
    joined = joined_stretches(parts, fps)
    black = [(s, d) for s, d in joined["black"] if d >= MAX_BLACK]
    frozen = []
    for s, d, pieces in joined["frozen"]:
        if d < MAX_FREEZE:
            continue
        if len(pieces) == 1 or max(pieces) >= MAX_FREEZE:
            frozen.append((s, d))
            continue
        margin = 2.0 / fps
        window = detect_black_and_frozen(path, cancelled, start=s - margin, seconds=d + 2 * margin)
        frozen += [(a, b) for a, b in window["frozen"] if a < s + d and a + b > s]
    return {"black": black, "frozen": frozen}


def quality_gate(path: Path, board: dict, cancelled, chunk_runs: list[dict] | None = None) -> dict:
    """Check streams, duration, resolution, frame count, moov placement, black and frozen stretches
    (from the chunks' own runs, `chunk_runs`, when every chunk has them; else by decoding `path`)."""
    info = probe_media(path)
    problems = []
    fps, total = board["fps"], board["total_frames"]
    expected = total / fps
    if info["video_codec"] != "h264" or (info["profile"] or "").lower() != "high":
        problems.append(f"video is {info['video_codec']} {info['profile']}, expected h264 High")
    if info["pix_fmt"] != "yuv420p":
        problems.append(f"pixel format {info['pix_fmt']}, expected yuv420p")
    if info["audio_codec"] != "aac" or info["sample_rate"] != 48000:
        problems.append(f"audio is {info['audio_codec']} at {info['sample_rate']} Hz, expected AAC 48000 Hz")
    if (info["width"], info["height"]) != (board["width"], board["height"]):
        problems.append(f"resolution {info['width']}x{info['height']}, expected {board['width']}x{board['height']}")
    if abs(info["duration"] - expected) > 1.0 / fps + 1e-3:
        problems.append(f"duration {info['duration']:.3f} s, expected {expected:.3f} s (within one frame)")
    frames = count_video_frames(path)
    if frames is not None and frames != total:
        problems.append(f"{frames} video frames, expected {total}")
    atoms = top_level_atoms(path)
    if "moov" not in atoms or "mdat" not in atoms or atoms.index("moov") > atoms.index("mdat"):
        problems.append(f"moov atom is not before mdat ({atoms})")
    if not problems:
        if chunk_runs is not None:
            found = stretches_over_limits(path, chunk_runs, fps, cancelled)
        else:
            found = detect_black_and_frozen(path, cancelled)
        # A stretch inside the user's own material is theirs: a still shot stands still, a night
        # shot or a fade in their clip is dark. Procedural scenes never are.
        problems += [f"{kind} stretch of {d:.2f} s at {s:.2f} s" for kind in ("black", "frozen")
                     for s, d in found[kind] if not inside_asset_scenes(board, s, d)]
    if problems:
        raise PipelineError("quality gate failed: " + "; ".join(problems), "assemble")
    return info
