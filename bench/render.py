"""Benchmark: render the SPEC sample brief (60 s, 1920x1080, high) and compare with the targets.

Run from the repository root:  .venv/bin/python bench/render.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reference_ffmpeg import render_reference  # noqa: E402
from worker.pipeline import build_storyboard, render_audio, render_chunk, run_pipeline  # noqa: E402
from worker.pipeline.images import render_visuals  # noqa: E402
from worker.pipeline.probe import probe_media  # noqa: E402

SAMPLE_BRIEF = {
    "theme_id": "产品宣传",
    "keywords_id": ["科技", "创新", "未来"],
    "target_duration_id": 60,
    "user_description_id": "一个展示AI技术发展的宣传视频",
    "priority": "high",
    "config": {"quality": "high", "resolution": "1920x1080"},
}
TARGET_RATIO, TARGET_RSS_MB, TARGET_PARALLEL = 1.3, 1024, 0.55


def peak_rss_mb() -> float:
    """Peak resident set of this process or of its largest child (ffmpeg), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _pinned_worker(core: int, board: dict, work_dir: str, indexes: list[int], queue) -> None:
    os.sched_setaffinity(0, {core})
    for index in indexes:
        render_chunk(board, index, Path(work_dir), lambda *_: None, lambda: False)
    queue.put((core, peak_rss_mb()))


def pinned_run(board: dict, src: Path, root: Path, plan: dict[int, list[int]]) -> tuple[float, float]:
    """Render chunks in one child per core of `plan` (core -> chunk indexes); wall and peak RSS."""
    work = root / f"pinned-{len(plan)}"
    work.mkdir()
    for item in src.glob("visuals-*"):
        shutil.copytree(item, work / item.name)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    started = time.perf_counter()
    procs = [ctx.Process(target=_pinned_worker, args=(core, board, str(work), idx, queue)) for core, idx in plan.items()]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    wall = time.perf_counter() - started
    if any(proc.exitcode for proc in procs):
        raise SystemExit("a pinned chunk worker failed")
    rss = max(queue.get()[1] for _ in procs)
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="directory to keep the outputs in (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="aura-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    work, out = root / "work", root / "out"

    marks: dict[str, float] = {}
    machine_load = os.getloadavg()

    def progress(fraction: float, stage: str, message: str) -> None:
        marks.setdefault(stage, time.perf_counter())
        if stage == "assemble" and message == "Checking the video":
            marks.setdefault("muxed", time.perf_counter())

    started = time.perf_counter()
    result = run_pipeline(SAMPLE_BRIEF, work, out, progress, lambda: False)
    wall = time.perf_counter() - started
    info = probe_media(out / result["video"])
    board = build_storyboard(SAMPLE_BRIEF)
    rss = peak_rss_mb()
    video_path = marks["muxed"] - marks["render"]

    audio = render_audio(board, work, lambda *_: None, lambda: False)
    render_visuals(board, work, lambda *_: None, lambda: False)
    reference = render_reference(board, work, audio["wav"], root / "reference.mp4")
    ratio = video_path / reference

    cores = sorted(os.sched_getaffinity(0))
    all_chunks = [c["index"] for c in board["chunks"]]
    one_wall, one_rss = pinned_run(board, work, root, {cores[0]: all_chunks})
    parallel_ratio = None
    if len(cores) >= 2:
        # Balance the two workers by frames, as a queue of chunks would.
        halves: dict[int, list[int]] = {cores[0]: [], cores[1]: []}
        load = {cores[0]: 0, cores[1]: 0}
        for chunk in sorted(board["chunks"], key=lambda c: -c["frames"]):
            core = min(load, key=load.get)
            halves[core].append(chunk["index"])
            load[core] += chunk["frames"]
        two_wall, two_rss = pinned_run(board, work, root, halves)
        parallel_ratio = two_wall / one_wall
    duration = board["total_frames"] / board["fps"]

    print(f"Sample brief: {duration:.0f} s, {board['width']}x{board['height']}, quality {board['quality']}, "
          f"{len(board['chunks'])} chunks, {os.cpu_count()} cores, load average at start {machine_load[0]:.2f} "
          "(other processes on the machine skew the parallel measurement)")
    print(f"Output: {info['video_codec']} {info['profile']} {info['pix_fmt']}, {info['duration']:.3f} s, "
          f"{info['width']}x{info['height']}, {info['audio_codec']} {info['sample_rate']} Hz")
    stages = ["storyboard", "visuals", "audio", "render", "assemble"]
    times = {s: (marks.get(stages[i + 1], started + wall) if i + 1 < len(stages) else started + wall) - marks[s]
             for i, s in enumerate(stages)}
    print("Stages: " + ", ".join(f"{s} {t:.1f} s" for s, t in times.items()))
    print(f"Wall time (run_pipeline, all stages): {wall:.1f} s")
    print(f"Realtime factor (wall / video duration): {wall / duration:.2f}")
    print(f"Render + join + mux: {video_path:.1f} s; reference single filter graph: {reference:.1f} s")
    print(f"Ratio to reference: {ratio:.2f} (target <= {TARGET_RATIO}) {verdict(ratio <= TARGET_RATIO)}")
    peak = max(rss, one_rss)
    print(f"Peak RSS per render process: {peak:.0f} MB (target <= {TARGET_RSS_MB}) {verdict(peak <= TARGET_RSS_MB)}")
    if parallel_ratio is None:
        print("Parallel chunks: needs 2 cores, SKIPPED")
    else:
        print(f"One worker pinned to one core, all chunks: {one_wall:.1f} s; two workers pinned to their own "
              f"cores: {two_wall:.1f} s (peak RSS {two_rss:.0f} MB)")
        print(f"Parallel-chunks wall ratio: {parallel_ratio:.2f} (target <= {TARGET_PARALLEL}) "
              f"{verdict(parallel_ratio <= TARGET_PARALLEL)}")
    print(f"Outputs in {root}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
