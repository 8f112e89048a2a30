"""Benchmark: render the SPEC sample brief (60 s, 1920x1080, high) and compare with the targets.

First, in each of --runs runs: the pipeline's render + join + mux time against x264's own encode
time of the same frames at the same settings (the finished video decoded and encoded again with
the pipeline's encoder arguments and threads, minus decoding it alone), both measured in the same
run, wall and CPU time; median and spread over the runs. Target: render within 1.6x of x264.
Then (--chunks) the chunked render against one filter graph, peak RSS and pinned parallel chunks.

Run from the repository root:  .venv/bin/python bench/render.py [--runs 3] [--chunks] [--keep DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import SAMPLE_BRIEF  # noqa: E402
from bench.reference_ffmpeg import render_reference  # noqa: E402
from worker.pipeline import build_storyboard, render_audio, render_chunk, run_pipeline  # noqa: E402
from worker.pipeline.compose import chunk_graph, encoder_args, filter_thread_args, visuals_dir  # noqa: E402
from worker.pipeline.images import render_visuals  # noqa: E402
from worker.pipeline.probe import probe_media  # noqa: E402
from worker.pipeline.proc import allotted_cores, ffmpeg_exe  # noqa: E402

TARGET_RATIO, TARGET_RSS_MB, TARGET_PARALLEL = 1.3, 1024, 0.55
TARGET_ENCODER_RATIO = 1.6


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_ffmpeg(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one ffmpeg run."""
    cpu = children_cpu()
    began = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began, children_cpu() - cpu


def encoder_time(board: dict, video: Path, scratch: Path) -> tuple[float, float]:
    """x264's own (wall, CPU) to encode the video's frames with the pipeline's settings and threads:
    decode + encode minus decode alone."""
    threads = allotted_cores()
    decode = _timed_ffmpeg(["-i", str(video), "-an", "-f", "null", "-"])
    both = _timed_ffmpeg(["-i", str(video), "-an", *encoder_args(board, threads), "-f", "mp4", str(scratch)])
    scratch.unlink(missing_ok=True)
    return both[0] - decode[0], both[1] - decode[1]


