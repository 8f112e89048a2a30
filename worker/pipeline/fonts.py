"""Font discovery and per-glyph coverage, from the fonts' own cmap tables."""

from __future__ import annotations

import bisect
import functools
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from .errors import BadBrief, PipelineError

# Preferred faces, most specific first: (family as fontconfig names it, known paths with face index).
_REGULAR = [
    ("Noto Sans CJK SC", [("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2)]),
    ("WenQuanYi Micro Hei", [("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0)]),
    ("DejaVu Sans", [("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0)]),
]
_BOLD = [
    ("Noto Sans CJK SC:style=Bold", [("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2)]),
    ("WenQuanYi Micro Hei", [("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0)]),
    ("DejaVu Sans:style=Bold", [("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0)]),
]


class MissingGlyph(BadBrief):
    """No font in the chain can draw a character (we never draw tofu); retrying cannot help."""

    def __init__(self, char: str) -> None:
        super().__init__(f"no installed font has a glyph for {char!r} (U+{ord(char):04X})", "visuals")
        self.char = char


def _u16(data: bytes, pos: int) -> int:
    return struct.unpack_from(">H", data, pos)[0]


def _u32(data: bytes, pos: int) -> int:
    return struct.unpack_from(">I", data, pos)[0]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _format4(data: bytes, pos: int) -> list[tuple[int, int]]:
    seg_count = _u16(data, pos + 6) // 2
    ends = pos + 14
    starts = ends + 2 * seg_count + 2
    deltas = starts + 2 * seg_count
    range_offsets = deltas + 2 * seg_count
    covered: list[tuple[int, int]] = []
    for seg in range(seg_count):
        end = _u16(data, ends + 2 * seg)
        start = _u16(data, starts + 2 * seg)
        delta = _u16(data, deltas + 2 * seg)
        ro_pos = range_offsets + 2 * seg
        range_offset = _u16(data, ro_pos)
        if start == 0xFFFF:
            continue
        if range_offset == 0:
            for code in range(start, end + 1):
                if (code + delta) & 0xFFFF:
                    covered.append((code, code))
            continue
        for code in range(start, end + 1):
            glyph_pos = ro_pos + range_offset + 2 * (code - start)
            if glyph_pos + 2 <= len(data) and _u16(data, glyph_pos):
                covered.append((code, code))
    return covered


def _format12(data: bytes, pos: int) -> list[tuple[int, int]]:
    groups = _u32(data, pos + 12)
    covered = []
    for group in range(groups):
        start, end, glyph = struct.unpack_from(">III", data, pos + 16 + 12 * group)
        if glyph == 0:
            start += 1  # code mapped to .notdef is not covered
        if start <= end:
            covered.append((start, end))
    return covered


@functools.lru_cache(maxsize=16)
def cmap_ranges(path: str, index: int = 0) -> tuple[tuple[int, int], ...]:
    """Codepoint ranges that a font face maps to a real glyph (cmap format 4 / 12)."""
    data = Path(path).read_bytes()
    base = 0
    if data[:4] == b"ttcf":
        base = _u32(data, 12 + 4 * index)
    num_tables = _u16(data, base + 4)
    cmap = None
    for table in range(num_tables):
        rec = base + 12 + 16 * table
        if data[rec:rec + 4] == b"cmap":
            cmap = _u32(data, rec + 8)
    if cmap is None:
        return ()
    subtables = {}
    for rec in range(_u16(data, cmap + 2)):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * rec)
        subtables[(platform, encoding)] = cmap + offset
    for key in [(3, 10), (0, 6), (0, 4)]:
        if key in subtables and _u16(data, subtables[key]) == 12:
            return tuple(_merge(_format12(data, subtables[key])))
    for key in [(3, 1), (0, 3), (0, 1), (0, 0)]:
        if key in subtables and _u16(data, subtables[key]) == 4:
            return tuple(_merge(_format4(data, subtables[key])))
    return ()


@dataclass(frozen=True)
class Face:
    """One font file and face index, with its coverage."""

    path: str
    index: int

    @functools.cached_property
    def _starts(self) -> list[int]:
        return [start for start, _end in cmap_ranges(self.path, self.index)]

    def covers(self, char: str) -> bool:
        """True when the face maps `char` to a real glyph."""
        code = ord(char)
        ranges = cmap_ranges(self.path, self.index)
        pos = bisect.bisect_right(self._starts, code) - 1
        return pos >= 0 and ranges[pos][0] <= code <= ranges[pos][1]

    def at(self, size: int) -> ImageFont.FreeTypeFont:
        """A Pillow font of this face at a pixel size."""
        return _pillow_font(self.path, self.index, size)


@functools.lru_cache(maxsize=256)
def _pillow_font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size, index=index, layout_engine=ImageFont.Layout.BASIC)


def _fc_lookup(pattern: str) -> tuple[str, int] | None:
    """Ask fontconfig for a face; accept it only when its family matches the request."""
    if not shutil.which("fc-match"):
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}|%{index}|%{family}", pattern],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.split("|")
    family = pattern.split(":")[0].lower()
    if len(parts) == 3 and family in parts[2].lower() and Path(parts[0]).is_file():
        return parts[0], int(parts[1] or 0)
    return None


def _find_chain(table: list[tuple[str, list[tuple[str, int]]]]) -> tuple[Face, ...]:
    faces: list[Face] = []
    for pattern, known in table:
        found = next(((p, i) for p, i in known if Path(p).is_file()), None) or _fc_lookup(pattern)
        if found and Face(*found) not in faces:
            faces.append(Face(*found))
    return tuple(faces)


@functools.lru_cache(maxsize=2)
def font_chain(bold: bool = False) -> tuple[Face, ...]:
    """Installed faces in fallback order; raises when none is found."""
    chain = _find_chain(_BOLD if bold else _REGULAR) or _find_chain(_REGULAR)
    if not chain:
        raise PipelineError("no usable font found (install fonts-noto-cjk or fonts-wqy-microhei)", "visuals")
    return chain


def face_for(char: str, chain: tuple[Face, ...]) -> Face:
    """The first face of the chain that has a glyph for `char`; MissingGlyph otherwise."""
    if char in "\n\t":
        return chain[0]
    for face in chain:
        if face.covers(char):
            return face
    raise MissingGlyph(char)


def check_coverage(text: str, chain: tuple[Face, ...]) -> None:
    """Raise MissingGlyph for the first character no face of the chain can draw."""
    for char in text:
        face_for(char, chain)


def runs(text: str, chain: tuple[Face, ...]) -> list[tuple[Face, str]]:
    """Split text into runs drawn with one face each."""
    out: list[tuple[Face, str]] = []
    for char in text:
        face = face_for(char, chain)
        # Spaces ride along with the current run so a run change never happens on a space.
        if out and (out[-1][0] == face or char == " "):
            out[-1] = (out[-1][0], out[-1][1] + char)
        else:
            out.append((face, char))
    return out
