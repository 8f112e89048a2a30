"""Child processes (ffmpeg, espeak-ng) that can be watched and cancelled."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from .cache import remove_quietly
from .errors import Cancelled, PipelineError

POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: preexec_fn must not load it
except OSError:  # not Linux
    _LIBC = None


def die_with_parent() -> Callable[[], None]:
    """The preexec_fn of every child (call it in the parent: `preexec_fn=die_with_parent()`): the
    kernel kills the child (SIGKILL) when the worker process that started it dies, even by kill -9,
    so no ffmpeg or espeak-ng keeps encoding as an orphan. Children also stay in the worker's
    process group, so a supervisor's stop reaches them."""
    return functools.partial(_die_with, os.getpid())


def _die_with(parent: int) -> None:
    if _LIBC is None:
        return
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent's pid is taken before the fork: a parent that died before prctl took effect
    # (even before this child first ran) is seen here, and the child goes too.
    if os.getppid() != parent:
        os._exit(1)


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The encoding ffmpeg: the binary imageio-ffmpeg ships."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def allotted_cores() -> int:
    """Cores this process may run on (respects taskset / sched_setaffinity pinning)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _drain(stream, sink: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        sink(raw.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


def run_child(
    cmd: list[str],
    stage: str,
    cancelled: Callable[[], bool],
    *,
    partial: Iterable[Path] = (),
    on_line: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    on_err_line: Callable[[str], None] | None = None,
) -> str:
    """Run a child, polling `cancelled` every POLL_SECONDS; return the last lines of its stderr
    (`on_err_line`, if given, gets every line). `env`: the child's environment (default: this
    process's).

    On cancel the child is terminated (then killed), `partial` files are deleted and
    Cancelled is raised. A non-zero exit deletes `partial` and raises PipelineError.
    """
    partial = list(partial)
    try:
        child = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=die_with_parent(), env=env,
        )
    except OSError as exc:
        raise PipelineError(f"cannot start {cmd[0]}: {exc}", stage) from exc
    err_tail: deque[str] = deque(maxlen=40)
    readers = [
        threading.Thread(target=_drain, args=(child.stdout, on_line or (lambda _line: None)), daemon=True),
        threading.Thread(target=_drain, args=(child.stderr, _both(err_tail.append, on_err_line)), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        while True:
            try:
                child.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if on_tick:
                on_tick()
            if cancelled():
                stop_child(child)
                for path in partial:
                    remove_quietly(path)
                raise Cancelled(f"{stage} cancelled")
    except BaseException:
        if child.poll() is None:
            stop_child(child)
        for path in partial:
            remove_quietly(path)
        raise
    for reader in readers:
        reader.join(timeout=2)
    if child.returncode != 0:
        for path in partial:
            remove_quietly(path)
        tail = "\n".join(list(err_tail)[-8:])
        raise PipelineError(f"{Path(cmd[0]).name} exited with {child.returncode}: {tail}", stage)
    return "\n".join(err_tail)


def _both(first: Callable[[str], None], second: Callable[[str], None] | None) -> Callable[[str], None]:
    if second is None:
        return first

    def sink(line: str) -> None:
        first(line)
        second(line)

    return sink


def stop_child(child: subprocess.Popen, grace: float = 1.0) -> None:
    """Terminate a child, then kill it if it has not exited within `grace` seconds."""
    if child.poll() is not None:
        return
    child.terminate()
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if child.poll() is None:
        child.kill()
        child.wait(timeout=5)


def run_ffmpeg(
    args: list[str],
    stage: str,
    cancelled: Callable[[], bool],
    *,
    total_frames: int = 0,
    on_frames: Callable[[int], None] | None = None,
    partial: Iterable[Path] = (),
    env: dict[str, str] | None = None,
    on_err_line: Callable[[str], None] | None = None,
) -> str:
    """Run the encoding ffmpeg with `-progress pipe:1`, reporting encoded frames. With
    `on_err_line` (which gets every stderr line) ffmpeg logs at the info level, where filters such
    as blackdetect report."""
    level = "info" if on_err_line else "error"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", level,
           "-nostats", "-progress", "pipe:1", *args]

    def on_line(line: str) -> None:
        if on_frames and line.startswith("frame="):
            try:
                on_frames(min(int(line[6:].strip() or 0), total_frames or 10**9))
            except ValueError:
                pass

    return run_child(cmd, stage, cancelled, partial=partial, on_line=on_line, env=env, on_err_line=on_err_line)
