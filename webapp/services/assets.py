"""The media library: taking in, probing, listing and deleting the files people use in their videos.

Every upload is checked before it is kept: the name's extension says what it claims to be, and
Pillow, ffprobe or fontTools must agree; sizes, lengths and pixels have configurable limits. Images
get their EXIF orientation applied; every asset gets a JPEG thumbnail. Bytes go to storage
(webapp/storage.py) under keys derived from the asset's id.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from webapp.catalog import ACTIVE_STATES
from webapp.extensions import db
from webapp.mediaprobe import (
    HDR_TRANSFERS,
    ProbeError,
    audio_stream,
    is_hdr,
    poster_frame,
    probe,
    video_stream,
    waveform,
)
from webapp.models import Asset, RenderTask
from webapp.services import proxies
from webapp.services.brief_ext import asset_refs, texts_of
from webapp.services.validation import BriefError
from webapp.storage import asset_key, get_storage, scratch_root

KINDS = ("image", "clip", "audio", "logo", "font")
#: What each extension claims: the kind it makes by default and the formats the probe must find.
EXTENSIONS: dict[str, dict[str, Any]] = {
    "jpg": {"kind": "image", "pil": "JPEG", "label": "JPEG"},
    "jpeg": {"kind": "image", "pil": "JPEG", "label": "JPEG"},
    "png": {"kind": "image", "pil": "PNG", "label": "PNG"},
    "webp": {"kind": "image", "pil": "WEBP", "label": "WebP"},
    "mp4": {"kind": "clip", "formats": {"mp4", "mov"}, "label": "MP4"},
    "mov": {"kind": "clip", "formats": {"mov", "mp4"}, "label": "MOV"},
    "webm": {"kind": "clip", "formats": {"webm", "matroska"}, "label": "WebM"},
    "mp3": {"kind": "audio", "formats": {"mp3"}, "label": "MP3"},
    "wav": {"kind": "audio", "formats": {"wav"}, "label": "WAV"},
    "m4a": {"kind": "audio", "formats": {"mp4", "m4a", "mov"}, "label": "M4A"},
    "ogg": {"kind": "audio", "formats": {"ogg"}, "label": "Ogg"},
    "ttf": {"kind": "font", "label": "TrueType"},
    "otf": {"kind": "font", "label": "OpenType"},
}
#: The extensions each kind accepts (a logo is a PNG with transparency).
KIND_EXTENSIONS = {
    "image": {"jpg", "jpeg", "png", "webp"},
    "clip": {"mp4", "mov", "webm"},
    "audio": {"mp3", "wav", "m4a", "ogg"},
    "logo": {"png"},
    "font": {"ttf", "otf"},
}
MAX_TAGS, MAX_TAG = 20, 32
MAX_NAME = 255
THUMB_SIZE = (320, 180)
COPY_CHUNK = 1024 * 1024
PAGE_DEFAULT, PAGE_MAX = 50, 200
FONT_SAMPLE = "Aa Bb 123"


class AssetRejected(ValueError):
    """An upload that cannot be kept; `status` is 400, or 413 when it is too large."""

    def __init__(self, message: str, field: str = "file", status: int = 400):
        super().__init__(str(message))
        self.message = str(message)
        self.field = field
        self.status = status


class AssetInUse(Exception):
    """The asset is used by a task that is still waiting or running."""

    def __init__(self, task_ids: list[str]):
        super().__init__(", ".join(task_ids))
        self.task_ids = task_ids


@dataclass(frozen=True)
class Actor:
    """Who asks: the owner string stored on assets, and whether they see everything (admins)."""

    principal: str
    is_admin: bool = False


def new_asset_id() -> str:
    return "asset_" + secrets.token_hex(8)


# --- taking a file in ----------------------------------------------------------------------------


def parse_tags(raw: str | Iterable[str] | None) -> list[str]:
    """Tags from `a, b` or a list: trimmed, lower-cased, unique, in order; AssetRejected if bad."""
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise AssetRejected(_l("Tags must be text."), "tags")
        tag = item.strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG or "," in tag:
            raise AssetRejected(_l("Each tag has at most %(n)s characters and no comma.", n=MAX_TAG), "tags")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise AssetRejected(_l("At most %(n)s tags.", n=MAX_TAGS), "tags")
    return tags


def parse_flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw or "").strip().lower() in ("1", "true", "yes", "on")


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def save_stream(stream, dest: Path, limit: int) -> int:
    """Copy a file-like object to `dest` in bounded chunks; AssetRejected (413) past `limit` bytes."""
    written = 0
    with open(dest, "wb") as out:
        while chunk := stream.read(COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise AssetRejected(too_large_message(limit), status=413)
            out.write(chunk)
    return written


def too_large_message(limit: int) -> str:
    mb = limit / 1024 / 1024
    size = f"{mb:g} MB" if mb >= 1 and mb == int(mb) else f"{mb:.1f} MB" if mb >= 1 else f"{limit / 1024:.0f} KB"
    return str(_l("The file is larger than the limit of %(size)s.", size=size))


def ingest_stream(stream, original_name: str, actor: Actor, *, tags: Any = None, shared: Any = False,
                  kind: str | None = None, text: str | None = None) -> Asset:
    """Take in an upload read from `stream` (never whole in memory) and keep it as an asset."""
    with tempfile.TemporaryDirectory(prefix="asset-upload-", dir=_scratch()) as folder:
        path = Path(folder) / "upload"
        save_stream(stream, path, current_app.config["ASSET_MAX_BYTES"])
        return ingest_file(path, original_name, actor, tags=tags, shared=shared, kind=kind, text=text)


def _scratch() -> str:
    root = scratch_root(current_app.config)
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def ingest_file(path: Path, original_name: str, actor: Actor, *, tags: Any = None, shared: Any = False,
                kind: str | None = None, text: str | None = None) -> Asset:
    """Check, probe and thumbnail a local file, put it in storage and record the asset."""
    config = current_app.config
    name = Path(str(original_name or "").replace("\\", "/")).name.strip()
    if not name:
        raise AssetRejected(_l("The file has no name."))
    if len(name) > MAX_NAME:
        raise AssetRejected(_l("The file name is longer than %(n)s characters.", n=MAX_NAME))
    ext = extension_of(name)
    if ext not in EXTENSIONS:
        raise AssetRejected(_l("Unsupported file type .%(ext)s; use one of: %(list)s.", ext=ext or "?",
                               list=", ".join(sorted(EXTENSIONS))))
    kind = (kind or "").strip().lower() or EXTENSIONS[ext]["kind"]
    if kind not in KINDS:
        raise AssetRejected(_l("The kind must be one of: %(v)s.", v=", ".join(KINDS)), "kind")
    if ext not in KIND_EXTENSIONS[kind]:
        raise AssetRejected(_l("A %(kind)s cannot be a .%(ext)s file.", kind=kind, ext=ext), "kind")
    tag_list = parse_tags(tags)
    size = path.stat().st_size
    if size > config["ASSET_MAX_BYTES"]:
        raise AssetRejected(too_large_message(config["ASSET_MAX_BYTES"]), status=413)
    if size == 0:
        raise AssetRejected(_l("The file is empty."))

    asset_id = new_asset_id()
    with tempfile.TemporaryDirectory(prefix="asset-probe-", dir=_scratch()) as folder:
        thumb = Path(folder) / "thumb.jpg"
        probers = {"image": _probe_image, "logo": _probe_image, "clip": _probe_clip, "audio": _probe_audio,
                   "font": _probe_font}
        facts = probers[kind](path, ext, kind, thumb, Path(folder), config)
        if kind == "font" and text:
            missing = missing_glyphs(facts["probe"]["cmap"], text)
            if missing:
                raise AssetRejected(missing_glyphs_message(missing), "text")
        source = facts.pop("path", path)
        storage = get_storage()
        asset = Asset(id=asset_id, owner=actor.principal, kind=kind, original_name=name, ext=ext,
                      size=source.stat().st_size, tags_text=_tags_text(tag_list), shared=parse_flag(shared),
                      has_thumbnail=thumb.is_file(), **facts)
        storage.put_file(asset_key(asset_id, asset.file_name), source)
        if thumb.is_file():
            storage.put_file(asset_key(asset_id, "thumb.jpg"), thumb)
    proxies.request(asset)
    db.session.add(asset)
    db.session.commit()
    if asset.proxy == "wanted":
        proxies.publish(asset.id)  # if the broker is down, the reconciler asks again
    return asset


def _tags_text(tags: list[str]) -> str:
    return f",{','.join(tags)}," if tags else ""


def _not_a(ext: str) -> str:
    return str(_l("The file is not a valid %(type)s file, as its name (.%(ext)s) claims.",
                  type=EXTENSIONS[ext]["label"], ext=ext))


def _probe_image(path: Path, ext: str, kind: str, thumb: Path, folder: Path, config) -> dict[str, Any]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # our own limit below, with a clear message
    try:
        with Image.open(path) as img:
            fmt = img.format
            width, height = img.size
            if fmt != EXTENSIONS[ext]["pil"]:
                raise AssetRejected(_not_a(ext))
            if width * height > config["ASSET_MAX_PIXELS"]:
                raise AssetRejected(_l("The image has %(mp)s megapixels; the limit is %(limit)s.",
                                       mp=round(width * height / 1e6, 1),
                                       limit=round(config["ASSET_MAX_PIXELS"] / 1e6, 1)))
            img.load()
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            if kind == "logo" and not alpha:
                raise AssetRejected(_l("A logo must be a PNG with transparency (an alpha channel)."))
            orientation = img.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(img)
            out = path
            if orientation not in (0, 1):
                # Bake the rotation into the pixels so every reader sees the picture upright.
                out = folder / f"upright.{ext}"
                params: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
                if fmt == "JPEG" and upright.mode not in ("RGB", "L"):
                    upright = upright.convert("RGB")
                upright.save(out, format=fmt, **params)
            width, height = upright.size
            _thumbnail(upright, thumb, checker=alpha)
            mode = img.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, AssetRejected):
            raise
        raise AssetRejected(_not_a(ext)) from None
    return {"path": out, "width": width, "height": height, "codec": fmt.lower(), "duration": None,
            "probe": {"format": fmt.lower(), "mode": mode, "alpha": alpha, "exif_orientation": orientation}}


def _thumbnail(img, dest: Path, checker: bool = False) -> None:
    from PIL import Image

    picture = img.copy()
    picture.thumbnail(THUMB_SIZE)
    if picture.mode not in ("RGB", "RGBA"):
        picture = picture.convert("RGBA")
    if checker:
        board = Image.new("RGB", picture.size, (200, 200, 200))
        tile = Image.new("RGB", (10, 10), (240, 240, 240))
        for y in range(0, picture.size[1], 20):
            for x in range(0, picture.size[0], 20):
                board.paste(tile, (x, y))
                board.paste(tile, (x + 10, y + 10))
        board.paste(picture, (0, 0), picture.convert("RGBA"))
        picture = board
    picture.convert("RGB").save(dest, format="JPEG", quality=85)


def _media_info(path: Path, ext: str) -> dict[str, Any]:
    try:
        info = probe(path)
    except ProbeError:
        raise AssetRejected(_not_a(ext)) from None
    formats = set(info["format"].split(","))
    if not formats & EXTENSIONS[ext]["formats"]:
        raise AssetRejected(_not_a(ext))
    return info


def _check_length(duration: float | None, config) -> float:
    if not duration or duration <= 0:
        raise AssetRejected(_l("The file has no playable length."))
    if duration > config["ASSET_MAX_SECONDS"]:
        raise AssetRejected(_l("The file lasts %(s)s s; the limit is %(limit)s s.", s=round(duration, 1),
                               limit=config["ASSET_MAX_SECONDS"]))
    return duration


def _probe_clip(path: Path, ext: str, kind: str, thumb: Path, folder: Path, config) -> dict[str, Any]:
    info = _media_info(path, ext)
    video = video_stream(info)
    if video is None or not video.get("width"):
        raise AssetRejected(_l("The file has no video stream."))
    duration = _check_length(info["duration"] or video.get("duration"), config)
    width, height = video["width"], video["height"]
    if abs(video.get("rotation") or 0) in (90, 270):
        width, height = height, width
    if width * height > config["ASSET_MAX_PIXELS"]:
        raise AssetRejected(_l("The video is larger than the limit of %(limit)s megapixels.",
                               limit=round(config["ASSET_MAX_PIXELS"] / 1e6, 1)))
    try:
        poster_frame(path, thumb, min(1.0, duration / 2), hdr=is_hdr(video))
    except ProbeError:
        raise AssetRejected(_l("No frame of the video can be decoded.")) from None
    audio = audio_stream(info)
    return {"width": width, "height": height, "codec": video["codec"], "duration": duration,
            "probe": {"format": info["format"], "fps": video.get("fps"), "rotation": video.get("rotation"),
                      "hdr": HDR_TRANSFERS.get(video.get("transfer") or ""),
                      "has_audio": audio is not None, "audio_codec": audio["codec"] if audio else None}}


def _probe_audio(path: Path, ext: str, kind: str, thumb: Path, folder: Path, config) -> dict[str, Any]:
    info = _media_info(path, ext)
    audio = audio_stream(info)
    if audio is None:
        raise AssetRejected(_l("The file has no audio stream."))
    if video_stream(info) is not None:
        raise AssetRejected(_l("The file has a video stream; upload it as a clip."))
    duration = _check_length(info["duration"] or audio.get("duration"), config)
    try:
        waveform(path, thumb)
    except ProbeError:
        raise AssetRejected(_l("The audio cannot be decoded.")) from None
    return {"width": None, "height": None, "codec": audio["codec"], "duration": duration,
            "probe": {"format": info["format"], "sample_rate": audio.get("sample_rate"),
                      "channels": audio.get("channels")}}


def _probe_font(path: Path, ext: str, kind: str, thumb: Path, folder: Path, config) -> dict[str, Any]:
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            flavour = "cff" if font.sfntVersion == "OTTO" else "truetype"
            codepoints = sorted(font.getBestCmap() or {})
            family = font["name"].getBestFamilyName() if "name" in font else None
            glyphs = font["maxp"].numGlyphs if "maxp" in font else None
    except (TTLibError, OSError, KeyError, AssertionError, ValueError, TypeError, AttributeError):
        raise AssetRejected(_not_a(ext)) from None
    if ext == "ttf" and flavour == "cff":
        raise AssetRejected(_not_a(ext))
    if not codepoints:
        raise AssetRejected(_l("The font maps no characters."))
    ranges = _ranges(codepoints)
    _font_thumbnail(path, ranges, thumb)
    return {"width": None, "height": None, "codec": flavour, "duration": None,
            "probe": {"family": family, "glyphs": glyphs, "characters": len(codepoints), "cmap": ranges,
                      "chinese": missing_glyphs(ranges, "中文字体") == []}}


def _ranges(codepoints: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def _covered(ranges: list[list[int]], cp: int) -> bool:
    lo, hi = 0, len(ranges) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if cp < ranges[mid][0]:
            hi = mid - 1
        elif cp > ranges[mid][1]:
            lo = mid + 1
        else:
            return True
    return False


def missing_glyphs(ranges: list[list[int]], text: str) -> list[str]:
    """Characters of `text` (spaces and controls aside) that a font's cmap does not map."""
    missing: list[str] = []
    for char in text:
        if char.isspace() or ord(char) < 32:
            continue
        if not _covered(ranges, ord(char)) and char not in missing:
            missing.append(char)
    return missing


