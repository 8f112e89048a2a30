"""run_pipeline: every stage in-process, in order, with one overall progress figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webapp.catalog import STAGE_WEIGHTS

from .audio import render_audio
from .compose import assemble, render_chunk
from .errors import Cancelled
from .images import render_visuals
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

    def reporter(stage: str, share: float = 1.0, base: float | None = None):
        start = done if base is None else base

        def report(fraction: float, message: str) -> None:
            fraction = min(1.0, max(0.0, fraction))
            progress(min(1.0, start + STAGE_WEIGHTS[stage] * share * fraction), stage, message)

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
    chunks = board["chunks"]
    total = board["total_frames"]
    for chunk in chunks:
        check()
        share = chunk["frames"] / total
        render_chunk(board, chunk["index"], work_dir, reporter("render", share), cancelled)
        done += STAGE_WEIGHTS["render"] * share
    check()
    result = assemble(board, work_dir, out_dir, reporter("assemble"), cancelled)
    progress(1.0, "assemble", "Video ready")
    return result
