"""The video pipeline: brief -> storyboard -> stills + audio -> chunks -> finished MP4.

Plain Python (no Flask, no Celery). Each stage takes a progress callback and a cancel check.
"""

from __future__ import annotations

from collections.abc import Callable

from .audio import render_audio
from .compose import assemble, render_chunk
from .errors import BadBrief, Cancelled, PipelineError
from .images import render_visuals
from .probe import probe_media
from .run import run_pipeline
from .storyboard import build_storyboard

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

__all__ = [
    "BadBrief", "CancelFn", "Cancelled", "PipelineError", "ProgressFn", "assemble", "build_storyboard",
    "probe_media", "render_audio", "render_chunk", "render_visuals", "run_pipeline",
]
