"""Brief -> storyboard: scenes, captions, timing in frames, chunk plan. Deterministic."""

from __future__ import annotations

import colorsys
import hashlib
import json
import random
import re

from . import material as own_material
from .cache import CODE_VERSION
from .errors import BadBrief

QUALITY = {
    # fps, x264 crf, x264 preset, AAC bitrate
    "low": {"fps": 24, "crf": 28, "preset": "ultrafast", "audio_bitrate": "96k"},
    "medium": {"fps": 30, "crf": 23, "preset": "veryfast", "audio_bitrate": "128k"},
    "high": {"fps": 30, "crf": 20, "preset": "veryfast", "audio_bitrate": "192k"},
}
MIN_SIDE, MAX_SIDE = 144, 4096
MIN_DURATION, MAX_DURATION = 3, 600
MAX_KEYWORDS = 12
MIN_SCENE_SECONDS = 1.0
CHUNK_SECONDS = 6.0  # small enough that parallel workers finish close together
TRANSITION_SECONDS = 0.6
TEXT_IN_SECONDS = 0.7
FADE_IN_SECONDS = 0.5
FADE_OUT_SECONDS = 0.7
MOTIFS = ["orbits", "waves", "grid", "facets", "bokeh", "rays"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_LATIN = re.compile(r"[A-Za-z]")
_CLAUSE_SPLIT = re.compile(r"[，。；！？,.;!?：:]+\s*")

# Keyword captions. Those with {clause} carry a further clause of the description; the first
# clause (or the whole description) is already the title's caption, so it is never repeated.
_ZH_TEMPLATES = [
    "{kw}，{clause}",
    "以{kw}为核心，{clause}",
    "聚焦{kw}：{clause}",
]
_ZH_SHORT = [
    "{kw}，让{theme}更进一步",
    "当{kw}遇见{theme}",
    "{kw}，看得见的改变",
    "{kw}，从这里开始",
    "每一处细节，都关于{kw}",
    "用{kw}，定义{theme}",
    "{kw}，值得被看见",
    "为{kw}而来",
]
_EN_TEMPLATES = [
    "{Kw}: {clause}",
    "{Kw}. {clause}",
]
# Short lines that read well whether a keyword is a noun, an adjective or a verb phrase.
_EN_SHORT = [
    "{Kw}, front and center",
    "{Kw}: at the heart of {theme}",
    "Spotlight: {kw}",
    "{Kw}, in focus",
    "Next up: {kw}",
    "{Kw}, every step of the way",
    "Think {kw}",
    "{Kw}, done right",
]


def is_cjk_text(text: str) -> bool:
    """True when CJK characters dominate Latin letters in `text`."""
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    return cjk > 0 and cjk * 2 >= latin


def _text(value, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadBrief(f"{field} must be a non-empty string")
    value = " ".join(value.split())
    if len(value) > limit:
        raise BadBrief(f"{field} is longer than {limit} characters")
    return value


def parse_resolution(value) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080); BadBrief unless both sides are even and in range."""
    match = re.fullmatch(r"\s*(\d{2,5})\s*[xX×*]\s*(\d{2,5})\s*", str(value))
    if not match:
        raise BadBrief(f"resolution {value!r} is not WIDTHxHEIGHT")
    width, height = int(match.group(1)), int(match.group(2))
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise BadBrief(f"resolution {width}x{height} outside {MIN_SIDE}..{MAX_SIDE} pixels per side")
    if width % 2 or height % 2:
        raise BadBrief(f"resolution {width}x{height} must have even sides (H.264 4:2:0)")
    return width, height


def brief_seed(brief: dict) -> int:
    """Default seed: a hash of the brief's content (priority does not change the video)."""
    content = {k: brief.get(k) for k in ("theme_id", "keywords_id", "target_duration_id", "user_description_id")}
    config = dict(brief.get("config") or {})
    config.pop("seed", None)
    content["config"] = config
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _hue(word: str) -> float:
    return int(hashlib.sha256(word.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def palette(word: str, rng: random.Random) -> list[list[int]]:
    """Three colours around a hue hashed from the word; never dark enough to read as black."""
    hue = _hue(word)
    colours = []
    for shift, light, sat in [(0.0, 0.34, 0.62), (0.08 + rng.random() * 0.08, 0.48, 0.55), (0.5, 0.62, 0.45)]:
        red, green, blue = colorsys.hls_to_rgb((hue + shift) % 1.0, light, sat)
        colours.append([int(red * 255), int(green * 255), int(blue * 255)])
    return colours


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` frames by weight with largest remainders, so the parts add up exactly."""
    raw = [total * w / sum(weights) for w in weights]
    frames = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (raw[i] - frames[i], -i), reverse=True)
    for i in order[: total - sum(frames)]:
        frames[i] += 1
    return frames


def _clauses(description: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_SPLIT.split(description) if c.strip()]


def _captions(theme: str, keywords: list[str], clauses: list[str], lang: str, rng: random.Random) -> list[str]:
    """One caption per keyword: the description's clauses the title did not show, then short lines."""
    long_templates = list(_ZH_TEMPLATES if lang == "zh" else _EN_TEMPLATES)
    short_templates = list(_ZH_SHORT if lang == "zh" else _EN_SHORT)
    rng.shuffle(long_templates)
    rng.shuffle(short_templates)
    captions = []
    for i, keyword in enumerate(keywords):
        values = {"kw": keyword, "Kw": keyword[:1].upper() + keyword[1:], "theme": theme}
        if i < len(clauses):
            clause = clauses[i]
            template = long_templates[i % len(long_templates)]
            if lang == "en" and template.startswith("{Kw}."):
                clause = clause[0].upper() + clause[1:]
            captions.append(template.format(clause=clause, **values))
        else:
            captions.append(short_templates[(i - len(clauses)) % len(short_templates)].format(**values))
    end = "。" if lang == "zh" else "."
    return [c if c[-1] in "。！？.!?" else c + end for c in captions]


def _chunks(total: int, fps: int, forbidden: list[tuple[int, int]]) -> list[dict]:
    """Cut the timeline into chunks of at most CHUNK_SECONDS, never inside an animation window."""
    limit = int(CHUNK_SECONDS * fps)

    def allowed(cut: int) -> bool:
        return all(not (start < cut < end) for start, end in forbidden)

    count = max(1, -(-total // limit))
    cuts, pos = [], 0
    for k in range(1, count):
        target = round(total * k / count)
        candidates = [c for c in range(pos + fps, min(total - fps, pos + limit) + 1) if allowed(c)]
        if not candidates:
            continue
        cut = min(candidates, key=lambda c: (abs(c - target), c))
        cuts.append(cut)
        pos = cut
    bounds = [0, *cuts, total]
    return [{"index": i, "start_frame": a, "frames": b - a} for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]


def build_storyboard(brief: dict) -> dict:
    """Validate a brief and plan the video; BadBrief when it cannot be rendered."""
    if not isinstance(brief, dict):
        raise BadBrief("brief must be a JSON object")
    theme = _text(brief.get("theme_id"), "theme_id", 80)
    keywords = brief.get("keywords_id") or []
    if not isinstance(keywords, list) or len(keywords) > MAX_KEYWORDS:
        raise BadBrief(f"keywords_id must be a list of at most {MAX_KEYWORDS} strings")
    keywords = [_text(k, "keywords_id[]", 40) for k in keywords]
    description = brief.get("user_description_id") or ""
    description = _text(description, "user_description_id", 500) if description else theme
    duration = brief.get("target_duration_id")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise BadBrief("target_duration_id must be a number of seconds")
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise BadBrief(f"target_duration_id must be within {MIN_DURATION}..{MAX_DURATION} seconds")
    config = brief.get("config") or {}
    if not isinstance(config, dict):
        raise BadBrief("config must be an object")
    quality = config.get("quality", "medium")
    if quality not in QUALITY:
        raise BadBrief(f"config.quality must be one of {', '.join(QUALITY)}")
    width, height = parse_resolution(config.get("resolution", "1280x720"))
    seed = config.get("seed")
    if seed is None:
        seed = brief_seed(brief)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise BadBrief("config.seed must be an integer")

    settings = QUALITY[quality]
    fps = settings["fps"]
    total = int(round(duration * fps))
    n_scenes = len(keywords) + 2
    if total < n_scenes * MIN_SCENE_SECONDS * fps:
        raise BadBrief(f"{duration} s is too short for {len(keywords)} keywords "
                       f"(at least {MIN_SCENE_SECONDS:g} s per scene)")
    lang = "zh" if is_cjk_text(description) or (description == theme and is_cjk_text(theme)) else "en"
    rng = random.Random(seed)

    weights = [1.0] + [1.25] * len(keywords) + [0.9]
    frames = _allocate(total, weights)
    shortest = min(frames)
    transition = max(2, min(int(round(TRANSITION_SECONDS * fps)), shortest // 3))
    text_in = max(2, min(int(round(TEXT_IN_SECONDS * fps)), shortest // 4))

    all_clauses = _clauses(description) or [description]
    if lang == "zh":
        short_enough = len(description) <= 40
        closing = ("感谢观看", f"{theme}，与你一起走向下一步。")
    else:
        short_enough = len(description) <= 90
        closing = ("Thank you for watching", f"{theme}: see what comes next.")
    # The title shows the whole description when it is short, else its first clause; the keyword
    # scenes carry the clauses it did not show, so no line is said twice.
    title_caption = description if short_enough else all_clauses[0]
    captions = _captions(theme, keywords, [] if short_enough else all_clauses[1:], lang, rng)

    specs = [("title", theme, title_caption, theme)]
    specs += [("keyword", kw, cap, kw) for kw, cap in zip(keywords, captions, strict=True)]
    specs += [("closing", closing[0], closing[1], theme + "/closing")]
    narrations: list[str | None] = [None] * len(specs)
    script = config.get("script")
    if script:
        # The brief's own script replaces the templates; `fit` picks the length.
        voice = config.get("voice") or {}
        script_specs, weights, duration = own_material.plan_script(
            script, theme, keywords, duration, config.get("fit") or "exact", voice.get("speed"), is_cjk_text)
        specs = [spec[:4] for spec in script_specs]
        narrations = [spec[4] for spec in script_specs]
        lang = "zh" if any(is_cjk_text(spec[2]) for spec in script_specs) else "en"
        total = int(round(duration * fps))
        if total < len(specs) * MIN_SCENE_SECONDS * fps:
            raise BadBrief(f"{duration} s is too short for {len(specs)} script scenes")
        frames = _allocate(total, weights)
        shortest = min(frames)
        transition = max(2, min(int(round(TRANSITION_SECONDS * fps)), shortest // 3))
        text_in = max(2, min(int(round(TEXT_IN_SECONDS * fps)), shortest // 4))
    scenes, start = [], 0
    forbidden = [(0, int(round(FADE_IN_SECONDS * fps)) + 1), (total - int(round(FADE_OUT_SECONDS * fps)) - 1, total)]
    for i, ((kind, heading, caption, art_word), count) in enumerate(zip(specs, frames, strict=True)):
        entry = transition if i else int(round(FADE_IN_SECONDS * fps * 0.6))
        heading_in = entry + int(round(0.1 * fps))
        caption_in = heading_in + int(round(0.35 * fps))
        scene_rng = random.Random(f"{seed}:{i}:{art_word}")
        scenes.append({
            "index": i,
            "kind": kind,
            "heading": heading,
            "caption": caption,
            "narration": narrations[i] or (caption if kind != "title" else f"{heading}。{caption}" if lang == "zh" else f"{heading}. {caption}"),
            "start_frame": start,
            "frames": count,
            "palette": palette(art_word, scene_rng),
            "motif": MOTIFS[int(_hue(art_word + "/motif") * len(MOTIFS)) % len(MOTIFS)],
            "art_seed": scene_rng.randrange(1 << 30),
            "zoom": [1.0, 1.07] if i % 2 == 0 else [1.07, 1.0],
            "heading_in": min(heading_in, count - text_in),
            "caption_in": min(caption_in, count - text_in),
        })
        for key in ("heading_in", "caption_in"):
            forbidden.append((start + scenes[-1][key], start + scenes[-1][key] + text_in + 1))
        if i:
            forbidden.append((start - 1, start + transition + 1))
        start += count
    assert start == total
    brand_colors = (config.get("brand") or {}).get("colors")
    if brand_colors:
        for i, scene in enumerate(scenes):
            scene["palette"][0] = own_material.brand_rgb(brand_colors[i % len(brand_colors)])
    own_material.assign_assets(scenes, config.get("assets"))

    board = {
        "version": CODE_VERSION,
        "seed": seed,
        "lang": lang,
        "theme": theme,
        "keywords": keywords,
        "description": description,
        "duration": total / fps,
        "target_duration": duration,
        "quality": quality,
        "fps": fps,
        "width": width,
        "height": height,
        "crf": settings["crf"],
        "preset": settings["preset"],
        "audio_bitrate": settings["audio_bitrate"],
        "total_frames": total,
        "transition_frames": transition,
        "text_in_frames": text_in,
        "fade_in_frames": int(round(FADE_IN_SECONDS * fps)),
        "fade_out_frames": int(round(FADE_OUT_SECONDS * fps)),
        "scenes": scenes,
        "chunks": _chunks(total, fps, forbidden),
    }
    material = own_material.material_of(config)
    if material:
        board["material"] = material
    if config.get("preview"):
        own_material.cut_preview(board)
        board["chunks"] = _chunks(board["total_frames"], fps, [
            window for window in forbidden if window[0] < board["total_frames"]])
    return board