def pristine_encoder_time(board: dict, work: Path, scratch: Path) -> tuple[float, float, float]:
    """x264 alone on the very frames the chunks encode (their filter graphs written to raw video
    first, one chunk at a time): (x264 wall, x264 CPU, filter graph CPU). Re-encoding the finished
    file is cheaper for x264 than these frames, which are not yet smoothed by a first encode."""
    manifest = render_visuals(board, work, lambda *_: None, lambda: False)
    threads = allotted_cores()
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{board['width']}x{board['height']}",
           "-r", str(board["fps"])]
    wall = cpu = graph_cpu = 0.0
    for chunk in board["chunks"]:
        inputs, graph = chunk_graph(board, manifest, visuals_dir(board, work), chunk["index"])
        graph_file = scratch.with_suffix(".graph.txt")
        graph_file.write_text(graph, encoding="utf-8")
        frames = scratch.with_suffix(".yuv")
        graph_cpu += _timed_ffmpeg([*filter_thread_args(threads), *inputs, "-/filter_complex", str(graph_file),
                                    "-map", "[out]", "-frames:v", str(chunk["frames"]), "-fps_mode", "passthrough",
                                    "-f", "rawvideo", "-pix_fmt", "yuv420p", str(frames)])[1]
        read = _timed_ffmpeg([*raw, "-i", str(frames), "-f", "null", "-"])
        both = _timed_ffmpeg([*raw, "-i", str(frames), *encoder_args(board, threads), "-f", "mp4", str(scratch)])
        wall += both[0] - read[0]
        cpu += both[1] - read[1]
        frames.unlink()
        scratch.unlink(missing_ok=True)
    return wall, cpu, graph_cpu


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def encoder_comparison(root: Path, runs: int) -> bool:
    """Render the sample `runs` times from scratch; each time, also time x264 alone on the result."""
    renders, encodes, render_cpu, encode_cpu, pristine, pristine_cpu = [], [], [], [], [], []
    for run in range(runs):
        work, out = root / f"enc-work-{run}", root / f"enc-out-{run}"
        marks: dict[str, tuple[float, float]] = {}

        def progress(fraction: float, stage: str, message: str, marks=marks) -> None:
            if stage == "render":
                marks.setdefault("render", (time.perf_counter(), children_cpu()))
            if stage == "assemble" and message == "Checking the video":
                marks.setdefault("muxed", (time.perf_counter(), children_cpu()))

        result = run_pipeline(SAMPLE_BRIEF, work, out, progress, lambda: False)
        board = build_storyboard(SAMPLE_BRIEF)
        renders.append(marks["muxed"][0] - marks["render"][0])
        render_cpu.append(marks["muxed"][1] - marks["render"][1])
        wall, cpu = encoder_time(board, out / result["video"], root / "x264-alone.mp4")
        encodes.append(wall)
        encode_cpu.append(cpu)
        p_wall, p_cpu, graph_cpu = pristine_encoder_time(board, work, root / "x264-pristine.mp4")
        pristine.append(p_wall)
        pristine_cpu.append(p_cpu)
        print(f"  run {run + 1}: render + join + mux {renders[-1]:.1f} s wall / {render_cpu[-1]:.1f} s CPU; "
              f"x264 alone on the finished file {wall:.1f} s wall / {cpu:.1f} s CPU (ratio {renders[-1] / wall:.2f} "
              f"wall, {render_cpu[-1] / cpu:.2f} CPU); x264 alone on the chunks' own frames {p_wall:.1f} s wall / "
              f"{p_cpu:.1f} s CPU (ratio {renders[-1] / p_wall:.2f} wall, {render_cpu[-1] / p_cpu:.2f} CPU); "
              f"filter graphs alone {graph_cpu:.1f} s CPU (load average {os.getloadavg()[0]:.2f})", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    ratios = [r / e for r, e in zip(renders, encodes, strict=True)]
    cpu_ratios = [r / e for r, e in zip(render_cpu, encode_cpu, strict=True)]
    print(f"Render + join + mux, wall s: {spread(renders)}")
    print(f"x264 alone, same frames and settings, wall s: {spread(encodes)}")
    print(f"Ratio (same run), wall: {spread(ratios)}; CPU: {spread(cpu_ratios)}")
    print(f"x264 alone on the chunks' own frames, wall s: {spread(pristine)}; render ratio to it, wall: "
          f"{spread([r / e for r, e in zip(renders, pristine, strict=True)])}; CPU: "
          f"{spread([r / e for r, e in zip(render_cpu, pristine_cpu, strict=True)])}")
    ok = statistics.median(ratios) <= TARGET_ENCODER_RATIO
    print(f"Render / x264 ratio, median of {runs}: {statistics.median(ratios):.2f} "
          f"(target <= {TARGET_ENCODER_RATIO}) {verdict(ok)}")
    return ok


def peak_rss_mb() -> float:
    """Peak resident set of this process or of its largest child (ffmpeg), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _pinned_worker(core: int, board: dict, work_dir: str, jobs, queue) -> None:
    # Pin first, before render_chunk execs any ffmpeg: the child inherits this one-core mask, and
    # render_chunk sizes x264 -threads and -filter_threads/-filter_complex_threads from it (1 here).
    os.sched_setaffinity(0, {core})
    assert allotted_cores() == 1
    # Take the next chunk from a shared queue, as Celery workers on video_processing do.
    while True:
        try:
            index = jobs.get(timeout=2)
        except Exception:  # queue.Empty: every chunk is taken
            break
        render_chunk(board, index, Path(work_dir), lambda *_: None, lambda: False)
    cpu = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
    queue.put((core, peak_rss_mb(), cpu))


def _ffmpeg_children(parents: set[int]) -> dict[int, tuple[int, str, int]]:
    """ffmpeg processes whose parent is in `parents`: pid -> (parent, Cpus_allowed_list, threads)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        if int(status.get("PPid", "0")) in parents and status.get("Name", "").startswith("ffmpeg"):
            found[int(entry.name)] = (int(status["PPid"]), status["Cpus_allowed_list"].strip(),
                                      int(status["Threads"]))
    return found


class AffinityWatch(threading.Thread):
    """Samples the pinned workers' ffmpeg children: which cores they may run on, how many threads."""

    def __init__(self, workers: dict[int, int]):
        super().__init__(daemon=True)
        self.workers = workers  # worker pid -> core
        self.seen: dict[int, set[str]] = {core: set() for core in workers.values()}
        self.threads: dict[int, int] = dict.fromkeys(workers.values(), 0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            for _pid, (parent, cpus, threads) in _ffmpeg_children(set(self.workers)).items():
                core = self.workers[parent]
                self.seen[core].add(cpus)
                self.threads[core] = max(self.threads[core], threads)

    def summary(self) -> str:
        return "; ".join(f"worker on core {core}: ffmpeg allowed on {'/'.join(sorted(cpus)) or '?'}, "
                         f"up to {self.threads[core]} threads" for core, cpus in self.seen.items())

    def disjoint(self) -> bool:
        sets = list(self.seen.values())
        return all(len(cpus) == 1 for cpus in sets) and len({min(c) for c in sets}) == len(sets)


def pinned_run(board: dict, src: Path, root: Path, cores: list[int]) -> dict:
    """Render every chunk with one child pinned to each of `cores`, pulling chunks from a shared
    queue (costliest first); wall, RSS, CPU, affinity."""
    work = root / f"pinned-{len(cores)}"
    work.mkdir()
    for item in src.glob("visuals-*"):
        shutil.copytree(item, work / item.name)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    jobs = ctx.Queue()
    for chunk in sorted(board["chunks"], key=lambda c: -c["frames"]):
        jobs.put(chunk["index"])
    time.sleep(0.2)  # let the feeder thread fill the pipe before workers poll it
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    procs = {core: ctx.Process(target=_pinned_worker, args=(core, board, str(work), jobs, queue))
             for core in cores}
    for proc in procs.values():
        proc.start()
    watch = AffinityWatch({proc.pid: core for core, proc in procs.items()})
    watch.start()
    for proc in procs.values():
        proc.join()
    wall = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    if any(proc.exitcode for proc in procs.values()):
        raise SystemExit("a pinned chunk worker failed")
    reports = [queue.get() for _ in procs]
    return {"wall": wall, "rss": max(r[1] for r in reports), "cpu": {r[0]: r[2] for r in reports},
            "watch": watch, "load": (load_before, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="directory to keep the outputs in (default: a temp dir)")
    parser.add_argument("--runs", type=int, default=3, help="renders compared with x264 alone")
    parser.add_argument("--chunks", action="store_true",
                        help="also: chunked render vs one filter graph, RSS, pinned parallel chunks")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="aura-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    work, out = root / "work", root / "out"
    print(f"Render vs x264 alone ({args.runs} runs, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f}):", flush=True)
    encoder_comparison(root, args.runs)
    if not args.chunks:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        return

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
    one = pinned_run(board, work, root, cores[:1])
    two = None
    if len(cores) >= 2:
        two = pinned_run(board, work, root, cores[:2])
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
    peak = max(rss, one["rss"])
    print(f"Peak RSS per render process: {peak:.0f} MB (target <= {TARGET_RSS_MB}) {verdict(peak <= TARGET_RSS_MB)}")
    if two is None:
        print("Parallel chunks: needs 2 cores, SKIPPED")
    else:
        ratio2 = two["wall"] / one["wall"]
        serial_cpu, parallel_cpu = one["cpu"][cores[0]], max(two["cpu"].values())
        print(f"One worker pinned to one core, all chunks: {one['wall']:.1f} s wall, {serial_cpu:.1f} s CPU "
              f"(load average {one['load'][0]:.2f} -> {one['load'][1]:.2f})")
        print(f"Two workers pinned to their own cores: {two['wall']:.1f} s wall, CPU per worker "
              + ", ".join(f"core {c} {t:.1f} s" for c, t in sorted(two["cpu"].items()))
              + f" (load average {two['load'][0]:.2f} -> {two['load'][1]:.2f}; peak RSS {two['rss']:.0f} MB)")
        print(f"Pinning: x264 -threads 1, -filter_threads 1, -filter_complex_threads 1 in each worker; "
              f"{two['watch'].summary()}; disjoint cores: {'yes' if two['watch'].disjoint() else 'NO'}")
        print(f"Parallel-chunks wall ratio: {ratio2:.2f} (target <= {TARGET_PARALLEL}) "
              f"{verdict(ratio2 <= TARGET_PARALLEL)} at load average {two['load'][0]:.2f} on {len(cores)} cores")
        # A pinned worker's wall time equals its CPU time when nothing else runs on its core, so
        # this is the ratio an idle machine would show; the gap to the wall ratio is other load.
        print(f"  Same ratio from CPU time (busiest worker / serial): {parallel_cpu / serial_cpu:.2f}")
    print(f"Outputs in {root}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
