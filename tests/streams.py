"""What an encoded MP4 says about how it was encoded, read from its bytes."""

from __future__ import annotations

from pathlib import Path


def x264_options(video: Path) -> set[str]:
    """The options x264 wrote into the stream's SEI, e.g. {"subme=2", "me=hex", "bframes=3", ...}."""
    data = Path(video).read_bytes()
    start = data.index(b"x264 - core")
    return set(data[start:data.index(b"\0", start)].decode().split())


def parameter_sets(video: Path) -> bytes:
    """The avcC box of an MP4 (its SPS and PPS), which a stream-copy join takes from the first file."""
    data = Path(video).read_bytes()
    at = data.index(b"avcC")
    return data[at:at - 4 + int.from_bytes(data[at - 4:at], "big")]
