"""Benchmark: the history page's filters, text search and deep cursor pages with 1,000,000 tasks,
served by gunicorn to a signed-in viewer, on SQLite (a file) or PostgreSQL (a throwaway database).
Target: p99 <= 100 ms for every filter and search.

    .venv/bin/python bench/history.py [--tasks 1000000] [--repeat 30] [--database sqlite|postgresql]
                                      [--keep PATH_OR_NAME]

Seeding a million tasks takes minutes: with --keep the seeded database is kept (a SQLite file at
PATH, or a PostgreSQL database NAME on the server) and reused by the next run with the same --keep.
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


def chinese_rare_term(app, middle: int) -> str:
    """A term found in one row only: the last two characters of a Chinese theme and its row number."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderTask

    with app.app_context():
        themes = db.session.scalars(select(RenderTask.theme).order_by(RenderTask.created_at)
                                    .offset(middle).limit(50)).all()
    theme = next(t for t in themes if "\u4e00" <= t[0] <= "\u9fff")
    name, number = theme.rsplit(" ", 1)
    return f"{name[-2:]} {number}"


def throwaway_postgres(admin_dsn: str, keep: str | None = None) -> str:
    """A fresh database on the PostgreSQL server, dropped at exit (or the database `keep`, created
    when missing and kept); returns its SQLAlchemy URL."""
    import atexit
    import os

    import psycopg

    name = keep or f"aura_bench_{os.getpid()}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"--keep: not a plain database name: {name}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not keep:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
        if not (keep and exists):
            conn.execute(f"CREATE DATABASE {name}")
        user, password, host, port = conn.info.user, conn.info.password, conn.info.host, conn.info.port

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    if not keep:
        atexit.register(drop)
    secret = f":{password}" if password else ""
    return f"postgresql+psycopg://{user}{secret}@{host}:{port}/{name}"


def already_seeded(harness: Harness, count: int) -> bool:
    """Whether a kept database already holds the seeded tasks (the viewer is created if missing)."""
    from sqlalchemy import func, select

    from webapp.extensions import db
    from webapp.models import RenderTask, User
    from webapp.services import auth

    with harness.app.app_context():
        tasks = db.session.scalar(select(func.count()).select_from(RenderTask))
        if tasks and tasks != count:
            raise SystemExit(f"--keep: the database holds {tasks:,} tasks, not {count:,}")
        if tasks and db.session.scalar(select(User).where(User.username == BENCH_VIEWER[0])) is None:
            auth.create_user(*BENCH_VIEWER, "viewer")
    return bool(tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="requests per filter")
    parser.add_argument("--deep", type=int, default=60, help="cursor pages to follow")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 dbname=test user=postgres",
                        help="PostgreSQL server to create the throwaway database on")
    parser.add_argument("--keep", help="keep the seeded database and reuse it: a SQLite file path, "
                        "or a PostgreSQL database name")
    args = parser.parse_args()

    if args.database == "postgresql":
        url = throwaway_postgres(args.pg_dsn, args.keep)
    else:
        url = f"sqlite:///{Path(args.keep).resolve()}" if args.keep else None
    harness = Harness(url)
    if not (args.keep and already_seeded(harness, args.tasks)):
        seeded(harness, args.tasks)
    if args.database == "postgresql":
        # Autovacuum analyses a freshly loaded table within a minute; do it now, once.
        from webapp.extensions import db

        with harness.app.app_context(), db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE render_tasks")
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
        "text, common (城市旅游)": "q=城市旅游",
        "text, common (holiday)": "q=holiday",
        "text, keyword (匠心)+status": "q=匠心&status=failed",
        "text, rare (one row)": f"q=row {rare_row}.",
        "text, rare (Chinese, one row)": f"q={chinese_rare_term(harness.app, rare_row)}",
        "text, no match": "q=no-such-words-anywhere",
        "text, no match (Chinese)": "q=没有这个主题",
        "text, 2 chars common (城市)": "q=城市",
        "text, 2 chars no match": "q=qz",
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
    for name, start in (("cursor pages", ""), ("text cursor pages (城市旅游)", "?q=城市旅游"),
                        ("text cursor pages (product launch)", "?q=product launch")):
        deep: list[float] = []
        url = f"{base}/history{start}"
        for _ in range(args.deep):
            elapsed, body = timed(url)
            deep.append(elapsed)
            found = re.search(r'hx-get="([^"]+cursor=[^"]+)"', body)
            if not found:
                break
            url = base + html.unescape(found.group(1))
        results[f"{name} 1-{len(deep)}"] = deep
    # A cursor far back: page from 45 days ago.
    from webapp.services.tasks import encode_cursor

    class Point:  # what encode_cursor reads
        created_at = utcnow() - timedelta(days=45)
        id = "video_9999999999_zzzzzzzz"

    far = f"{base}/history?cursor={encode_cursor(Point)}"
    results["cursor 45 days back"] = [timed(far)[0] for _ in range(args.repeat)]
    harness.stop()

    print(f"\n{args.tasks:,} tasks on {args.database}")
    print(f"{'filter':<40} {'p50':>8} {'p99':>8}   (ms, {args.repeat} requests each, sequential)")
    for name, values in results.items():
        print(f"  {name:<38} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}")
    print("\nResults against targets:")
    ok = True
    for name, values in results.items():
        ok = verdict(f"p99 {name}", percentile(values, 99), P99_TARGET_MS, "ms") and ok
    ok = verdict("errors", float(errors), 0, "") and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
