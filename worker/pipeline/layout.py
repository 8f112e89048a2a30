"""Text wrapping (CJK line-breaking rules included), fitting and drawing of text layers."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

from .fonts import Face, check_coverage, runs

# Characters that must not begin a line (closing brackets, trailing punctuation, small kana).
NO_START = set("，。、！？；：）」』】》〉〕］｝”’…‥—～・·,.!?;:)]}%‰°′″ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々ー")
# Characters that must not end a line (opening brackets and quotes).
NO_END = set("（「『【《〈〔［｛“‘([{")

_TOKEN = re.compile(r"[A-Za-z0-9\u00C0-\u024F'’_\-/.,:;!?%&+]+|\s+|.", re.S)
LINE_SPACING = 1.35
ELLIPSIS = "…"


def pad_for(size: int) -> int:
    """Transparent margin around drawn text (room for the shadow and glyph overshoot)."""
    return int(math.ceil(size * 0.25))


def tokenize(text: str) -> list[str]:
    """Break opportunities: Latin words stay whole, CJK characters stand alone."""
    return _TOKEN.findall(" ".join(text.split()))


def text_width(text: str, chain: tuple[Face, ...], size: int) -> float:
    """Advance width of `text` drawn with the font chain at `size` pixels."""
    return sum(face.at(size).getlength(part) for face, part in runs(text, chain))


def _split_long(token: str, chain: tuple[Face, ...], size: int, max_width: float) -> list[str]:
    pieces, current = [], ""
    for char in token:
        if current and text_width(current + char, chain, size) > max_width:
            carry = ""
            if char in NO_START and len(current) > 1:
                current, carry = current[:-1], current[-1]
            pieces.append(current)
            current = carry + char
        else:
            current += char
    return pieces + ([current] if current else [])


def wrap(text: str, chain: tuple[Face, ...], size: int, max_width: float) -> list[str]:
    """Greedy wrap to `max_width` pixels honouring the no-start / no-end punctuation rules."""
    lines: list[list[str]] = [[]]
    widths: dict[str, float] = {}

    def width_of(tokens: list[str]) -> float:
        joined = "".join(tokens).rstrip()
        if joined not in widths:
            widths[joined] = text_width(joined, chain, size)
        return widths[joined]

    queue = tokenize(text)
    while queue:
        token = queue.pop(0)
        line = lines[-1]
        if token.isspace():
            if line:
                line.append(" ")
            continue
        if width_of(line + [token]) <= max_width:
            line.append(token)
            continue
        if not "".join(line).strip():
            # A single token wider than the line: break it between characters.
            pieces = _split_long(token, chain, size, max_width)
            line[:] = [pieces[0]]
            queue[:0] = pieces[1:]
            if len(pieces) > 1:
                lines.append([])
            continue
        while line and line[-1].isspace():
            line.pop()
        if width_of([token]) > max_width:
            # Too wide for any line: start a fresh line and break it there.
            lines.append([])
            queue.insert(0, token)
            continue
        new = [token]
        # Pull characters down so the new line does not start with closing punctuation.
        while new[0][0] in NO_START and len(line) > 1:
            new.insert(0, line.pop())
            while line and line[-1].isspace():
                line.pop()
        # Push opening brackets down so the old line does not end with one.
        while len(line) > 1 and line[-1][-1] in NO_END:
            new.insert(0, line.pop())
        lines.append(new)
    return ["".join(line).strip() for line in lines if "".join(line).strip()]


@dataclass
class FittedText:
    """Wrapped lines at a chosen size."""

    lines: list[str]
    size: int

    @property
    def line_height(self) -> int:
        return int(round(self.size * LINE_SPACING))

    @property
    def pad(self) -> int:
        return pad_for(self.size)

    def box(self, chain: tuple[Face, ...]) -> tuple[int, int]:
        """Width and height of the drawn layer, padding included."""
        width = max(text_width(line, chain, self.size) for line in self.lines)
        return int(math.ceil(width)) + 2 * self.pad, len(self.lines) * self.line_height + 2 * self.pad


def fit_text(
    text: str,
    chain: tuple[Face, ...],
    box_width: int,
    box_height: int,
    max_size: int,
    min_size: int,
    max_lines: int,
) -> FittedText:
    """Largest size whose wrapped layer fits the box; the text is ellipsized at min_size."""
    check_coverage(text, chain)
    size = max_size
    while True:
        inner = box_width - 2 * pad_for(size)
        lines = wrap(text, chain, size, inner)
        fitted = FittedText(lines, size)
        height_ok = fitted.box(chain)[1] <= box_height
        if len(lines) <= max_lines and height_ok and all(text_width(x, chain, size) <= inner for x in lines):
            return fitted
        if size <= min_size:
            break
        size = max(min_size, int(size * 0.92))
    # Even the smallest size overflows: keep what fits and end with an ellipsis.
    room = max(1, min(max_lines, (box_height - 2 * pad_for(size)) // FittedText([], size).line_height))
    kept = lines[:room]
    if len(lines) > room:
        inner = box_width - 2 * pad_for(size)
        last = kept[-1]
        while last and text_width(last + ELLIPSIS, chain, size) > inner:
            last = last[:-1]
        while last and last[-1] in NO_END:
            last = last[:-1]
        kept[-1] = last.rstrip() + ELLIPSIS
    return FittedText(kept, size)


def draw_text(fitted: FittedText, chain: tuple[Face, ...], color=(255, 255, 255), shadow=True) -> Image.Image:
    """Draw centred lines on a transparent RGBA layer exactly `fitted.box()` in size."""
    width, height = fitted.box(chain)
    size, pad = fitted.size, fitted.pad
    text_alpha = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(text_alpha)
    for row, line in enumerate(fitted.lines):
        x = (width - text_width(line, chain, size)) / 2
        baseline = pad + row * fitted.line_height + size * 1.02
        for face, part in runs(line, chain):
            font = face.at(size)
            draw.text((x, baseline), part, font=font, fill=255, anchor="ls")
            x += font.getlength(part)
    layer = Image.new("RGBA", (width, height), color + (0,))
    if shadow:
        offset = max(1, size // 24)
        shade = Image.new("L", (width, height), 0)
        shade.paste(text_alpha, (offset, offset))
        shade = shade.filter(ImageFilter.GaussianBlur(max(1, size * 0.06)))
        shade = shade.point(lambda v: int(v * 0.75))
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        layer.putalpha(shade)
    fill = Image.new("RGBA", (width, height), color + (255,))
    fill.putalpha(text_alpha)
    return Image.alpha_composite(layer, fill)
