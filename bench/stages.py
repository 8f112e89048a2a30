"""Stages as rows, storage and hosts: wall time of a render against what its stages need.

1. One worker, concurrency 1, every queue, local storage: a 5 s 640x360 brief's wall time
   (created -> completed) against the sum of its planning and stage run times (no pickup waits).
   Target <= 1.3x.
2. One host on S3 storage (moto's standalone server) against local storage, a 20 s 640x360
   brief: many small stages, so the storage's share is at its largest. Target <= 1.15x.
3. The SPEC sample (60 s 1920x1080 high) on one host with local storage, one host on S3 and two
   worker "hosts" (separate processes, node names and scratch folders) on S3: S3 / local
   (target <= 1.15x) and two hosts / one host (target <= 0.6x).
4. The SPEC sample on one worker (concurrency 1, every queue) against the default three workers
   (video, media, ops, as the run command starts them), local storage. Target <= 1.1x.

In 2 and 3 a "host" is one core of this machine: each host's worker (and the ffmpeg and espeak-ng
it starts) is pinned to a core of its own (host i to core i), so two hosts have twice the CPU of
one, as two machines would; Redis, the object store and the database are not pinned. Without
pinning (--no-pin) every host shares every core, which measures the scheduling, not the speed-up.
In 1 and 4 the workers use the whole machine.

Each figure is the median of --runs renders (spread printed); the setups compared in one section
are deployed side by side and take turns, run after run, so a change in the machine's load falls
on all of them alike. Usage:
  .venv/bin/python bench/stages.py [--runs 3] [--sections 1,2,3,4] [--no-pin]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, SAMPLE_BRIEF, Harness, verdict  # noqa: E402

ALL_QUEUES = "video_generation,video_processing,audio_processing,image_processing,maintenance,monitoring,default"


def brief(seconds: int) -> dict:
    return {**SAMPLE_BRIEF, "target_duration_id": seconds, "priority": "normal",
            "config": {"quality": "low", "resolution": "640x360"}}


def render(harness: Harness, seconds_or_brief: int | dict) -> tuple[float, float]:
    """(wall seconds created -> completed, planning + sum of stage run seconds) of one brief (a
    dict, or the seconds of a small 640x360 one)."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderStage, RenderTask
    from webapp.services.tasks import submit

    body = brief(seconds_or_brief) if isinstance(seconds_or_brief, int) else seconds_or_brief
    with harness.app.app_context():
        task, _ = submit(body)
        task_id = task.id
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            db.session.rollback()
            row = db.session.get(RenderTask, task_id)
            if row.status in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
        if row.status != "completed":
            raise RuntimeError(f"{task_id} ended {row.status}: {row.message}")
        stages = list(db.session.scalars(select(RenderStage).where(RenderStage.task_id == task_id,
                                                                   RenderStage.attempt == row.attempt)))
        planning = (min(s.published_at for s in stages if s.published_at) - row.started_at).total_seconds()
        work = planning + sum((s.finished_at - s.started_at).total_seconds() for s in stages if s.started_at)
        return (row.finished_at - row.created_at).total_seconds(), work


def median_spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, spread {min(values):.2f}..{max(values):.2f}"


