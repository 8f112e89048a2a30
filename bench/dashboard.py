"""Benchmark: signed-in viewers polling the dashboard's live board every 2 s, as htmx does (sending
the last ETag in If-None-Match), through gunicorn with the Procfile's settings (4 workers x 8
threads, gthread), on a SQLite file with 100,000 tasks, while tasks start, progress and finish.

Two rounds: 100 viewers (target p99 <= 25 ms) and 1,000 viewers from a few load processes
(target p99 <= 100 ms); no errors in either.

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--viewers 100,1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import re
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, percentile, verdict  # noqa: E402
from bench.seed_tasks import BENCH_VIEWER, seeded  # noqa: E402

TARGETS_MS = {100: 25.0, 1000: 100.0}
INTERVAL = 2.0
SESSIONS = 8  # signed-in cookies shared by the simulated viewers (sign-in hashes a password)


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


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


async def _request(reader, writer, head: bytes) -> tuple[int, dict[str, str]]:
    writer.write(head)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, headers


async def _viewer(base: str, cookie: str, stop_at: float, delay: float, out: list, errors: list) -> None:
    """One browser tab: poll every INTERVAL seconds on a keep-alive connection, like htmx."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    await asyncio.sleep(delay)
    etag = None
    conn = None
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        extra = f"If-None-Match: {etag}\r\n" if etag else ""
        head = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nHX-Request: true\r\nHX-Current-URL: {base}/\r\n"
                f"Cookie: {cookie}\r\n{extra}\r\n").encode()
        began = time.perf_counter()
        for attempt in (1, 2):  # a browser retries once when an idle keep-alive connection was closed
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                status, headers = await _request(*conn, head)
                break
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                conn = None
                if attempt == 2:
                    status, headers = -1, {"error": exc.__class__.__name__}
        elapsed = (time.perf_counter() - began) * 1000
        if status in (200, 286, 304):
            out.append((status, elapsed))
            etag = headers.get("etag", etag)
        else:
            errors.append(f"HTTP {status} {headers.get('error', '')}")
        if headers.get("connection", "").lower() == "close" and conn is not None:
            conn[1].close()
            conn = None
        next_at += INTERVAL
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def load_process(base: str, cookies: list[str], viewers: int, offset: int, total: int, seconds: float,
                 queue) -> None:
    """One load process: `viewers` tabs on one event loop, spread evenly over the interval."""

    async def run() -> tuple[list, list]:
        out: list = []
        errors: list = []
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(
            _viewer(base, cookies[(offset + i) % len(cookies)], stop_at, INTERVAL * (offset + i) / total, out,
                    errors) for i in range(viewers)))
        return out, errors

    queue.put(asyncio.run(run()))


def churn(app, stop: threading.Event, counts: dict[str, int]) -> None:
    """Tasks start, progress and finish while the viewers watch (direct writes, as workers do)."""
    from sqlalchemy import select, update

    from webapp.extensions import db
    from webapp.models import RenderTask
    from webapp.timeutil import utcnow

    rng = random.Random(3)
    with app.app_context():
        while not stop.wait(0.5):
            now = utcnow()
            live = list(db.session.scalars(select(RenderTask.id).where(RenderTask.status == "processing").limit(50)))
            waiting = list(db.session.scalars(select(RenderTask.id).where(RenderTask.status == "queued").limit(50)))
            if live:
                db.session.execute(update(RenderTask).where(RenderTask.id == rng.choice(live))
                                   .values(progress=rng.uniform(1, 99), updated_at=now))
                counts["progress"] += 1
            if rng.random() < 0.25 and live:
                done = rng.choice(live)
                db.session.execute(update(RenderTask).where(RenderTask.id == done).values(
                    status="completed", progress=100.0, finished_at=now, updated_at=now))
                counts["finished"] += 1
            if rng.random() < 0.25 and waiting:
                db.session.execute(update(RenderTask).where(RenderTask.id == rng.choice(waiting)).values(
                    status="processing", started_at=now, updated_at=now + timedelta(microseconds=1)))
                counts["started"] += 1
            db.session.commit()


def round_of(base: str, cookies: list[str], viewers: int, procs: int, seconds: float) -> tuple[list, list]:
    queue = multiprocessing.Queue()
    per = [viewers // procs + (1 if i < viewers % procs else 0) for i in range(procs)]
    workers = []
    offset = 0
    for count in per:
        proc = multiprocessing.Process(target=load_process, args=(base, cookies, count, offset, viewers, seconds,
                                                                  queue))
        proc.start()
        workers.append(proc)
        offset += count
    samples: list = []
    errors: list = []
    for _ in workers:
        out, errs = queue.get(timeout=seconds + 120)
        samples.extend(out)
        errors.extend(errs)
    for proc in workers:
        proc.join()
    return samples, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--viewers", default="100,1000", help="comma-separated viewer counts, one round each")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=4, help="load processes per round (1 for 100 viewers)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (Procfile: 4)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (Procfile: 8)")
    args = parser.parse_args()

    harness = Harness()
    seeded(harness, args.tasks)
    base = harness.gunicorn(workers=args.workers, threads=args.threads)
    cookies = [cookie_header(sign_in(base, *BENCH_VIEWER)) for _ in range(SESSIONS)]
    for cookie in cookies:  # warm every worker's connections and templates
        for _ in range(args.workers * 2):
            requests.get(f"{base}/", headers={"HX-Request": "true", "Cookie": cookie}, timeout=10)
    counts = {"progress": 0, "started": 0, "finished": 0}
    stop = threading.Event()
    mutator = threading.Thread(target=churn, args=(harness.app, stop, counts), daemon=True)
    mutator.start()
    print(f"gunicorn at {base} ({args.workers} workers x {args.threads} threads, gthread)")

    ok = True
    results = []
    for viewers in [int(v) for v in args.viewers.split(",")]:
        procs = 1 if viewers <= 100 else args.procs
        before = dict(counts)
        began = time.monotonic()
        samples, errors = round_of(base, cookies, viewers, procs, args.seconds)
        wall = time.monotonic() - began
        changes = {k: counts[k] - before[k] for k in counts}
        times = [ms for _status, ms in samples]
        by_status = {s: sum(1 for st, _ in samples if st == s) for s in (200, 286, 304)}
        print(f"\n{viewers} viewers from {procs} load process(es), {args.seconds:g} s: {len(samples):,} responses "
              f"= {len(samples) / wall:.0f} req/s ({by_status[200]} x 200, {by_status[304]} x 304, "
              f"{by_status[286]} x 286); errors {len(errors)}; during the round {changes['progress']} progress "
              f"updates, {changes['started']} starts, {changes['finished']} finishes")
        print(f"  p50 {percentile(times, 50):.1f} ms  p90 {percentile(times, 90):.1f} ms  "
              f"p99 {percentile(times, 99):.1f} ms  max {max(times) if times else float('nan'):.1f} ms")
        results.append((viewers, times, errors))
    stop.set()
    mutator.join(timeout=5)
    harness.stop()

    print("\nResults against targets:")
    for viewers, times, errors in results:
        target = TARGETS_MS.get(viewers, 100.0)
        ok = verdict(f"p99, {viewers} viewers", percentile(times, 99), target, "ms") and ok
        ok = verdict(f"errors, {viewers} viewers", float(len(errors)), 0, "") and ok
        if errors:
            print("  first errors:", errors[:5])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
