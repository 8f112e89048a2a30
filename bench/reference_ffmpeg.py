"""Reference render: the whole storyboard as ONE ffmpeg filter graph, same assets and encoder settings.

It is what the chunked pipeline is measured against in bench/render.py.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from worker.pipeline.audio import aac_args
from worker.pipeline.compose import chunk_graph, encoder_args, filter_thread_args, visuals_dir
from worker.pipeline.images import render_visuals
from worker.pipeline.proc import allotted_cores, run_ffmpeg


def render_reference(board: dict, work_dir: Path, audio_wav: str, out: Path) -> float:
    """Render and mux the full video in one ffmpeg run; returns wall seconds of that run."""
    manifest = render_visuals(board, work_dir, lambda *_: None, lambda: False)
    whole = copy.deepcopy(board)
    whole["chunks"] = [{"index": 0, "start_frame": 0, "frames": board["total_frames"]}]
    inputs, graph = chunk_graph(whole, manifest, visuals_dir(board, work_dir), 0)
    graph_file = out.with_suffix(".graph.txt")
    graph_file.write_text(graph, encoding="utf-8")
    threads = allotted_cores()
    audio_index = len(inputs) // 2
    started = time.perf_counter()
    run_ffmpeg(
        [*filter_thread_args(threads), *inputs, "-i", audio_wav, "-/filter_complex", str(graph_file),
         "-map", "[out]", "-map", f"{audio_index}:a", "-frames:v", str(board["total_frames"]),
         "-fps_mode", "passthrough", *encoder_args(board, threads),
         *aac_args(board),
         "-movflags", "+faststart", "-f", "mp4", str(out)],
        "reference", lambda: False,
    )
    return time.perf_counter() - started
