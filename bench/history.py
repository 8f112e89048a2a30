"""Benchmark: the history page's filters and deep cursor pages on a SQLite file with 1,000,000 tasks,
served by gunicorn to a signed-in viewer. Target: p99 <= 100 ms for every filter.

    .venv/bin/python bench/history.py [--tasks 1000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dashboard import sign_in  # noqa: E402
from bench.harness import Harness, percentile, verdict  # noqa: E402
from bench.seed_tasks import BENCH_VIEWER, seeded  # noqa: E402
from webapp.timeutil import utcnow  # noqa: E402

P99_TARGET_MS = 100.0
HTMX = {"HX-Request": "true"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="requests per filter")
    parser.add_argument("--deep", type=int, default=60, help="cursor pages to follow")
    args = parser.parse_args()

    harness = Harness()
    seeded(harness, args.tasks)
    base = harness.gunicorn(workers=2, threads=2)
    session = sign_in(base, *BENCH_VIEWER)
    day = (utcnow() - timedelta(days=30)).date()
    rare_row = args.tasks // 2
    filters = {
        "first page (no filter)": "",
        "status=failed": "status=failed",
        "status=completed,cancelled": "status=completed,cancelled",
        "priority=urgent": "priority=urgent",
        "queue=maintenance": "queue=maintenance",
        "date range (one day)": f"since={day}&until={day}",
        "status+priority+queue": "status=failed&priority=low&queue=video_generation",
        "text, common (城市)": "q=城市",
        "text, rare (one row)": f"q=row {rare_row}.",
        "text, no match": "q=no-such-words-anywhere",
        "task id jump": None,
    }
    results: dict[str, list[float]] = {}
    errors = 0

    def timed(url: str) -> tuple[float, str]:
        nonlocal errors
        began = time.perf_counter()
        response = session.get(url, headers=HTMX, timeout=60, allow_redirects=False)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code not in (200, 302):
            errors += 1
        return elapsed, response.text

    with harness.app.app_context():
        from webapp.services.tasks import active_tasks

        some_id = active_tasks(1)[0].id
    for name, query in filters.items():
        url = f"{base}/history?q={some_id}" if query is None else f"{base}/history?{query}"
        timed(url)  # warm
        results[name] = [timed(url)[0] for _ in range(args.repeat)]

    # Deep pages: follow the "older tasks" cursor page after page.
    deep: list[float] = []
    url = f"{base}/history"
    for _ in range(args.deep):
        elapsed, body = timed(url)
        deep.append(elapsed)
        found = re.search(r'hx-get="([^"]+cursor=[^"]+)"', body)
        if not found:
            break
        url = base + html.unescape(found.group(1))
    results[f"cursor pages 1-{len(deep)}"] = deep
    # A cursor far back: page from 45 days ago.
    from webapp.services.tasks import encode_cursor

    class Point:  # what encode_cursor reads
        created_at = utcnow() - timedelta(days=45)
        id = "video_9999999999_zzzzzzzz"

    far = f"{base}/history?cursor={encode_cursor(Point)}"
    results["cursor 45 days back"] = [timed(far)[0] for _ in range(args.repeat)]
    harness.stop()

    print(f"\n{'filter':<34} {'p50':>8} {'p99':>8}   (ms, {args.repeat} requests each, sequential)")
    for name, values in results.items():
        print(f"  {name:<32} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}")
    print("\nResults against targets:")
    ok = True
    for name, values in results.items():
        ok = verdict(f"p99 {name}", percentile(values, 99), P99_TARGET_MS, "ms") and ok
    ok = verdict("errors", float(errors), 0, "") and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
