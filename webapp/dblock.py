"""One writer at a time on SQLite, across threads and processes, without SQLite's busy sleeps.

SQLite allows one writer; a second one waits in its busy handler, which sleeps in steps of up to
100 ms. Under concurrent submissions that sleep, not the work, sets the latency. Our writers take
this lock (a thread lock plus an flock on a file beside the database) around their short write
transactions, so they queue and wake at once. On PostgreSQL it does nothing.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

_thread_lock = threading.RLock()
_files: dict[str, int] = {}
_depth = threading.local()


def _lock_path(uri: str | None) -> str | None:
    uri = uri or current_app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///"):] + ".writelock"


@contextmanager
def write_lock(database_uri: str | None = None) -> Iterator[None]:
    """Hold the database's write lock (re-entrant within a thread). Outside an app context,
    pass the database URI."""
    path = _lock_path(database_uri)
    if path is None:
        yield
        return
    with _thread_lock:
        depth = getattr(_depth, "n", 0)
        _depth.n = depth + 1
        fd = _files.get(path)
        if fd is None or getattr(_depth, "pid", None) != os.getpid():
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            _files[path] = fd
            _depth.pid = os.getpid()
        try:
            if depth == 0:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            _depth.n = depth
            if depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)
