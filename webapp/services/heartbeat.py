"""The background thread that keeps a worker's hold on its work: a lease renewed in the database,
progress written at a bounded rate, and the cancel flag watched.

`LeaseKeeper` (a task's claim) and `StageKeeper` (one stage of a render) share this loop and
differ only in what one beat reads and writes."""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from webapp.extensions import db

log = logging.getLogger(__name__)


class Heartbeat:
    """Runs `_tick()` every `poll_seconds` in a daemon thread while the `with` block lasts.

    `cancelled()` turns True when the work was cancelled (`cancel_requested`) or the hold on it was
    lost (`lost`: another worker may own it now, so this one must stop and write nothing)."""

    def __init__(self, name: str, poll_seconds: float = 0.5):
        self.engine = db.engine
        self.db_uri = current_app.config["SQLALCHEMY_DATABASE_URI"]
        self.lease_seconds = current_app.config["LEASE_SECONDS"]
        self.poll_seconds = poll_seconds
        self.cancel_requested = False
        self.lost = False
        self._last_renew = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cancelled(self) -> bool:
        return self.cancel_requested or self.lost

    def renewal_due(self) -> bool:
        return time.monotonic() - self._last_renew > self.lease_seconds / 3

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._tick()
            except Exception:  # a database hiccup must not kill the heartbeat
                log.exception("heartbeat failed: %s", self._thread.name)

    def _tick(self) -> None:
        raise NotImplementedError
