"""Proxies: a light copy of a heavy clip, made once after its upload, that renders read instead.

A phone records 3840x2160 HEVC, often at 60 frames per second and in HDR (HLG). Every render
that shows such a clip decodes those frames, drops half of them, scales them down and brings
them to SDR: a 60 s 1080p video of six such clips took 4.5x the procedural one, and a 10 s
preview of them 9 s. A proxy is that work done once: H.264, SDR BT.709, at most 1920x1080 in
the clip's orientation and at most 30 frames per second (the fastest a render uses), so every
render of a storyboard that fits in it (all but 4K and other boards above 1080p) reads it instead.

The database is the record: `Asset.proxy` is None (not needed), `wanted`, `ready` or `failed`.
An upload that needs one sets `wanted` and publishes `aura.assets.proxy` after its commit; the
worker makes `assets/<id>/proxy.mp4` and sets `ready`. A message that was lost (the broker was
down at the upload, a worker died mid-transcode) is published again by the reconciler once the
request is older than PROXY_GRACE; duplicates make the same file and only the first sets `ready`.
Until the proxy is ready, and after PROXY_TRIES failures, renders read the original.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from webapp.catalog import TaskName
from webapp.extensions import db
from webapp.models.assets import Asset
from webapp.services import dispatch
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

PROXY_NAME = "proxy.mp4"
#: The largest frame a proxy keeps (long side, short side) and its fastest rate.
PROXY_BOX = (1920, 1080)
PROXY_FPS = 30
#: A wanted proxy not ready this long after it was last asked for is asked for again (a long
#: clip's transcode may take minutes: the grace grows with its length).
PROXY_GRACE = timedelta(minutes=5)
PROXY_TRIES = 3
BATCH = 50


def needs_proxy(width: int | None, height: int | None, fps: float | None, hdr: bool) -> bool:
    """Whether a clip is heavier to render from than its proxy would be."""
    if not width or not height:
        return False
    long_side, short_side = max(width, height), min(width, height)
    return long_side > PROXY_BOX[0] or short_side > PROXY_BOX[1] or (fps or 0) > PROXY_FPS + 0.5 or hdr


def proxy_size(width: int, height: int) -> tuple[int, int]:
    """The proxy's frame: the clip's, shrunk (never grown) to fit PROXY_BOX in its orientation,
    in even numbers."""
    box_w, box_h = PROXY_BOX if width >= height else PROXY_BOX[::-1]
    scale = min(1.0, box_w / width, box_h / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def grace_for(asset: Asset) -> timedelta:
    return max(PROXY_GRACE, timedelta(seconds=3 * (asset.duration or 0)))


def request(asset: Asset) -> None:
    """Mark a new clip's proxy as wanted when it needs one (the caller commits, then `publish`)."""
    if asset.kind != "clip":
        return
    probe = asset.probe or {}
    if needs_proxy(asset.width, asset.height, probe.get("fps"), bool(probe.get("hdr"))):
        asset.proxy, asset.proxy_at, asset.proxy_tries = "wanted", utcnow(), 0


def publish(asset_id: str) -> bool:
    """Ask a worker to make the proxy (after the commit that marked it wanted)."""
    return dispatch.send(TaskName.ASSET_PROXY, [asset_id], priority="high")


def republish_lost() -> int:
    """Reconciler: ask again for the wanted proxies whose request is older than its grace."""
    now = utcnow()
    stale = list(db.session.scalars(
        select(Asset).where(Asset.proxy == "wanted", Asset.proxy_at < now - PROXY_GRACE)
        .order_by(Asset.proxy_at).limit(BATCH)))
    published = 0
    for asset in stale:
        if asset.proxy_at >= now - grace_for(asset):
            continue
        moved = db.session.execute(
            update(Asset).where(Asset.id == asset.id, Asset.proxy == "wanted", Asset.proxy_at == asset.proxy_at)
            .values(proxy_at=now)).rowcount
        db.session.commit()
        if moved and publish(asset.id):
            log.info("proxy of %s asked for again (last asked %s)", asset.id, asset.proxy_at)
            published += 1
    return published


def wanted(asset_id: str) -> Asset | None:
    """The asset when its proxy is still wanted (a worker's check before it starts)."""
    db.session.rollback()
    asset = db.session.get(Asset, asset_id)
    return asset if asset is not None and asset.proxy == "wanted" else None


def finish(asset_id: str) -> bool:
    """Record the proxy as ready; False when the asset is gone or no longer wants one."""
    moved = db.session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.proxy == "wanted").values(proxy="ready")).rowcount
    db.session.commit()
    return bool(moved)


def failed(asset_id: str, why: str) -> dict[str, Any]:
    """Count a failed try; after PROXY_TRIES the proxy is given up (renders read the original)."""
    asset = db.session.get(Asset, asset_id)
    if asset is None or asset.proxy != "wanted":
        return {"state": None}
    asset.proxy_tries = (asset.proxy_tries or 0) + 1
    if asset.proxy_tries >= PROXY_TRIES:
        asset.proxy = "failed"
    db.session.commit()
    log.warning("proxy of %s failed (try %s): %s", asset_id, asset.proxy_tries, why)
    return {"state": asset.proxy, "tries": asset.proxy_tries}
