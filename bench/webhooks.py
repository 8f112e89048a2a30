"""Webhook delivery: from the committed `completed` row to the receiver's 200.

1. Latency: 1,000 task.completed events, a few dozen a second, idle `default` workers, a receiver
   answering at once. Target p99 <= 1 s.
2. Throughput: 300 events at once to a receiver that takes 200 ms per request (reported; the
   bound is worker slots / 0.2 s).
The completion is the real lifecycle path (claim, then complete) run in this process; the
deliveries go through the outbox, the broker and Celery workers on `default`.
Usage: .venv/bin/python bench/webhooks.py [--events 1000] [--burst 300] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"

from harness import Harness, percentile, verdict  # noqa: E402


class Receiver:
    """Records, per task id, when its task.completed was answered 200."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.answered: dict[str, float] = {}
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                task_id = json.loads(body).get("task_id")
                with receiver.lock:
                    receiver.requests += 1
                    receiver.answered.setdefault(task_id, time.time())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def complete_tasks(app, count: int, pace: float) -> dict[str, float]:
    """Create `count` tasks and complete each through the lifecycle; {task_id: commit time}."""
    from sqlalchemy import insert

    from webapp.extensions import db
    from webapp.models import RenderTask
    from webapp.services import lifecycle
    from webapp.services.batches import new_task_ids
    from webapp.timeutil import utcnow

    brief = {"theme_id": "bench", "keywords_id": ["a"], "target_duration_id": 5, "user_description_id": "",
             "priority": "normal", "config": {"quality": "low", "resolution": "256x144"}}
    done: dict[str, float] = {}
    with app.app_context():
        ids = new_task_ids(count)
        now = utcnow()
        db.session.execute(insert(RenderTask.__table__), [dict(
            id=i, status="queued", priority="normal", queue="video_generation", theme="bench", description="",
            resolution="256x144", quality="low", target_duration=5, request=brief, progress=0.0, message="",
            attempt=0, max_attempts=1, cancel_requested=False, created_at=now, updated_at=now,
            estimated_duration=5) for i in ids])
        db.session.commit()
        for task_id in ids:
            claim = lifecycle.claim(task_id, 0, "bench")
            lifecycle.complete(claim, {"video": "v.mp4"}, lambda: None)
            done[task_id] = time.time()
            if pace:
                time.sleep(pace)
    return done


def wait_all(receiver: Receiver, ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            if ids <= set(receiver.answered):
                return
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--pace", type=float, default=0.03, help="seconds between completions")
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    harness = Harness()
    harness.env["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    harness.worker("default", "hooks", concurrency=args.concurrency)
    receiver = Receiver()
    with harness.app.app_context():
        from webapp.services import webhooks

        harness.app.config["WEBHOOK_ALLOWED_HOSTS"] = ["127.0.0.1"]
        webhooks.create_endpoint({"url": receiver.url, "events": ["task.completed"]}, "bench")

    committed = complete_tasks(harness.app, args.events, args.pace)
    wait_all(receiver, set(committed), 120)
    latencies = [(receiver.answered[t] - c) * 1000 for t, c in committed.items() if t in receiver.answered]
    lost = len(committed) - len(latencies)

    receiver.delay = 0.2
    started = time.time()
    burst = complete_tasks(harness.app, args.burst, 0)
    wait_all(receiver, set(burst), 300)
    finished = max(receiver.answered.get(t, time.time()) for t in burst)
    throughput = sum(1 for t in burst if t in receiver.answered) / (finished - started)

    print(f"bench/webhooks.py: {args.events} task.completed events ({1 / args.pace if args.pace else 0:.0f}/s), "
          f"`default` worker concurrency {args.concurrency}, SQLite, local receiver")
    print(f"  commit -> 200: p50 {percentile(latencies, 50):.0f} ms, p90 {percentile(latencies, 90):.0f} ms, "
          f"max {max(latencies):.0f} ms; requests received {receiver.requests}")
    print(f"  burst of {args.burst} to a 200 ms receiver: {throughput:.1f} deliveries/s "
          f"(bound {args.concurrency / 0.2:.0f}/s = worker slots / 0.2 s)")
    ok = verdict("p99 commit -> receiver 200", percentile(latencies, 99), 1000, "ms")
    ok &= verdict("events not delivered", lost, 0, "")
    harness.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
