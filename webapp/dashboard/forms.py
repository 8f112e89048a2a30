"""Forms of the dashboard: sign-in, password, API tokens, and the brief (validated like the API)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from webapp.catalog import DEFAULT_PRIORITY, PRIORITIES, QUALITIES, Role
from webapp.services.brief_ext import EXTENSION_FIELDS
from webapp.services.validation import DEFAULT_QUALITY, DEFAULT_RESOLUTION, BriefError, validate_brief

MIN_PASSWORD = 8

#: Resolution presets of the submit form: (value, label) grouped by orientation.
RESOLUTION_PRESETS: list[tuple[Any, list[tuple[str, str]]]] = [
    (_l("Landscape"), [("1920x1080", "1920 × 1080 (1080p)"), ("1280x720", "1280 × 720 (720p)")]),
    (_l("Portrait"), [("1080x1920", "1080 × 1920"), ("720x1280", "720 × 1280")]),
    (_l("Square"), [("1080x1080", "1080 × 1080")]),
]
PRESET_VALUES = {value for _group, items in RESOLUTION_PRESETS for value, _label in items}
CUSTOM = "custom"
_KEYWORD_SPLIT = re.compile(r"[,，、;；\n]+")


class LoginForm(FlaskForm):
    username = StringField(_l("User name"), validators=[DataRequired(_l("Enter your user name.")),
                                                       Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(_l("Enter your current password."))])
    new = PasswordField(_l("New password"), validators=[
        DataRequired(_l("Enter a new password.")),
        Length(min=MIN_PASSWORD, max=200, message=_l("Use at least %(n)s characters.", n=MIN_PASSWORD)),
    ])
    confirm = PasswordField(_l("Repeat the new password"), validators=[
        EqualTo("new", message=_l("The two passwords differ.")),
    ])


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(_l("Give the token a name.")),
                                                     Length(max=80)])
    role = SelectField(_l("Role"))

    def limit_roles(self, user_role: Role) -> None:
        """Offer only roles up to the user's own: a token never has more rights than its owner."""
        self.role.choices = [(r.value, r.value) for r in Role if user_role.allows(r)]
        if not self.role.data:
            self.role.data = Role.OPERATOR.value if user_role.allows(Role.OPERATOR) else Role.VIEWER.value


def extensions_json(config: Mapping[str, Any]) -> str:
    """The extensions of a brief's config as JSON, or "" when it has none."""
    extensions = {k: config[k] for k in EXTENSION_FIELDS if k in config and k != "preview"}
    return json.dumps(extensions, ensure_ascii=False, sort_keys=True) if extensions else ""


def split_keywords(text: str) -> list[str]:
    """Keywords from the text field: commas (also Chinese ones), semicolons or new lines separate."""
    return [k.strip() for k in _KEYWORD_SPLIT.split(text or "") if k.strip()]


@dataclass
class BriefForm:
    """The submit form: raw field values for redisplay, and errors keyed by form field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    brief: dict[str, Any] | None = None

    @classmethod
    def blank(cls) -> BriefForm:
        return cls(values={
            "theme_id": "", "keywords_id": "", "target_duration_id": "30", "user_description_id": "",
            "priority": DEFAULT_PRIORITY, "quality": DEFAULT_QUALITY, "resolution": DEFAULT_RESOLUTION,
            "custom_resolution": "", "parent_id": "", "extensions": "",
        })

    @classmethod
    def from_brief(cls, brief: Mapping[str, Any], parent_id: str = "") -> BriefForm:
        """Pre-fill from a task's request JSON ("submit again")."""
        form = cls.blank()
        config = brief.get("config") or {}
        resolution = str(config.get("resolution") or DEFAULT_RESOLUTION)
        preset = resolution in PRESET_VALUES
        form.values.update({
            "theme_id": str(brief.get("theme_id") or ""),
            "keywords_id": ", ".join(str(k) for k in brief.get("keywords_id") or []),
            "target_duration_id": str(brief.get("target_duration_id") or ""),
            "user_description_id": str(brief.get("user_description_id") or ""),
            "priority": brief.get("priority") if brief.get("priority") in PRIORITIES else DEFAULT_PRIORITY,
            "quality": config.get("quality") if config.get("quality") in QUALITIES else DEFAULT_QUALITY,
            "resolution": resolution if preset else CUSTOM,
            "custom_resolution": "" if preset else resolution,
            "parent_id": parent_id,
            # The brief's own material and style ride along unchanged, so submitting again
            # reproduces them (the form has no fields for them).
            "extensions": extensions_json(config),
        })
        return form

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> BriefForm:
        """Read a posted form and validate it with the API's rules and messages."""
        names = ("theme_id", "keywords_id", "target_duration_id", "user_description_id", "priority",
                 "quality", "resolution", "custom_resolution", "parent_id", "extensions")
        self = cls(values={name: (form.get(name) or "").strip() if name != "user_description_id"
                           else form.get(name) or "" for name in names})
        values = self.values
        raw_duration = values["target_duration_id"]
        duration: Any = int(raw_duration) if re.fullmatch(r"\d{1,6}", raw_duration) else raw_duration
        resolution = values["custom_resolution"] if values["resolution"] == CUSTOM else values["resolution"]
        body = {
            "theme_id": values["theme_id"],
            "keywords_id": split_keywords(values["keywords_id"]),
            "target_duration_id": duration,
            "user_description_id": values["user_description_id"],
            "priority": values["priority"],
            "config": {"quality": values["quality"], "resolution": resolution},
        }
        if values["extensions"]:
            try:
                extensions = json.loads(values["extensions"])
            except ValueError:
                extensions = None
            if not isinstance(extensions, dict) or set(extensions) - set(EXTENSION_FIELDS):
                self.errors["extensions"] = str(_l("The brief's extensions are not valid JSON."))
                return self
            body["config"].update(extensions)
        try:
            self.brief = validate_brief(body)
        except BriefError as exc:
            for name, message in exc.fields.items():
                key = name.removeprefix("config.")
                if key == "resolution" and values["resolution"] == CUSTOM:
                    key = "custom_resolution"
                if key.split(".")[0].split("[")[0] in EXTENSION_FIELDS:
                    self.errors["extensions"] = f"{name}: {message}"
                    continue
                self.errors[key] = message
        return self
