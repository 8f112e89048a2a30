"""Batches through gunicorn on SQLite: concurrent clients posting 500-brief batches.

Targets: >= 5,000 briefs accepted per second, each batch answered in <= 1 s at p99, every brief
published to the broker with its priority. Reference in the same run: single submits per second
(one brief per request) over the same time, same server.
Usage: .venv/bin/python bench/batch.py [--seconds 20] [--clients 4] [--web-workers 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BRIEFS, Harness, percentile, verdict  # noqa: E402

BATCH = 500


def drive(url: str, token: str, path: str, bodies: list[bytes], seconds: float, clients: int) -> list[tuple[float, int, int]]:
    """`clients` keep-alive connections posting `bodies` in turn: [(seconds, status, accepted)]."""
    parsed = urlparse(url)
    results: list[tuple[float, int, int]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine = []
        i = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
            response = conn.getresponse()
            data = response.read()
            accepted = 0
            if response.status == 202:
                body = json.loads(data)
                accepted = len(body["tasks"]) if "tasks" in body else 1
            mine.append((time.perf_counter() - started, response.status, accepted))
            i += 1
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=4)
    args = parser.parse_args()
    harness = Harness()
    url = harness.gunicorn(workers=args.web_workers, threads=8)
    token = harness.token("operator")
    # Batches mixing every brief (and so every priority) of the project's examples.
    batches = [json.dumps({"briefs": [BRIEFS[(k + j) % len(BRIEFS)] for j in range(BATCH)]},
                          ensure_ascii=False).encode() for k in range(4)]
    results = drive(url, token, "/tasks/video/batch", batches, args.seconds, args.clients)
    ok_runs = [r for r in results if r[1] == 202]
    accepted = sum(r[2] for r in ok_runs)
    elapsed = args.seconds
    latencies = [r[0] * 1000 for r in ok_runs]

    # Every accepted brief is in Redis, on the list of its priority.
    import redis

    from webapp.catalog import PRIORITIES
    from webapp.services.broker import list_key

    client = redis.Redis.from_url(harness.env["REDIS_URL"])
    in_redis = {name: client.llen(list_key("video_generation", p.redis_level)) for name, p in PRIORITIES.items()}
    with harness.app.app_context():
        from sqlalchemy import func, select

        from webapp.extensions import db
        from webapp.models import RenderTask

        by_priority = dict(db.session.execute(select(RenderTask.priority, func.count())
                                              .group_by(RenderTask.priority)).all())
    mismatched = sum(abs(in_redis.get(p, 0) - by_priority.get(p, 0)) for p in PRIORITIES)

    reference = drive(url, token, "/tasks/video/async",
                      [json.dumps(b, ensure_ascii=False).encode() for b in BRIEFS], 5, 8)
    single_rate = sum(1 for r in reference if r[1] == 202) / 5
    print(f"bench/batch.py: {len(results)} batches of {BATCH} in {elapsed:.0f}s, {args.clients} clients, "
          f"gunicorn {args.web_workers} workers x 8 threads, SQLite")
    print(f"  batch latency p50 {percentile(latencies, 50):.0f} ms, max {max(latencies):.0f} ms; "
          f"broker lists {in_redis}; rows {by_priority}")
    print(f"  reference in this run: single submits {single_rate:.0f}/s (8 connections, 5 s)")
    ok = verdict("briefs accepted per second", accepted / elapsed, 5000, "/s", higher_is_better=True)
    ok &= verdict("p99 batch latency", percentile(latencies, 99), 1000, "ms")
    ok &= verdict("failed batches", len(results) - len(ok_runs), 0, "")
    ok &= verdict("briefs not in broker at priority", mismatched, 0, "")
    harness.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
