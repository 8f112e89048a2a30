"""The media library's work on the workers: a heavy clip's proxy (webapp/services/proxies.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from celery import shared_task
from flask import current_app

from webapp.catalog import TaskName
from webapp.extensions import db
from webapp.mediaprobe import ProbeError
from webapp.models.assets import Asset
from webapp.services import proxies
from webapp.storage import StorageError, asset_key, get_storage, scratch_root
from worker.pipeline.material import make_proxy
from worker.tasks import ignore


@shared_task(name=TaskName.ASSET_PROXY, bind=True)
def asset_proxy(self: Any, asset_id: str) -> Any:
    """Make the proxy of one clip and record it ready; a duplicate or stale message is ignored."""
    asset = proxies.wanted(str(asset_id))
    if asset is None:
        ignore(self, "no proxy wanted")
    probe = asset.probe or {}
    storage = get_storage()
    root = scratch_root(current_app.config)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="asset-proxy-", dir=root) as folder:
        src, dest = Path(folder) / asset.file_name, Path(folder) / proxies.PROXY_NAME
        try:
            storage.download(asset.storage_key, src)
            make_proxy(src, dest, asset.width, asset.height, probe.get("fps"), bool(probe.get("hdr")),
                       asset.duration)
            storage.put_file(asset_key(asset.id, proxies.PROXY_NAME), dest)
        except (ProbeError, StorageError, OSError) as exc:
            return proxies.failed(asset.id, str(exc))
    if proxies.finish(asset.id):
        return "ready"
    # Deleted while the proxy was made: its files went with it, and so does this one. (Another
    # copy of the message may have finished first: then the asset is there and its proxy stays.)
    if db.session.get(Asset, asset.id) is None:
        storage.delete(asset_key(asset.id, proxies.PROXY_NAME))
    return "not wanted any more"
