"""Reading media files with the project's ffmpeg/ffprobe, for the web app and the worker alike.

The web app must not import `worker`; this module imports neither. It finds the tools the way the
pipeline does: `ffprobe` on PATH, and the ffmpeg binary imageio-ffmpeg ships.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

PROBE_TIMEOUT = 60


class ProbeError(Exception):
    """A file ffprobe/ffmpeg cannot read."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffprobe_exe() -> str | None:
    return shutil.which("ffprobe")


def _rate(text: str | None) -> float | None:
    num, _sep, den = (text or "0/1").partition("/")
    try:
        return float(num) / float(den) if den and float(den) else None
    except ValueError:
        return None


def probe(path: Path | str) -> dict[str, Any]:
    """Container format, duration and every stream (type, codec, size, rate, attached picture)."""
    exe = ffprobe_exe()
    if exe is None:
        raise ProbeError("ffprobe is not installed")
    try:
        result = subprocess.run([exe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                                capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError("ffprobe took too long") from exc
    if result.returncode != 0:
        raise ProbeError(result.stderr.strip()[-300:] or "ffprobe failed")
    data = json.loads(result.stdout or "{}")
    fmt = data.get("format") or {}
    streams = []
    for s in data.get("streams", []):
        streams.append({
            "type": s.get("codec_type"),
            "codec": s.get("codec_name"),
            "width": s.get("width"),
            "height": s.get("height"),
            "fps": _rate(s.get("avg_frame_rate") or s.get("r_frame_rate")),
            "sample_rate": int(s["sample_rate"]) if s.get("sample_rate") else None,
            "channels": s.get("channels"),
            "duration": float(s["duration"]) if s.get("duration") not in (None, "N/A") else None,
            "attached_pic": bool((s.get("disposition") or {}).get("attached_pic")),
            "rotation": _rotation(s),
            "transfer": s.get("color_transfer"),
        })
    duration = fmt.get("duration")
    return {
        "format": fmt.get("format_name") or "",
        "duration": float(duration) if duration not in (None, "N/A") else None,
        "streams": streams,
    }


def _rotation(stream: dict[str, Any]) -> int:
    for item in stream.get("side_data_list") or []:
        if "rotation" in item:
            return int(item["rotation"])
    return int((stream.get("tags") or {}).get("rotate", 0) or 0)


def video_stream(info: dict[str, Any]) -> dict[str, Any] | None:
    """The first real video stream (not an album cover)."""
    return next((s for s in info["streams"] if s["type"] == "video" and not s["attached_pic"]), None)


def audio_stream(info: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in info["streams"] if s["type"] == "audio"), None)


def run_ffmpeg(args: list[str], timeout: int = 120) -> None:
    """Run ffmpeg with `args`; raise ProbeError with the end of its log on failure."""
    try:
        result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError("ffmpeg took too long") from exc
    if result.returncode != 0:
        raise ProbeError(result.stderr.strip()[-300:] or "ffmpeg failed")


#: Transfer functions of HDR video: HLG (what phones record by default) and PQ (HDR10).
HDR_TRANSFERS = {"arib-std-b67": "HLG", "smpte2084": "PQ"}

#: Filters that bring an HDR picture to SDR BT.709. Light is made linear with the reference white
#: of BT.2408 (203 cd/m2) as 1.0 and mapped from the BT.2020 primaries to BT.709 in one pass, and
#: the mobius curve keeps everything up to that white nearly as it is and folds only the
#: highlights above it (clipping them instead would take about a third of the chain's time, and
#: blow out skies and lamps). Without it an HDR clip's BT.2020 values are read as BT.709: pale, greyish
#: colours, and a PQ clip also much too dark.
TO_SDR = ("zscale=t=linear:npl=203:p=bt709,format=gbrpf32le,"
          "tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv")


def is_hdr(stream: dict[str, Any] | None) -> bool:
    """Whether a video stream from `probe` carries HDR (HLG or PQ) pictures."""
    return bool(stream) and stream.get("transfer") in HDR_TRANSFERS


def poster_frame(src: Path, dest: Path, at: float, width: int = 320, hdr: bool = False) -> None:
    """One frame of a clip at `at` seconds, scaled to `width` (and brought to SDR), as JPEG."""
    run_ffmpeg(["-ss", f"{max(0.0, at):.3f}", "-i", str(src), "-frames:v", "1",
                "-vf", f"scale={width}:-2" + (f",{TO_SDR}" if hdr else ""), "-q:v", "4", str(dest)])


def waveform(src: Path, dest: Path, size: str = "320x180") -> None:
    """A picture of an audio file's waveform, as JPEG on a dark background."""
    run_ffmpeg(["-i", str(src), "-filter_complex",
                f"[0:a]aformat=channel_layouts=mono,showwavespic=s={size}:colors=0x4cc2ff[w];"
                f"color=c=0x1d2330:s={size}[bg];[bg][w]overlay=format=auto",
                "-frames:v", "1", "-q:v", "4", str(dest)])
