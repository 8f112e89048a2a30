"""The in-process cost of one 500-brief batch (Flask test client, SQLite, private Redis): the median
wall and CPU time per batch, and with --profile the functions that take it (cProfile).

No target: this is the measuring tool behind bench/batch.py, without gunicorn and the network.
Usage: .venv/bin/python bench/batch_inprocess.py [--batches 30] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BRIEFS, Harness  # noqa: E402

BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    harness = Harness()
    token = harness.token("operator")
    client = harness.app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [json.dumps({"briefs": [BRIEFS[(k + j) % len(BRIEFS)] for j in range(BATCH)]},
                         ensure_ascii=False).encode() for k in range(4)]
    for body in bodies[:3]:  # warm-up: first statements compiled, first connections opened
        assert client.post("/tasks/video/batch", data=body, headers=headers).status_code == 202
    profile = cProfile.Profile() if args.profile else None
    walls, cpus = [], []
    for i in range(args.batches):
        started, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        response = client.post("/tasks/video/batch", data=bodies[i % len(bodies)], headers=headers)
        if profile:
            profile.disable()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
        assert response.status_code == 202, response.get_data(as_text=True)[:500]
    walls.sort()
    print(f"bench/batch_inprocess.py: {args.batches} batches of {BATCH}: wall median {statistics.median(walls):.1f} ms "
          f"(p10 {walls[len(walls) // 10]:.1f}, p90 {walls[len(walls) * 9 // 10]:.1f}), "
          f"CPU median {statistics.median(cpus):.1f} ms{' (profiled)' if profile else ''}")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    harness.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
