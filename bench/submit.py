"""Submissions per second through gunicorn with SQLite: concurrent clients posting valid briefs.

Target: >= 400 submissions/s, p99 <= 50 ms, 0 errors, over 30 s.
Usage: .venv/bin/python bench/submit.py [--seconds 30] [--clients 16] [--web-workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BRIEFS, Harness, percentile, verdict  # noqa: E402


def client(url: str, token: str, seconds: float, threads: int, queue: mp.Queue) -> None:
    """One process of load: `threads` keep-alive connections posting briefs until time is up."""
    import threading

    parsed = urlparse(url)
    briefs = [json.dumps(b, ensure_ascii=False).encode() for b in BRIEFS]
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine = []
        i = offset
        while time.monotonic() < deadline:
            body = briefs[i % len(briefs)]
            i += 1
            started = time.perf_counter()
            try:
                conn.request("POST", "/tasks/video/async", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except Exception:
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
            mine.append((time.perf_counter() - started, status))
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    queue.put(results)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
bodies = {%(bodies)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/tasks/video/async", nil, bodies[(counter %% #bodies) + 1])
end
"""


def run_wrk(url: str, token: str, seconds: float, connections: int, workdir: Path) -> dict:
    """Drive the load with wrk (C, light on the CPU the server needs); parse its report."""
    import re
    import subprocess

    bodies = ", ".join("[[" + json.dumps(b, ensure_ascii=False) + "]]" for b in BRIEFS)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % {"token": token, "bodies": bodies})
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
                          url], capture_output=True, text=True).stdout

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"total": total, "rate": rate, "p50": ms(lat["50"]), "p99": ms(lat["99"]), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--web-workers", type=int, default=4)
    args = parser.parse_args()
    harness = Harness()
    url = harness.gunicorn(workers=args.web_workers, threads=8)
    token = harness.token("operator")
    if shutil.which("wrk"):
        report = run_wrk(url, token, args.seconds, args.clients, harness.dir)
        print(f"bench/submit.py: wrk, {report['total']} requests in {args.seconds:.0f}s, {args.clients} connections, "
              f"gunicorn {args.web_workers} workers x 8 threads, SQLite; p50 {report['p50']:.1f} ms")
        ok = verdict("submissions per second", report["rate"], 400, "/s", higher_is_better=True)
        ok &= verdict("p99 latency", report["p99"], 50, "ms")
        ok &= verdict("errors (non-202, socket)", report["errors"], 0, "")
        harness.stop()
        return 0 if ok else 1
    procs_n = 2
    queue: mp.Queue = mp.Queue()
    procs = [mp.Process(target=client, args=(url, token, args.seconds, args.clients // procs_n, queue))
             for _ in range(procs_n)]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = []
    for _ in procs:
        results.extend(queue.get())
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    latencies = [r[0] * 1000 for r in results if r[1] == 202]
    errors = sum(1 for r in results if r[1] != 202)
    rate = len(latencies) / elapsed
    with harness.app.app_context():
        from sqlalchemy import func, select

        from webapp.extensions import db
        from webapp.models import RenderTask

        rows = db.session.scalar(select(func.count()).select_from(RenderTask))
        queued = db.session.scalar(select(func.count()).select_from(RenderTask).where(RenderTask.status == "queued"))
    print(f"bench/submit.py: {len(results)} requests in {elapsed:.1f}s, {args.clients} connections, "
          f"gunicorn {args.web_workers} workers x 8 threads, SQLite")
    print(f"  rows in the database: {rows} ({queued} queued); p50 {percentile(latencies, 50):.1f} ms")
    ok = verdict("submissions per second", rate, 400, "/s", higher_is_better=True)
    ok &= verdict("p99 latency", percentile(latencies, 99), 50, "ms")
    ok &= verdict("errors", errors, 0, "")
    harness.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
