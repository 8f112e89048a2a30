"""Peak memory of a worker's processes while it renders a long, large brief.

Target (issue "across machines"): the peak RSS of every worker process stays <= 1 GB for a 600 s
3840x2160 brief, because media are streamed, not buffered. One real `celery worker` (concurrency
1, every queue, local storage) renders the brief; every 0.2 s the bench reads the high-water mark
(VmHWM) of each process in the worker's tree (the Celery main process, its pool process, and the
ffmpeg and espeak-ng children) and keeps the largest per kind. Run it at two lengths to see that
the peak does not grow with the length of the video.

Usage: .venv/bin/python bench/memory.py [--seconds 600] [--resolution 3840x2160] [--quality medium]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SAMPLE_BRIEF, Harness, verdict  # noqa: E402

ALL_QUEUES = "video_generation,video_processing,audio_processing,image_processing,maintenance,monitoring,default"
TARGET_MB = 1024
#: What an ffmpeg child is doing, told by its arguments.
ROLES = ((b"filter_complex", "render"), (b"concat", "join"), (b"blackdetect", "gate"),
         (b"freezedetect", "gate"), (b"loudnorm", "audio"), (b"ebur128", "audio"))


def tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kind_and_peak(pid: int) -> tuple[str, float] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if hwm is None:
        return None
    program = Path(cmdline[0].decode(errors="replace")).name if cmdline and cmdline[0] else "?"
    if "ffmpeg" in program or "ffplay" in program:
        args = b" ".join(cmdline)
        role = next((name for needle, name in ROLES if needle in args), "other")
        kind = f"ffmpeg {role}"
    elif "espeak" in program:
        kind = "espeak-ng"
    elif any(b"celery" in part for part in cmdline):
        kind = "celery"
    else:
        kind = program
    return kind, int(hwm) / 1024


class Sampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[str, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.2):
            for pid in tree(self.root):
                found = kind_and_peak(pid)
                if found:
                    kind, mb = found
                    self.peaks[kind] = max(self.peaks.get(kind, 0.0), mb)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--resolution", default="3840x2160")
    parser.add_argument("--quality", default="medium")
    args = parser.parse_args()

    harness = Harness()
    try:
        harness.worker(ALL_QUEUES, "mem", concurrency=1)
        worker = harness.procs[-1]
        from webapp.extensions import db
        from webapp.models import RenderTask
        from webapp.services.tasks import submit

        sampler = Sampler(worker.pid)
        sampler.start()
        started = time.monotonic()
        with harness.app.app_context():
            task, _ = submit({**SAMPLE_BRIEF, "target_duration_id": args.seconds, "priority": "normal",
                              "config": {"quality": args.quality, "resolution": args.resolution}})
            while True:
                db.session.rollback()
                row = db.session.get(RenderTask, task.id)
                # "retry": an attempt failed (say at the quality gate); the next one would reuse
                # the rendered chunks, and this bench only needs one attempt's processes.
                if row.status in ("completed", "failed", "cancelled", "retry"):
                    break
                time.sleep(1)
        sampler.halt.set()
        sampler.join()
        wall = time.monotonic() - started
        print(f"{args.seconds} s {args.resolution} ({args.quality}): {row.status} in {wall:.0f} s")
        if row.status != "completed":
            print(f"  {row.message}")
        # The peaks of the processes that ran are printed even when the task failed (say at the
        # quality gate, after every chunk was rendered).
        for kind, mb in sorted(sampler.peaks.items(), key=lambda item: -item[1]):
            print(f"  peak RSS {kind:<12} {mb:8.0f} MB")
        ok = verdict("largest worker process", max(sampler.peaks.values(), default=0.0), TARGET_MB, "MB")
        return 0 if ok and row.status == "completed" else 1
    finally:
        harness.stop()


if __name__ == "__main__":
    sys.exit(main())
