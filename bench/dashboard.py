"""Benchmark: signed-in viewers polling the dashboard's live board every 2 s, as htmx does (sending
the last ETag in If-None-Match), through gunicorn with the Procfile's settings (4 workers x 8
threads, gthread), on a SQLite file with 100,000 tasks, while tasks start, progress and finish.

Two rounds: 100 viewers (target p99 <= 25 ms) and 1,000 viewers from a few load processes
(target p99 <= 100 ms); no errors in either. Each round also prints the CPU the server (gunicorn, all
processes) and the load generator took: the load shares the machine's cores with the server.

`--reference DIR` also starts the same server from another checkout (e.g. a `git worktree` of the
commit before a change) on the same database and Redis, and runs every round on both, alternating,
`--repeat` times: before and after measured in one run.

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--viewers 100,1000] [--seconds 20]
        [--reference DIR --repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import resource
import statistics
import subprocess
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
#: The tab's browser: the same at sign-in and on every poll, as in a real browser.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) aura-bench"


def sign_in(base: str, username: str, password: str) -> requests.Session:
    """A browser-like session: fetch the login form for its CSRF token, then post it."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
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


def process_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [root]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == root:
                pids.append(int(entry))
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


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
                f"User-Agent: {USER_AGENT}\r\nCookie: {cookie}\r\n{extra}\r\n").encode()
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

    out, errors = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((out, errors, usage.ru_utime + usage.ru_stime))


def churn(app, stop: threading.Event, counts: dict[str, int]) -> None:
    """Tasks start, progress and finish while the viewers watch (direct writes, as workers do); each
    finish brings a new submission, so the board stays as busy however long the rounds last."""
    from sqlalchemy import insert, select, update

    from bench.seed_tasks import _row
    from webapp.extensions import db
    from webapp.models import RenderTask
    from webapp.timeutil import utcnow

    rng = random.Random(3)
    submitted = 0
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
                submitted += 1
                db.session.execute(insert(RenderTask), [_row(rng, 10**9 + submitted, now, "queued", now)])
            if rng.random() < 0.25 and waiting:
                db.session.execute(update(RenderTask).where(RenderTask.id == rng.choice(waiting)).values(
                    status="processing", started_at=now, updated_at=now + timedelta(microseconds=1)))
                counts["started"] += 1
            db.session.commit()


def round_of(base: str, cookies: list[str], viewers: int, procs: int, seconds: float) -> tuple[list, list, float]:
    """One round: (samples, errors, CPU seconds the load processes took)."""
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
    cpu = 0.0
    for _ in workers:
        out, errs, used = queue.get(timeout=seconds + 120)
        samples.extend(out)
        errors.extend(errs)
        cpu += used
    for proc in workers:
        proc.join()
    return samples, errors, cpu


def reference_server(harness: Harness, tree: Path, workers: int, threads: int) -> tuple[str, int]:
    """The same gunicorn command from another checkout (its code, its gunicorn.conf.py), on the
    harness's database, Redis and secret key: (base URL, master pid)."""
    from bench.harness import BIN, free_port

    port = free_port()
    env = dict(harness.env, PYTHONPATH=str(tree))
    log = open(harness.dir / "web-reference.log", "ab")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                             "-k", "gthread", "--threads", str(threads), "--keep-alive", "30",
                             "--log-level", "warning"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    harness.procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/login", timeout=1)
            return url, proc.pid
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("the reference gunicorn did not start; see " + str(harness.dir / "web-reference.log"))


