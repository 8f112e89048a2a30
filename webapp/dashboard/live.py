"""The dashboard's live board, built once per change and shared by every viewer.

A poll costs one index lookup (`board_stamp`): the board is rebuilt only when the stamp, the
clock tick (waiting ages and ETAs move with time) or the viewer's language and role differ from
the cached build. The shared HTML carries two placeholders filled per request: the viewer's own
live tasks and the ETag. A poll whose `If-None-Match` still matches gets `304 Not Modified`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, render_template
from flask_babel import get_locale
from flask_login import current_user

from webapp.catalog import WAITING_STATES, TaskStatus
from webapp.services import broker
from webapp.services import dashboard as board
from webapp.services import tasks as task_service

#: Waiting ages and ETAs on the board advance in steps of this many seconds.
TICK_SECONDS = 5
#: A newer build replaces a live one at most this often: under a stream of progress updates, viewers
#: see the board of at most this many seconds ago, and each process builds it at most once per period.
MIN_REBUILD_SECONDS = 1.0
#: Builds kept per app (one per language x role in use, plus the one being replaced).
KEEP = 16
YOURS_SLOT = "<!--aura:yours-->"
ETAG_SLOT = "aura-etag-slot"


@dataclass(frozen=True)
class Build:
    """One build of the board for one language and role."""

    key: str
    html: str
    live: bool
    #: Live tasks per submitter and state, for each viewer's own line.
    owners: dict[str, dict[str, int]]
    #: Each viewer's own line once rendered for this build (principal -> HTML).
    lines: dict[str, str] = field(default_factory=dict)


class BoardCache:
    """Builds per key, with one lock so concurrent polls of a new key build it once."""

    def __init__(self) -> None:
        self.builds: dict[str, Build] = {}
        self.lock = threading.Lock()
        self.building: dict[str, threading.Lock] = {}
        #: The newest build per variant (language and role) and when it was made.
        self.latest: dict[str, tuple[Build, float]] = {}

    def get(self, key: str, variant: str, build) -> Build:
        found = self.builds.get(key)
        if found is not None:
            return found
        newest = self.latest.get(variant)
        # Only a live board (one that polls) may be answered a little stale: its next poll brings the
        # change. A quiet board is refreshed only by an event (a submit), which must see it at once.
        if newest is not None and newest[0].live and time.monotonic() - newest[1] < MIN_REBUILD_SECONDS:
            return newest[0]
        with self.lock:
            gate = self.building.setdefault(key, threading.Lock())
        with gate:
            found = self.builds.get(key)
            if found is None:
                found = build()
                with self.lock:
                    self.builds[key] = found
                    self.latest[variant] = (found, time.monotonic())
                    while len(self.builds) > KEEP:
                        self.builds.pop(next(iter(self.builds)))
                    self.building.pop(key, None)
        return found


def _cache() -> BoardCache:
    cache = current_app.extensions.get("aura_board")
    if cache is None:
        cache = current_app.extensions.setdefault("aura_board", BoardCache())
    return cache


def board_key() -> tuple[str, str]:
    """(key, variant): what the shared board depends on (the task stamp, the clock tick, the
    language and role) and the variant part of it (language and role)."""
    variant = f"{get_locale()}|{current_user.role}"
    tick = int(time.time() // TICK_SECONDS)
    return f"{board.board_stamp()}|{tick}|{variant}", variant


def _build(key: str) -> Build:
    active = task_service.active_tasks()
    html = render_template("dashboard/_live.html", active=active, recent=board.recent_finished(),
                           grid=board.waiting_grid(broker.queue_depths()), chart=board.throughput_chart(),
                           live=bool(active), yours_slot=YOURS_SLOT, etag_slot=ETAG_SLOT)
    return Build(key=key, html=html, live=bool(active), owners=board.live_counts_by_submitter())


WAITING = {s.value for s in WAITING_STATES}


def _yours(build: Build, principal: str) -> str:
    """The viewer's own line: how many of their tasks run and wait (rendered once per build)."""
    line = build.lines.get(principal)
    if line is None:
        line = build.lines[principal] = _render_yours(build, principal)
    return line


def _render_yours(build: Build, principal: str) -> str:
    counts = build.owners.get(principal, {})
    running = sum(n for status, n in counts.items() if status == TaskStatus.PROCESSING.value)
    waiting = sum(n for status, n in counts.items() if status in WAITING)
    return render_template("dashboard/_yours.html", running=running, waiting=waiting)


@dataclass(frozen=True)
class Board:
    """The board as one viewer gets it (the HTML is only assembled when it is sent)."""

    build: Build
    yours: str
    etag: str

    @property
    def live(self) -> bool:
        return self.build.live

    @property
    def html(self) -> str:
        return self.build.html.replace(YOURS_SLOT, self.yours, 1).replace(ETAG_SLOT, self.etag, 1)


def live_board(principal: str) -> Board:
    """The shared board with this viewer's own line and the ETag filled in."""
    key, variant = board_key()
    build = _cache().get(key, variant, lambda: _build(key))
    yours = _yours(build, principal)
    etag = hashlib.blake2b(f"{build.key}|{yours}".encode(), digest_size=12).hexdigest()
    return Board(build=build, yours=yours, etag=etag)


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an `If-None-Match` value names this ETag (weak or strong, or a list)."""
    if not header:
        return False
    wanted = {part.strip().removeprefix("W/").strip('"') for part in header.split(",")}
    return etag in wanted or "*" in wanted


def cache_info() -> dict[str, Any]:
    """Keys currently built (for tests and debugging)."""
    return {"keys": list(_cache().builds)}
