"""The dashboard's live board, built once per change and shared by every viewer.

The board is rebuilt only when the task stamp (`board_stamp`, one index lookup), the clock tick
(waiting ages and ETAs move with time) or the viewer's language and role differ from the cached
build. A live board (one that polls) is built at most once per MIN_REBUILD_SECONDS by all gunicorn
workers together (through Redis), and within that period a poll runs no query at all; a poll never
waits for a build another thread or process is making when it can have the previous one. The
shared HTML carries two placeholders filled per request: the viewer's own live tasks and the ETag.
A poll whose `If-None-Match` still matches gets `304 Not Modified`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import copy_current_request_context, current_app, render_template
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
    #: The clock tick it was built for.
    tick: int = 0
    #: Each viewer's own line once rendered for this build (principal -> HTML).
    lines: dict[str, str] = field(default_factory=dict)


class BoardCache:
    """Builds per key, shared by the threads of one process and, through Redis, by every process.

    A poll of a live board within MIN_REBUILD_SECONDS of the last check of its variant costs no
    query at all; after that, one index lookup (the stamp). A new stamp is built once: by the first
    thread of the first process to ask (a Redis lock), the others take its build from Redis, and
    meanwhile a live board's polls get the previous build instead of waiting.
    """

    def __init__(self) -> None:
        self.builds: dict[str, Build] = {}
        self.lock = threading.Lock()
        self.building: dict[str, threading.Lock] = {}
        #: The newest build per variant (language and role) and when its stamp was last checked.
        self.latest: dict[str, tuple[Build, float]] = {}
        #: The order in which builds were first used here (newer ones have larger numbers).
        self.order: dict[str, int] = {}
        self.counter = itertools.count()

    def recent(self, variant: str, tick: int) -> Build | None:
        """The variant's newest build when a poll may have it without a query: live, of this tick,
        checked less than MIN_REBUILD_SECONDS ago. Only a live board (one that polls) may be answered
        a little stale: its next poll brings the change. A quiet board is refreshed only by an event
        (a submit), which must see it at once."""
        newest = self.latest.get(variant)
        if newest is None:
            return None
        build, checked = newest
        if build.live and build.tick == tick and time.monotonic() - checked < MIN_REBUILD_SECONDS:
            return build
        return None

    def adopt_shared(self, variant: str, tick: int) -> Build | None:
        """The newest build any process made for this variant, when a poll may have it without a
        query (as in `recent`, timed from when it was made): so however many processes serve the
        polls, a live board is built at most once per MIN_REBUILD_SECONDS. One Redis GET."""
        from redis import RedisError

        from webapp.services.broker import redis_client

        try:
            client = redis_client()
            raw = client.get(SHARED_LATEST + variant)
            if raw is None:
                return None
            latest = json.loads(raw)
            age = time.time() - latest["built"]
            if not latest["live"] or latest["tick"] != tick or not 0 <= age < MIN_REBUILD_SECONDS:
                return None
            found = self.builds.get(latest["key"])
            if found is None:
                payload = client.get(SHARED_KEY + latest["key"])
                if payload is None:
                    return None
                found = _from_payload(latest["key"], payload)
        except RedisError:
            return None
        self._keep(found)
        self._checked(variant, found, time.monotonic() - age)
        return found

    def get(self, key: str, variant: str, build: Callable[[], Build], fresh: bool = False) -> Build:
        found = self.builds.get(key)
        if found is not None:
            self._checked(variant, found)
            return found
        newest = self.latest.get(variant)
        with self.lock:
            gate = self.building.setdefault(key, threading.Lock())
        # A live board's polls never wait for a build another thread is making: they get the last one.
        stale_ok = not fresh and newest is not None and newest[0].live
        if not gate.acquire(blocking=not stale_ok):
            return newest[0]  # type: ignore[index]
        if stale_ok and time.monotonic() - newest[1] < 2 * MIN_REBUILD_SECONDS:  # type: ignore[index]
            # Nor does the poll that found the change, while the last build is young: it gets that
            # one and the new build is made beside it (the next polls get it).
            threading.Thread(target=copy_current_request_context(self._make),
                             args=(key, variant, build, gate, True), daemon=True).start()
            return newest[0]  # type: ignore[index]
        found = self._make(key, variant, build, gate, stale_ok)
        return found if found is not None else newest[0]  # type: ignore[index]

    def _make(self, key: str, variant: str, build: Callable[[], Build], gate: threading.Lock,
              stale_ok: bool) -> Build | None:
        """Make (or fetch from Redis) the build for `key` and keep it; the caller holds `gate`."""
        try:
            found = self.builds.get(key)
            if found is None:
                found = shared_build(key, variant, build, stale_ok)
                if found is None:
                    return None
                self._keep(found)
            self._checked(variant, found)
            return found
        finally:
            gate.release()
            with self.lock:
                self.building.pop(key, None)

    def _keep(self, found: Build) -> None:
        with self.lock:
            self.builds.setdefault(found.key, found)
            while len(self.builds) > KEEP:
                self.builds.pop(next(iter(self.builds)))

    def _checked(self, variant: str, found: Build, at: float | None = None) -> None:
        """`found` is the variant's newest build, its stamp checked at `at` (monotonic; now)."""
        with self.lock:
            self.order.setdefault(found.key, next(self.counter))
            current = self.latest.get(variant)
            # Never step back to an older build (a thread that read the stamp before a newer one was stored).
            if current is None or self.order.get(current[0].key, -1) <= self.order[found.key]:
                self.latest[variant] = (found, time.monotonic() if at is None else at)
            while len(self.order) > KEEP * 4:
                self.order.pop(next(iter(self.order)))


