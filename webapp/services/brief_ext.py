"""The brief's optional extensions under `config`: the user's own material and style.

`assets`, `script`, `fit`, `voice`, `music`, `logo`, `subtitles`, `brand`, `variants`. Their shapes
are checked with the rest of the brief (`validate_extensions`, no database); the assets they name
are checked against the library and the submitter's rights (`check_asset_refs`). Errors name the
field (`config.logo.asset`), like every other brief error.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l

EXTENSION_FIELDS = ("assets", "script", "fit", "voice", "music", "logo", "subtitles", "brand", "variants",
                    "preview")
MAX_ASSETS = 50
MAX_SCENES = 50
MAX_NARRATION, MAX_CAPTION = 500, 200
FITS = ("exact", "narration")
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
POSITIONS = ("top", "middle", "bottom")
MIN_SPEED, MAX_SPEED = 80, 450
MAX_VARIANTS = 5
MAX_COLORS = 5
#: espeak-ng voices in Chinese or English, with an optional variant (`cmn`, `en-us+f3`).
VOICE_NAME = re.compile(r"^(cmn|cmn-latn-pinyin|yue|zh|en|en-(?:us|gb|gb-scotland|gb-x-rp|gb-x-gbclan|gb-x-gbcwmd|029))"
                        r"(\+[a-z0-9]{1,12})?$")
COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
ASSET_ID = re.compile(r"^asset_[0-9a-f]{16}$")
#: The kinds each asset reference accepts.
REF_KINDS = {
    "assets": ("image", "clip"),
    "music": ("audio",),
    "logo": ("logo", "image"),
    "brand": ("font",),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object(config: dict[str, Any], name: str, errors: dict[str, str], allowed: set[str]) -> dict[str, Any] | None:
    value = config.get(name)
    if not isinstance(value, dict):
        errors[f"config.{name}"] = str(_l("Must be an object."))
        return None
    for key in sorted(set(value) - allowed):
        errors[f"config.{name}.{key}"] = str(_l("Unknown field."))
    return value


def _asset_id(value: Any, field: str, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not ASSET_ID.match(value):
        errors[field] = str(_l("An asset id from the library (asset_ and 16 hex digits)."))
        return None
    return value


def validate_extensions(config: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The clean extensions present in `config`; problems go into `errors` keyed by field."""
    clean: dict[str, Any] = {}

    if "assets" in config:
        items = config["assets"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ASSETS:
            errors["config.assets"] = str(_l("A list of 1 to %(n)s asset ids.", n=MAX_ASSETS))
        else:
            ids = [_asset_id(item, f"config.assets[{i}]", errors) for i, item in enumerate(items)]
            clean["assets"] = ids

    if "script" in config:
        scenes = config["script"]
        if not isinstance(scenes, list) or not 1 <= len(scenes) <= MAX_SCENES:
            errors["config.script"] = str(_l("A list of 1 to %(n)s scenes.", n=MAX_SCENES))
        else:
            clean_scenes = []
            for i, scene in enumerate(scenes):
                field = f"config.script[{i}]"
                if not isinstance(scene, dict):
                    errors[field] = str(_l("Each scene is an object with narration and caption."))
                    continue
                for key in sorted(set(scene) - {"narration", "caption"}):
                    errors[f"{field}.{key}"] = str(_l("Unknown field."))
                narration, caption = scene.get("narration", ""), scene.get("caption")
                if not isinstance(narration, str) or len(narration) > MAX_NARRATION:
                    errors[f"{field}.narration"] = str(_l("Text of at most %(n)s characters.", n=MAX_NARRATION))
                    continue
                if caption is not None and (not isinstance(caption, str) or len(caption) > MAX_CAPTION):
                    errors[f"{field}.caption"] = str(_l("Text of at most %(n)s characters.", n=MAX_CAPTION))
                    continue
                narration = narration.strip()
                caption = narration[:MAX_CAPTION] if caption is None else caption.strip()
                if not narration and not caption:
                    errors[field] = str(_l("A scene needs a narration or a caption."))
                    continue
                clean_scenes.append({"narration": narration, "caption": caption})
            clean["script"] = clean_scenes

    if "fit" in config:
        if config["fit"] not in FITS:
            errors["config.fit"] = str(_l("Must be one of: %(v)s.", v=", ".join(FITS)))
        else:
            clean["fit"] = config["fit"]

    if "voice" in config:
        voice = _object(config, "voice", errors, {"name", "speed"})
        if voice is not None:
            out: dict[str, Any] = {}
            name = voice.get("name")
            if name is not None:
                if not isinstance(name, str) or not VOICE_NAME.match(name.strip()):
                    errors["config.voice.name"] = str(_l("An espeak-ng voice in Chinese (cmn, yue) or English "
                                                        "(en, en-us, en-gb...), optionally with a variant (+f3)."))
                else:
                    out["name"] = name.strip()
            speed = voice.get("speed")
            if speed is not None:
                if not _is_int(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
                    errors["config.voice.speed"] = str(_l("Words per minute, %(lo)s to %(hi)s.", lo=MIN_SPEED, hi=MAX_SPEED))
                else:
                    out["speed"] = speed
            clean["voice"] = out

    if "music" in config:
        music = _object(config, "music", errors, {"asset", "volume"})
        if music is not None:
            out = {}
            if music.get("asset") not in (None, "builtin"):
                out["asset"] = _asset_id(music["asset"], "config.music.asset", errors)
            volume = music.get("volume", 0.3)
            if not _is_number(volume) or not 0 <= volume <= 1:
                errors["config.music.volume"] = str(_l("A number from 0 to 1."))
            else:
                out["volume"] = float(volume)
            clean["music"] = out

    if "logo" in config:
        logo = _object(config, "logo", errors, {"asset", "corner", "scale"})
        if logo is not None:
            out = {"asset": _asset_id(logo.get("asset"), "config.logo.asset", errors)}
            corner = logo.get("corner", "top-right")
            if corner not in CORNERS:
                errors["config.logo.corner"] = str(_l("Must be one of: %(v)s.", v=", ".join(CORNERS)))
            out["corner"] = corner
            scale = logo.get("scale", 0.15)
            if not _is_number(scale) or not 0.05 <= scale <= 0.5:
                errors["config.logo.scale"] = str(_l("A number from 0.05 to 0.5 (of the frame's width)."))
            out["scale"] = scale
            clean["logo"] = out

    if "subtitles" in config:
        subs = _object(config, "subtitles", errors, {"burn", "size", "color", "outline", "position"})
        if subs is not None:
            out = {}
            burn = subs.get("burn", True)
            if not isinstance(burn, bool):
                errors["config.subtitles.burn"] = str(_l("true or false."))
            out["burn"] = burn
            if "size" in subs:
                if not _is_int(subs["size"]) or not 12 <= subs["size"] <= 200:
                    errors["config.subtitles.size"] = str(_l("Pixels, %(lo)s to %(hi)s.", lo=12, hi=200))
                out["size"] = subs["size"]
            if "color" in subs:
                if not isinstance(subs["color"], str) or not COLOR.match(subs["color"]):
                    errors["config.subtitles.color"] = str(_l("A colour as #RRGGBB."))
                else:
                    out["color"] = subs["color"].upper()
            if "outline" in subs:
                if not _is_int(subs["outline"]) or not 0 <= subs["outline"] <= 10:
                    errors["config.subtitles.outline"] = str(_l("Pixels, %(lo)s to %(hi)s.", lo=0, hi=10))
                out["outline"] = subs["outline"]
            if "position" in subs:
                if subs["position"] not in POSITIONS:
                    errors["config.subtitles.position"] = str(_l("Must be one of: %(v)s.", v=", ".join(POSITIONS)))
                out["position"] = subs["position"]
            clean["subtitles"] = out

    if "brand" in config:
        brand = _object(config, "brand", errors, {"font", "colors"})
        if brand is not None:
            out = {}
            if brand.get("font") is not None:
                out["font"] = _asset_id(brand["font"], "config.brand.font", errors)
            if "colors" in brand:
                colors = brand["colors"]
                if (not isinstance(colors, list) or not 1 <= len(colors) <= MAX_COLORS
                        or not all(isinstance(c, str) and COLOR.match(c) for c in colors)):
                    errors["config.brand.colors"] = str(_l("A list of 1 to %(n)s colours as #RRGGBB.", n=MAX_COLORS))
                else:
                    out["colors"] = [c.upper() for c in colors]
            clean["brand"] = out

    if "preview" in config:
        if not isinstance(config["preview"], bool):
            errors["config.preview"] = str(_l("true or false."))
        elif config["preview"]:
            clean["preview"] = True

    if "variants" in config:
        variants = config["variants"]
        if not _is_int(variants) or not 1 <= variants <= MAX_VARIANTS:
            errors["config.variants"] = str(_l("A whole number from 1 to %(n)s.", n=MAX_VARIANTS))
        else:
            clean["variants"] = variants
    return clean


def asset_refs(config: dict[str, Any] | None) -> list[tuple[str, str, tuple[str, ...]]]:
    """(field, asset id, accepted kinds) of every asset a (clean) config names."""
    config = config or {}
    refs: list[tuple[str, str, tuple[str, ...]]] = []
    for i, asset_id in enumerate(config.get("assets") or []):
        if isinstance(asset_id, str):
            refs.append((f"config.assets[{i}]", asset_id, REF_KINDS["assets"]))
    for section, key in (("music", "asset"), ("logo", "asset"), ("brand", "font")):
        value = config.get(section)
        if isinstance(value, dict) and isinstance(value.get(key), str):
            refs.append((f"config.{section}.{key}", value[key], REF_KINDS[section]))
    return refs


def texts_of(brief: dict[str, Any]) -> str:
    """Every text the video will draw: the script's captions, else the theme and keywords."""
    script = (brief.get("config") or {}).get("script")
    if script:
        return "".join(scene.get("caption", "") for scene in script)
    return brief.get("theme_id", "") + "".join(brief.get("keywords_id") or [])
