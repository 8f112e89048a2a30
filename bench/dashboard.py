"""Benchmark: 100 signed-in viewers polling the dashboard's live fragments every 2 s (~50 req/s)
through gunicorn, on a SQLite file with 100,000 tasks. Target: p99 <= 50 ms, no errors.

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--viewers 100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, percentile, verdict  # noqa: E402
from bench.seed_tasks import BENCH_VIEWER, live_task_ids, seeded  # noqa: E402

P99_TARGET_MS = 50.0
INTERVAL = 2.0
HTMX = {"HX-Request": "true", "HX-Current-URL": "/"}


def sign_in(base: str, username: str, password: str) -> requests.Session:
    """A browser-like session: fetch the login form for its CSRF token, then post it."""
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'"X-CSRFToken": "([^"]+)"', page)
    response = session.post(f"{base}/login", data={"username": username, "password": password,
                                                   "csrf_token": token.group(1)},
                            allow_redirects=False, timeout=10)
    if response.status_code != 302:
        raise RuntimeError(f"sign-in failed: {response.status_code}")
    return session


def viewer(session: requests.Session, url: str, stop_at: float, start_delay: float,
           samples: list[tuple[str, float]], errors: list[str], kind: str) -> None:
    """Poll one fragment every INTERVAL seconds, like htmx's `every 2s` (no stacking)."""
    time.sleep(start_delay)
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        began = time.perf_counter()
        try:
            response = session.get(url, headers=HTMX, timeout=10)
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code not in (200, 286):
                errors.append(f"{kind}: HTTP {response.status_code}")
            else:
                samples.append((kind, elapsed))
        except requests.RequestException as exc:
            errors.append(f"{kind}: {exc.__class__.__name__}")
        next_at += INTERVAL
        time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args()

    harness = Harness()
    seeded(harness, args.tasks)
    task_ids = live_task_ids(harness.app)
    base = harness.gunicorn(workers=args.workers, threads=args.threads)
    print(f"gunicorn at {base} ({args.workers} workers x {args.threads} threads); "
          f"{args.viewers} viewers polling every {INTERVAL:g} s for {args.seconds:g} s")

    sessions = [sign_in(base, *BENCH_VIEWER) for _ in range(args.viewers)]
    for session in sessions[:3]:  # warm every worker's connections and templates
        for _ in range(args.workers * 2):
            session.get(f"{base}/", headers=HTMX, timeout=10)
    samples: list[tuple[str, float]] = []
    errors: list[str] = []
    stop_at = time.monotonic() + args.seconds
    threads = []
    for i, session in enumerate(sessions):
        # Four in five watch the dashboard; the rest watch a running task's page.
        if i % 5 == 4 and task_ids:
            url, kind = f"{base}/videos/{task_ids[i % len(task_ids)]}", "task fragment"
        else:
            url, kind = f"{base}/", "dashboard fragment"
        thread = threading.Thread(target=viewer, args=(session, url, stop_at, INTERVAL * i / len(sessions),
                                                       samples, errors, kind), daemon=True)
        threads.append(thread)
        thread.start()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    harness.stop()

    times = [ms for _kind, ms in samples]
    print(f"\n{len(samples):,} responses in {wall:.1f} s = {len(samples) / wall:.1f} req/s; errors: {len(errors)}")
    for kind in sorted({k for k, _ms in samples}):
        values = [ms for k, ms in samples if k == kind]
        print(f"  {kind:<20} n={len(values):>5}  p50 {percentile(values, 50):6.1f} ms  "
              f"p99 {percentile(values, 99):6.1f} ms  max {max(values):6.1f} ms")
    print("\nResults against targets:")
    print(f"  {'p50 (all fragments)':<34} {percentile(times, 50):>10.2f} ms")
    ok = verdict("p99 (all fragments)", percentile(times, 99), P99_TARGET_MS, "ms")
    ok = verdict("errors", float(len(errors)), 0, "") and ok
    if errors:
        print("  first errors:", errors[:5])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