#: Redis keys of the builds shared between processes, and of the lock of the one making a build.
SHARED_KEY = "aura:board:build:"
SHARED_LOCK = "aura:board:lock:"
SHARED_LATEST = "aura:board:latest:"
#: How long a build stays in Redis, and how long a process waits for another's build.
SHARED_TTL_SECONDS = 60
SHARED_WAIT_SECONDS = 2.0


def _from_payload(key: str, payload: bytes) -> Build:
    data = json.loads(payload)
    return Build(key=key, html=data["html"], live=data["live"], owners=data["owners"], tick=data["tick"])


def shared_build(key: str, variant: str, build: Callable[[], Build], stale_ok: bool) -> Build | None:
    """The build for `key`: from Redis when another process made it, else made here and shared.

    None when another process is making it and the caller may serve its previous build meanwhile.
    Without Redis every process builds its own."""
    from redis import RedisError

    from webapp.services.broker import redis_client

    try:
        client = redis_client()
        payload = client.get(SHARED_KEY + key)
        if payload is None and not client.set(SHARED_LOCK + key, b"1", nx=True, ex=30):
            if stale_ok:
                return None
            waited_until = time.monotonic() + SHARED_WAIT_SECONDS
            while payload is None and time.monotonic() < waited_until:
                time.sleep(0.02)
                payload = client.get(SHARED_KEY + key)
    except RedisError:
        return build()
    if payload is not None:
        return _from_payload(key, payload)
    made = build()
    try:
        client.set(SHARED_KEY + key, json.dumps({"html": made.html, "live": made.live, "owners": made.owners,
                                                 "tick": made.tick}), ex=SHARED_TTL_SECONDS)
        client.set(SHARED_LATEST + variant, json.dumps({"key": key, "built": time.time(), "live": made.live,
                                                        "tick": made.tick}), ex=SHARED_TTL_SECONDS)
        client.delete(SHARED_LOCK + key)
    except RedisError:
        pass
    return made


def _cache() -> BoardCache:
    cache = current_app.extensions.get("aura_board")
    if cache is None:
        cache = current_app.extensions.setdefault("aura_board", BoardCache())
    return cache


def board_variant() -> str:
    """What the shared board differs by besides the data: the viewer's language and role."""
    return f"{get_locale()}|{current_user.role}"


def board_key(variant: str, tick: int) -> str:
    """What the shared board depends on: the task stamp, the clock tick, the language and role."""
    return f"{board.board_stamp()}|{tick}|{variant}"


def _build(key: str, tick: int) -> Build:
    active = task_service.active_tasks()
    html = render_template("dashboard/_live.html", active=active, recent=board.recent_finished(),
                           grid=board.waiting_grid(broker.queue_depths()), chart=board.throughput_chart(),
                           live=bool(active), yours_slot=YOURS_SLOT, etag_slot=ETAG_SLOT)
    return Build(key=key, html=html, live=bool(active), owners=board.live_counts_by_submitter(), tick=tick)


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


def live_board(principal: str, fresh: bool = False) -> Board:
    """The shared board with this viewer's own line and the ETag filled in; `fresh` skips the
    MIN_REBUILD_SECONDS window (a refresh right after the viewer's own submit)."""
    variant = board_variant()
    tick = int(time.time() // TICK_SECONDS)
    cache = _cache()
    build = None if fresh else cache.recent(variant, tick) or cache.adopt_shared(variant, tick)
    if build is None:
        key = board_key(variant, tick)
        build = cache.get(key, variant, lambda: _build(key, tick), fresh=fresh)
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
