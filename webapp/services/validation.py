"""Validation of a video brief, shared by the JSON API and the dashboard form."""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l

from webapp.catalog import DEFAULT_PRIORITY, PRIORITIES, QUALITIES
from webapp.services.brief_ext import EXTENSION_FIELDS, validate_extensions

BRIEF_FIELDS = {"theme_id", "keywords_id", "target_duration_id", "user_description_id", "priority", "config"}
CONFIG_FIELDS = {"quality", "resolution", "seed", *EXTENSION_FIELDS}
MAX_KEYWORDS = 10
MIN_DURATION, MAX_DURATION = 5, 600
MAX_DESCRIPTION = 2000
MAX_THEME = 200
MAX_KEYWORD = 50
MIN_SIDE, MAX_WIDTH, MAX_HEIGHT = 144, 3840, 2160
DEFAULT_QUALITY = "medium"
DEFAULT_RESOLUTION = "1280x720"
_RESOLUTION = re.compile(r"^([0-9]{2,5})x([0-9]{2,5})$")  # ASCII digits only (\d matches ١٩٢٠)


class BriefError(ValueError):
    """A brief that cannot be accepted; `fields` maps each bad field to a message."""

    def __init__(self, fields: dict[str, str], message: str | None = None):
        super().__init__(message or "Invalid request")
        self.fields = fields
        self.message = str(message or _l("The request has invalid fields."))


def has_surrogates(value: Any, depth: int = 0) -> bool:
    """True when a string anywhere in a parsed JSON value holds a lone surrogate (not storable text)."""
    if isinstance(value, str):
        return not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value)
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(has_surrogates(k, depth + 1) or has_surrogates(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogates(v, depth + 1) for v in value)
    return False


#: A JSON escape of a UTF-16 surrogate (\ud800-\udfff). Text decoded from UTF-8 cannot hold a
#: surrogate otherwise (the codec refuses one), so JSON text without this escape holds none.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_has_surrogates(raw: bytes, parsed: Any) -> bool:
    """`has_surrogates` of `parsed`, the value of the UTF-8 JSON text `raw`, walked only when the
    text holds a surrogate escape (a 500-brief batch has none, and its walk is not free)."""
    return _SURROGATE_ESCAPE.search(raw) is not None and has_surrogates(parsed)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_resolution(text: str) -> tuple[int, int] | None:
    """`1920x1080` -> (1920, 1080) when it is a valid output size, else None."""
    match = _RESOLUTION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        return None
    if not (MIN_SIDE <= width <= MAX_WIDTH and MIN_SIDE <= height <= MAX_HEIGHT):
        return None
    return width, height


def validate_brief(body: Any) -> dict[str, Any]:
    """Check a submitted brief and return it normalised, or raise BriefError."""
    if not isinstance(body, dict):
        raise BriefError({"body": str(_l("Expected a JSON object."))})
    errors: dict[str, str] = {}
    for name in sorted(set(body) - BRIEF_FIELDS):
        errors[name] = str(_l("Unknown field."))

    theme = body.get("theme_id")
    if not isinstance(theme, str) or not theme.strip():
        errors["theme_id"] = str(_l("A theme is required."))
    elif len(theme) > MAX_THEME:
        errors["theme_id"] = str(_l("At most %(n)s characters.", n=MAX_THEME))

    keywords = body.get("keywords_id")
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        errors["keywords_id"] = str(_l("Keywords must be a list of strings."))
    else:
        keywords = [k.strip() for k in keywords]
        if not 1 <= len(keywords) <= MAX_KEYWORDS:
            errors["keywords_id"] = str(_l("Give between 1 and %(n)s keywords.", n=MAX_KEYWORDS))
        elif any(not k for k in keywords):
            errors["keywords_id"] = str(_l("Keywords cannot be empty."))
        elif any(len(k) > MAX_KEYWORD for k in keywords):
            errors["keywords_id"] = str(_l("Each keyword has at most %(n)s characters.", n=MAX_KEYWORD))

    duration = body.get("target_duration_id")
    if not _is_int(duration):
        errors["target_duration_id"] = str(_l("The duration must be a whole number of seconds."))
    elif not MIN_DURATION <= duration <= MAX_DURATION:
        errors["target_duration_id"] = str(
            _l("The duration must be between %(lo)s and %(hi)s seconds.", lo=MIN_DURATION, hi=MAX_DURATION)
        )

    description = body.get("user_description_id", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        errors["user_description_id"] = str(_l("The description must be text."))
    elif len(description) > MAX_DESCRIPTION:
        errors["user_description_id"] = str(_l("At most %(n)s characters.", n=MAX_DESCRIPTION))

    priority = body.get("priority", DEFAULT_PRIORITY)
    if not isinstance(priority, str) or priority not in PRIORITIES:
        errors["priority"] = str(_l("Priority must be one of: %(v)s.", v=", ".join(PRIORITIES)))

    config = body.get("config", {})
    if config is None:
        config = {}
    quality, resolution, seed = DEFAULT_QUALITY, DEFAULT_RESOLUTION, None
    extensions: dict[str, Any] = {}
    if not isinstance(config, dict):
        errors["config"] = str(_l("config must be an object."))
    else:
        for name in sorted(set(config) - CONFIG_FIELDS):
            errors[f"config.{name}"] = str(_l("Unknown field."))
        quality = config.get("quality", DEFAULT_QUALITY)
        if not isinstance(quality, str) or quality not in QUALITIES:
            errors["config.quality"] = str(_l("Quality must be one of: %(v)s.", v=", ".join(QUALITIES)))
        resolution = config.get("resolution", DEFAULT_RESOLUTION)
        if parse_resolution(resolution) is None:
            errors["config.resolution"] = str(
                _l("Use WIDTHxHEIGHT with even sides, %(lo)s-%(w)s by %(lo)s-%(h)s.",
                   lo=MIN_SIDE, w=MAX_WIDTH, h=MAX_HEIGHT)
            )
        seed = config.get("seed")
        if seed is not None and not (_is_int(seed) and 0 <= seed < 2**31):
            errors["config.seed"] = str(_l("The seed must be a non-negative integer."))
        extensions = validate_extensions(config, errors)

    if errors:
        raise BriefError(errors)
    clean_config: dict[str, Any] = {"quality": quality, "resolution": resolution.strip()}
    if seed is not None:
        clean_config["seed"] = seed
    clean_config.update(extensions)
    return {
        "theme_id": theme.strip(),
        "keywords_id": keywords,
        "target_duration_id": duration,
        "user_description_id": description.strip(),
        "priority": priority,
        "config": clean_config,
    }