def warm(base: str, cookies: list[str], workers: int) -> None:
    """Warm every worker's connections and templates."""
    for cookie in cookies:
        for _ in range(workers * 2):
            requests.get(f"{base}/", headers={"HX-Request": "true", "Cookie": cookie, "User-Agent": USER_AGENT},
                         timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--viewers", default="100,1000", help="comma-separated viewer counts, one round each")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=4, help="load processes per round (1 for 100 viewers)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (Procfile: 4)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (Procfile: 8)")
    parser.add_argument("--reference", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per viewer count and server")
    args = parser.parse_args()

    harness = Harness()
    seeded(harness, args.tasks)
    base = harness.gunicorn(workers=args.workers, threads=args.threads)
    servers = {"this tree": (base, harness.procs[-1].pid)}
    if args.reference:
        servers["reference"] = reference_server(harness, args.reference.resolve(), args.workers, args.threads)
    cookies = {}
    for name, (url, _pid) in servers.items():
        cookies[name] = [cookie_header(sign_in(url, *BENCH_VIEWER)) for _ in range(SESSIONS)]
        warm(url, cookies[name], args.workers)
    counts = {"progress": 0, "started": 0, "finished": 0}
    stop = threading.Event()
    mutator = threading.Thread(target=churn, args=(harness.app, stop, counts), daemon=True)
    mutator.start()
    for name, (url, _pid) in servers.items():
        print(f"{name}: gunicorn at {url} ({args.workers} workers x {args.threads} threads, gthread)")
    print(f"load average before the rounds: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    results: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for viewers in [int(v) for v in args.viewers.split(",")]:
        procs = 1 if viewers <= 100 else args.procs
        for rep in range(args.repeat):
            order = list(servers) if rep % 2 == 0 else list(reversed(servers))
            for name in order:
                url, pid = servers[name]
                before = dict(counts)
                cpu_before = process_cpu_seconds(pid)
                load_before = os.getloadavg()[0]
                began = time.monotonic()
                samples, errors, client_cpu = round_of(url, cookies[name], viewers, procs, args.seconds)
                wall = time.monotonic() - began
                server_cpu = process_cpu_seconds(pid) - cpu_before
                changes = {k: counts[k] - before[k] for k in counts}
                times = [ms for _status, ms in samples]
                by_status = {s: sum(1 for st, _ in samples if st == s) for s in (200, 286, 304)}
                print(f"\n[{name}] {viewers} viewers from {procs} load process(es), {args.seconds:g} s: "
                      f"{len(samples):,} responses = {len(samples) / wall:.0f} req/s ({by_status[200]} x 200, "
                      f"{by_status[304]} x 304, {by_status[286]} x 286); errors {len(errors)}; during the round "
                      f"{changes['progress']} progress updates, {changes['started']} starts, "
                      f"{changes['finished']} finishes")
                print(f"  p50 {percentile(times, 50):.1f} ms  p90 {percentile(times, 90):.1f} ms  "
                      f"p99 {percentile(times, 99):.1f} ms  max {max(times) if times else float('nan'):.1f} ms")
                per_request = server_cpu / max(1, len(samples)) * 1000
                print(f"  CPU: server {server_cpu:.1f} s ({server_cpu / wall * 100:.0f}% of one core, "
                      f"{per_request:.2f} ms a request), load generator {client_cpu:.1f} s "
                      f"({client_cpu / wall * 100:.0f}% of one core); load average {load_before:.1f} -> "
                      f"{os.getloadavg()[0]:.1f}")
                if errors:
                    print("  first errors:", errors[:5])
                results.setdefault((name, viewers), []).append((percentile(times, 99), len(errors)))
    stop.set()
    mutator.join(timeout=5)
    harness.stop()

    ok = True
    print("\nResults against targets (median p99 of the rounds, spread in brackets):")
    for (name, viewers), rounds in results.items():
        target = TARGETS_MS.get(viewers, 100.0)
        p99s = [p for p, _ in rounds]
        errors = sum(e for _, e in rounds)
        label = f"p99, {viewers} viewers" + (f" [{name}]" if len(servers) > 1 else "")
        passed = verdict(label, statistics.median(p99s), target, "ms")
        if len(p99s) > 1:
            print(f"    rounds: {', '.join(f'{p:.1f}' for p in p99s)} ms")
        passed = verdict(f"errors, {viewers} viewers" + (f" [{name}]" if len(servers) > 1 else ""),
                         float(errors), 0, "") and passed
        if name == "this tree":
            ok = passed and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