def missing_glyphs_message(missing: list[str]) -> str:
    return str(_l("The font has no glyphs for: %(chars)s.", chars=" ".join(missing[:20])))


def _font_thumbnail(path: Path, ranges: list[list[int]], dest: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    sample = "".join(c for c in FONT_SAMPLE if c == " " or _covered(ranges, ord(c)))
    if not missing_glyphs(ranges, "字体"):
        sample += " 字体"
    try:
        font = ImageFont.truetype(str(path), 44)
    except OSError:
        raise AssetRejected(_l("The font cannot be drawn.")) from None
    img = Image.new("RGB", THUMB_SIZE, (29, 35, 48))
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((0, 0), sample.strip() or "?", font=font)
    x = (THUMB_SIZE[0] - (box[2] - box[0])) // 2 - box[0]
    y = (THUMB_SIZE[1] - (box[3] - box[1])) // 2 - box[1]
    draw.text((x, y), sample.strip() or "?", font=font, fill=(240, 240, 240))
    img.save(dest, format="JPEG", quality=85)


def import_folder(folder: Path, actor: Actor, *, tags: Any = None, shared: bool = False) -> Iterator[tuple[Path, Asset | None, str | None]]:
    """Import every file of a server folder (recursively); yields (path, asset or None, error)."""
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            yield path, ingest_file(path, path.name, actor, tags=tags, shared=shared), None
        except AssetRejected as exc:
            db.session.rollback()
            yield path, None, exc.message


# --- reading ---------------------------------------------------------------------------------


def visible(actor: Actor):
    """The WHERE clause of the assets an actor may see: their own and shared ones; admins all."""
    if actor.is_admin:
        return None
    return or_(Asset.owner == actor.principal, Asset.shared.is_(True))


def get_asset(asset_id: str, actor: Actor) -> Asset | None:
    """The asset if it exists and the actor may see it (else None: a 404, whoever owns it)."""
    if not isinstance(asset_id, str) or len(asset_id) > 40:
        return None
    asset = db.session.get(Asset, asset_id)
    if asset is None or not (actor.is_admin or asset.owner == actor.principal or asset.shared):
        return None
    return asset


class ListError(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__("invalid filter")
        self.fields = fields


def list_assets(actor: Actor, *, kind: str | None = None, tag: str | None = None, text: str | None = None,
                limit: Any = None, offset: Any = None) -> tuple[list[Asset], int, int | None]:
    """A page of visible assets, newest first: (rows, total, next offset or None)."""
    fields: dict[str, str] = {}
    try:
        limit = PAGE_DEFAULT if limit in (None, "") else int(limit)
        if not 1 <= limit <= PAGE_MAX:
            raise ValueError
    except ValueError:
        fields["limit"] = str(_l("A whole number from 1 to %(n)s.", n=PAGE_MAX))
    try:
        offset = 0 if offset in (None, "") else int(offset)
        if offset < 0:
            raise ValueError
    except ValueError:
        fields["offset"] = str(_l("A whole number of 0 or more."))
    if kind and kind not in KINDS:
        fields["kind"] = str(_l("The kind must be one of: %(v)s.", v=", ".join(KINDS)))
    if fields:
        raise ListError(fields)
    query = select(Asset)
    where = visible(actor)
    if where is not None:
        query = query.where(where)
    if kind:
        query = query.where(Asset.kind == kind)
    if tag and tag.strip():
        query = query.where(Asset.tags_text.contains(f",{tag.strip().lower()},", autoescape=True))
    if text and text.strip():
        needle = text.strip()
        query = query.where(or_(Asset.original_name.icontains(needle, autoescape=True),
                                Asset.tags_text.icontains(needle.lower(), autoescape=True)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(db.session.scalars(query.order_by(Asset.created_at.desc(), Asset.id.desc())
                                   .limit(limit).offset(offset)))
    next_offset = offset + limit if offset + limit < total else None
    return rows, total, next_offset


# --- use by tasks ----------------------------------------------------------------------------


def tasks_using(asset_id: str) -> list[str]:
    """Ids of the waiting or running tasks whose brief names the asset."""
    active = [s.value for s in ACTIVE_STATES]
    rows = db.session.execute(select(RenderTask.id, RenderTask.request)
                              .where(RenderTask.status.in_(active))).all()
    return [task_id for task_id, brief in rows
            if any(ref == asset_id for _field, ref, _kinds in asset_refs((brief or {}).get("config")))]


def check_asset_refs(brief: dict[str, Any], actor: Actor) -> None:
    """Every asset a validated brief names exists, is the actor's to use and of the right kind, and
    a brand font has the glyphs of the texts it will draw; BriefError naming the field otherwise."""
    errors: dict[str, str] = {}
    for field, asset_id, kinds in asset_refs(brief.get("config")):
        asset = get_asset(asset_id, actor)
        if asset is None:
            errors[field] = str(_l("No asset with id %(id)s in your library.", id=asset_id))
        elif asset.kind not in kinds:
            errors[field] = str(_l("Asset %(id)s is a %(kind)s; this field takes: %(kinds)s.", id=asset_id,
                                   kind=asset.kind, kinds=", ".join(kinds)))
        elif asset.kind == "font":
            missing = missing_glyphs((asset.probe or {}).get("cmap") or [], texts_of(brief))
            if missing:
                errors[field] = missing_glyphs_message(missing)
    if errors:
        raise BriefError(errors)


def delete_asset(asset: Asset) -> None:
    """Remove an asset and its files; AssetInUse while a waiting or running task uses it."""
    users = tasks_using(asset.id)
    if users:
        raise AssetInUse(users)
    storage = get_storage()
    db.session.delete(asset)
    db.session.commit()
    for name in (asset.file_name, "thumb.jpg", proxies.PROXY_NAME):
        storage.delete(asset_key(asset.id, name))


def copy_to(asset: Asset, dest: Path) -> Path:
    """Download an asset's file to a local path (for renders)."""
    get_storage().download(asset.storage_key, dest)
    return dest
