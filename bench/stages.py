"""Stages as rows, storage and hosts: wall time of a render against what its stages need.

1. One worker, concurrency 1, every queue, local storage: a 5 s 640x360 brief's wall time
   (created -> completed) against the sum of its planning and stage run times (no pickup waits).
   Target <= 1.3x.
2. The same host on S3 storage (moto's standalone server) against local storage, a 20 s 640x360
   brief. Target <= 1.15x.
3. Two worker "hosts" (separate processes, node names and scratch folders) on S3 against one,
   the same brief. Target <= 0.6x. On a machine with fewer cores than two hosts would have, this
   measures the scheduling, not the speed-up: the hosts share the same cores.

Each figure is the median of --runs renders (spread printed); the setups of 2 and 3 are deployed
side by side and take turns, run after run. Usage:
  .venv/bin/python bench/stages.py [--runs 3] [--skip-hosts]
"""

from __future__ import annotations

import argparse
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


def render(harness: Harness, seconds: int) -> tuple[float, float]:
    """(wall seconds created -> completed, planning + sum of stage run seconds)."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderStage, RenderTask
    from webapp.services.tasks import submit

    with harness.app.app_context():
        task, _ = submit(brief(seconds))
        task_id = task.id
        deadline = time.monotonic() + 600
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


def deployment(settings: dict[str, str] | None, hosts: int) -> Harness:
    harness = Harness()
    if settings:
        harness.env.update(settings)
        harness.app.config.update(settings)
    for index in range(hosts):
        scratch = harness.dir / f"scratch{index}"
        scratch.mkdir()
        harness.env["SCRATCH_DIR"] = str(scratch)
        harness.worker(ALL_QUEUES, f"host{index}", concurrency=1)
    return harness


def measure(settings: dict[str, str] | None, hosts: int, seconds: int, runs: int) -> tuple[list[float], list[float]]:
    return interleaved([(settings, hosts)], seconds, runs)[0]


def interleaved(setups: list[tuple[dict[str, str] | None, int]], seconds: int,
                runs: int) -> list[tuple[list[float], list[float]]]:
    """Every setup (storage settings, hosts) deployed at once and rendered in turn, run after run,
    so that a change in the machine's load falls on all of them alike."""
    harnesses = [deployment(settings, hosts) for settings, hosts in setups]
    try:
        for harness in harnesses:
            render(harness, 5)  # warm-up: imports, fonts, first connections
        results: list[tuple[list[float], list[float]]] = [([], []) for _ in harnesses]
        for _ in range(runs):
            for harness, (walls, works) in zip(harnesses, results, strict=True):
                wall, work = render(harness, seconds)
                walls.append(wall)
                works.append(work)
        return results
    finally:
        for harness in harnesses:
            harness.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-hosts", action="store_true", help="skip the S3 and two-host runs")
    args = parser.parse_args()
    ok = True

    walls, works = measure(None, 1, 5, args.runs)
    ratios = [w / k for w, k in zip(walls, works, strict=True)]
    print("1. one worker, concurrency 1, all queues, local storage, 5 s 640x360")
    print(f"   wall s: {median_spread(walls)}; planning + stages s: {median_spread(works)}")
    ok &= verdict("wall / stage time", statistics.median(ratios), 1.3, "x")
    if args.skip_hosts:
        return 0 if ok else 1

    server, settings = s3_settings()
    try:
        (local, _), (s3_one, _), (s3_two, _) = interleaved([(None, 1), (settings, 1), (settings, 2)],
                                                           20, args.runs)
    finally:
        server.stop()
    print("2. one host, 20 s 640x360: S3 (moto) against local storage")
    print(f"   local s: {median_spread(local)}; S3 s: {median_spread(s3_one)}")
    ok &= verdict("S3 / local", statistics.median(s3_one) / statistics.median(local), 1.15, "x")
    print("3. two hosts against one, S3, 20 s 640x360 (both hosts share this machine's cores)")
    print(f"   one host s: {median_spread(s3_one)}; two hosts s: {median_spread(s3_two)}")
    ok &= verdict("two hosts / one host", statistics.median(s3_two) / statistics.median(s3_one), 0.6, "x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
