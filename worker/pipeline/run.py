"""run_pipeline: every stage in-process, in order, with one overall progress figure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from webapp.catalog import STAGE_WEIGHTS

from .audio import render_audio
from .compose import assemble, render_chunk
from .errors import Cancelled
from .images import render_visuals
from .proc import allotted_cores
from .storyboard import build_storyboard


def run_pipeline(
    brief: dict,
    work_dir: Path,
    out_dir: Path,
    progress: Callable[[float, str, str], None],
    cancelled: Callable[[], bool],
) -> dict:
    """Brief -> finished video in out_dir; returns the result dict of assemble()."""
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    done = 0.0

    def reporter(stage: str):
        start = done

        def report(fraction: float, message: str) -> None:
            fraction = min(1.0, max(0.0, fraction))
            progress(min(1.0, start + STAGE_WEIGHTS[stage] * fraction), stage, message)

        return report

    def check() -> None:
        if cancelled():
            raise Cancelled("cancelled between stages")

    check()
    reporter("storyboard")(0.0, "Planning the storyboard")
    board = build_storyboard(brief)
    reporter("storyboard")(1.0, f"{len(board['scenes'])} scenes, {len(board['chunks'])} chunks")
    done += STAGE_WEIGHTS["storyboard"]
    for stage, func in (("visuals", render_visuals), ("audio", render_audio)):
        check()
        func(board, work_dir, reporter(stage), cancelled)
        done += STAGE_WEIGHTS[stage]
    check()
    render_chunks(board, work_dir, reporter("render"), cancelled)
    done += STAGE_WEIGHTS["render"]
    check()
    result = assemble(board, work_dir, out_dir, reporter("assemble"), cancelled)
    progress(1.0, "assemble", "Video ready")
    return result


def render_chunks(board: dict, work_dir: Path, report: Callable[[float, str], None],
                  cancelled: Callable[[], bool]) -> None:
    """Render every chunk, as many at once as this process has cores, each ffmpeg with its share
    of them (as two video workers on two cores do); `report` gets the fraction of frames done.

    A failed or cancelled chunk stops the others, and its error is raised.
    """
    chunks = sorted(board["chunks"], key=lambda c: -c["frames"])  # the longest first
    cores = allotted_cores()
    workers = max(1, min(cores, len(chunks)))
    total = board["total_frames"]
    lock = threading.Lock()
    frames_done: dict[int, float] = {}
    stop = threading.Event()

    def stopped() -> bool:
        return stop.is_set() or cancelled()

    def render(chunk: dict) -> None:
        def chunk_progress(fraction: float, message: str) -> None:
            with lock:  # one running sum, reported in order
                frames_done[chunk["index"]] = max(frames_done.get(chunk["index"], 0.0), fraction * chunk["frames"])
                report(sum(frames_done.values()) / total, message)

        if stopped():
            raise Cancelled("render cancelled")
        render_chunk(board, chunk["index"], work_dir, chunk_progress, stopped, max(1, cores // workers))

    with ThreadPoolExecutor(workers, thread_name_prefix="chunk") as pool:
        futures = [pool.submit(render, chunk) for chunk in chunks]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            stop.set()
            raise