def s3_settings() -> tuple[object, dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import S3Server

    server = S3Server(Path(tempfile.mkdtemp(prefix="bench-moto-")))
    return server, server.config(f"bench-{secrets.token_hex(4)}")


def host_cores(index: int, pin: bool) -> set[int] | None:
    """The core host `index` is pinned to (one of the cores this process may use), or None."""
    cores = sorted(os.sched_getaffinity(0))
    return {cores[index % len(cores)]} if pin else None


def deployment(settings: dict[str, str] | None, hosts: int, pin: bool = False) -> Harness:
    """`hosts` workers (concurrency 1, every queue, a scratch folder each) on one storage; hosts=0
    starts the default three workers instead (one per queue group, the suggested concurrency)."""
    harness = Harness()
    if settings:
        harness.env.update(settings)
        harness.app.config.update(settings)
    if hosts == 0:
        from webapp.catalog import WORKER_GROUPS
        from webapp.services.workers import default_concurrency

        with harness.app.app_context():
            for group, queues in WORKER_GROUPS.items():
                harness.worker(",".join(queues), group, concurrency=default_concurrency(queues))
        return harness
    for index in range(hosts):
        scratch = harness.dir / f"scratch{index}"
        scratch.mkdir()
        harness.env["SCRATCH_DIR"] = str(scratch)
        harness.worker(ALL_QUEUES, f"host{index}", concurrency=1, cpus=host_cores(index, pin))
    return harness


def interleaved(setups: list[tuple[dict[str, str] | None, int]], body: int | dict,
                runs: int, pin: bool = False) -> list[tuple[list[float], list[float]]]:
    """Every setup (storage settings, hosts) deployed at once and rendered in turn, run after run,
    so that a change in the machine's load falls on all of them alike."""
    harnesses = [deployment(settings, hosts, pin) for settings, hosts in setups]
    try:
        for harness in harnesses:
            render(harness, 5)  # warm-up: imports, fonts, first connections
        results: list[tuple[list[float], list[float]]] = [([], []) for _ in harnesses]
        for _ in range(runs):
            for harness, (walls, works) in zip(harnesses, results, strict=True):
                wall, work = render(harness, body)
                walls.append(wall)
                works.append(work)
        return results
    finally:
        for harness in harnesses:
            harness.stop()


def ratio(name: str, top: list[float], bottom: list[float], target: float) -> bool:
    return verdict(name, statistics.median(top) / statistics.median(bottom), target, "x")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sections", default="1,2,3,4", help="which of the four comparisons to run")
    parser.add_argument("--no-pin", action="store_true", help="let every host use every core (2 and 3)")
    args = parser.parse_args()
    sections = {int(part) for part in args.sections.split(",") if part.strip()}
    pin = not args.no_pin
    where = "every host shares every core" if args.no_pin else "a host is one core"
    spec = {**SAMPLE_BRIEF, "priority": "normal"}
    ok = True

    if 1 in sections:
        ((walls, works),) = interleaved([(None, 1)], 5, args.runs)
        print("1. one worker, concurrency 1, all queues, local storage, 5 s 640x360")
        print(f"   wall s: {median_spread(walls)}; planning + stages s: {median_spread(works)}")
        ok &= verdict("wall / stage time", statistics.median([w / k for w, k in zip(walls, works, strict=True)]),
                      1.3, "x")
    if sections & {2, 3}:
        server, settings = s3_settings()
        try:
            if 2 in sections:
                (local, _), (s3_one, _) = interleaved([(None, 1), (settings, 1)], 20, args.runs, pin)
                print(f"2. one host, 20 s 640x360: S3 (moto) against local storage ({where})")
                print(f"   local s: {median_spread(local)}; S3 s: {median_spread(s3_one)}")
                ok &= ratio("S3 / local", s3_one, local, 1.15)
            if 3 in sections:
                (local, _), (s3_one, _), (s3_two, _) = interleaved(
                    [(None, 1), (settings, 1), (settings, 2)], spec, args.runs, pin)
                print(f"3. the SPEC sample (60 s 1920x1080 high) on hosts of one worker each ({where})")
                print(f"   one host, local s: {median_spread(local)}; one host, S3 s: {median_spread(s3_one)}; "
                      f"two hosts, S3 s: {median_spread(s3_two)}")
                ok &= ratio("S3 / local", s3_one, local, 1.15)
                ok &= ratio("two hosts / one host", s3_two, s3_one, 0.6)
        finally:
            server.stop()
    if 4 in sections:
        (one, _), (three, _) = interleaved([(None, 1), (None, 0)], spec, args.runs)
        print("4. the SPEC sample: one worker (concurrency 1, every queue) against the default three workers")
        print(f"   one worker s: {median_spread(one)}; three workers s: {median_spread(three)}")
        ok &= ratio("one worker / three workers", one, three, 1.1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
