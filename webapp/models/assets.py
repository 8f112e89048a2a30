"""The media library: files people upload to use in their videos (images, clips, audio, logos, fonts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.storage import asset_key, asset_url
from webapp.timeutil import iso, utcnow


class Asset(db.Model):
    """One uploaded file; its bytes live in storage under keys derived from its id."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(8))
    original_name: Mapped[str] = mapped_column(String(255))
    #: The file's extension (lower case, no dot); the stored object is `original.<ext>`.
    ext: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    duration: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(32))
    #: Tags as `,a,b,` so one LIKE finds a tag on SQLite and PostgreSQL alike.
    tags_text: Mapped[str] = mapped_column(String(600), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A heavy clip's light copy for renders (`webapp/services/proxies.py`): None when the clip
    #: needs none, else wanted, ready or failed; the tries so far and when it was last asked for.
    proxy: Mapped[str | None] = mapped_column(String(8))
    proxy_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    proxy_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_assets_owner_created", "owner", "created_at", "id"),
        Index("ix_assets_kind_created", "kind", "created_at", "id"),
        Index("ix_assets_shared", "shared"),
        Index("ix_assets_proxy_at", "proxy", "proxy_at"),
    )

    @property
    def tags(self) -> list[str]:
        return [t for t in (self.tags_text or "").split(",") if t]

    @property
    def file_name(self) -> str:
        return f"original.{self.ext}"

    @property
    def storage_key(self) -> str:
        return asset_key(self.id, self.file_name)

    @property
    def thumbnail_key(self) -> str | None:
        return asset_key(self.id, "thumb.jpg") if self.has_thumbnail else None

    def to_dict(self) -> dict[str, Any]:
        probe = dict(self.probe or {})
        probe.pop("cmap", None)  # large and of no use to a reader; kept for the glyph checks
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.original_name,
            "owner": self.owner,
            "size": self.size,
            "duration": None if self.duration is None else round(self.duration, 3),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "tags": self.tags,
            "shared": self.shared,
            "created_at": iso(self.created_at),
            "probe": probe,
            "proxy": self.proxy,
            "url": asset_url(self.id, "file"),
            "thumbnail_url": asset_url(self.id, "thumbnail") if self.has_thumbnail else None,
        }
