"""Fast bulk seeding of render tasks for the dashboard and history benchmarks.

`seed_tasks(app, count)` inserts `count` task rows with Core executemany in large batches:
a realistic mix of finished tasks over the past weeks, a steady trickle of completions and
failures in the last hour, and a few dozen live (waiting or running) tasks.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from webapp.catalog import PRIORITIES, QUEUES, VIDEO_QUEUE, TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.timeutil import utcnow

THEMES = ["产品宣传", "品牌故事", "新品发布", "城市旅游", "Product launch", "年度回顾", "Team update",
          "美食探店", "教育课程", "Conference recap", "公益广告", "Holiday sale"]
WORDS = ["科技", "创新", "未来", "匠心", "传承", "品质", "美食", "夜景", "fast", "secure", "open", "travel",
         "续航", "快充", "轻薄", "museum", "river", "city", "music", "story"]
RESOLUTIONS = ["1920x1080", "1280x720", "1080x1920", "720x1280", "1080x1080"]
QUALITIES = ["low", "medium", "high"]
BATCH = 20_000
FINAL_MIX = ([TaskStatus.COMPLETED.value] * 90 + [TaskStatus.FAILED.value] * 7
             + [TaskStatus.CANCELLED.value] * 3)


def _row(rng: random.Random, index: int, created, status: str, now) -> dict[str, Any]:
    theme = f"{rng.choice(THEMES)} {index}"
    keywords = rng.sample(WORDS, rng.randint(1, 4))
    priority = rng.choice(list(PRIORITIES))
    resolution = rng.choice(RESOLUTIONS)
    quality = rng.choice(QUALITIES)
    duration = rng.choice([5, 10, 15, 30, 45, 60, 90])
    description = f"{theme}：{'、'.join(keywords)}。A generated description for row {index}."
    brief = {"theme_id": theme, "keywords_id": keywords, "target_duration_id": duration,
             "user_description_id": description, "priority": priority,
             "config": {"quality": quality, "resolution": resolution}}
    queue = VIDEO_QUEUE if rng.random() < 0.9 else rng.choice(list(QUEUES))
    live = status in (TaskStatus.PENDING.value, TaskStatus.QUEUED.value, TaskStatus.PROCESSING.value,
                      TaskStatus.RETRY.value)
    took = rng.uniform(5, 120)
    started = created + timedelta(seconds=rng.uniform(0.1, 5))
    finished = None if live else min(now, started + timedelta(seconds=took))
    error = None
    if status == TaskStatus.FAILED.value:
        error = {"type": "RuntimeError", "message": "ffmpeg exited with status 1", "stage": "render",
                 "traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: ffmpeg exited with status 1"}
    suffix = f"{index:08x}"
    return {
        "id": f"video_{int(created.timestamp())}_{suffix}",
        "status": status, "priority": priority, "queue": queue, "theme": theme, "description": description,
        "resolution": resolution, "quality": quality, "target_duration": duration, "request": brief,
        "progress": 100.0 if status == TaskStatus.COMPLETED.value else (rng.uniform(1, 95) if live else 40.0),
        "stage": "render" if status == TaskStatus.PROCESSING.value else None,
        "message": "Rendering" if status == TaskStatus.PROCESSING.value else "",
        "attempt": 1, "max_attempts": 4, "cancel_requested": False,
        "created_at": created, "updated_at": finished or created,
        "dispatched_at": created, "started_at": started if status != TaskStatus.QUEUED.value else None,
        "finished_at": finished, "estimated_duration": int(took),
        "actual_duration": None if live else took, "result": None, "error": error,
        "submitted_by": "bench",
    }


def seed_tasks(app, count: int, live: int = 40, last_hour: int = 600, days: int = 60,
               seed: int = 7) -> dict[str, Any]:
    """Insert `count` tasks (about `live` live, `last_hour` finished in the last hour); returns facts."""
    rng = random.Random(seed)
    now = utcnow()
    started = time.perf_counter()
    table = RenderTask.__table__
    span = days * 86400.0
    live_states = [TaskStatus.QUEUED.value] * 3 + [TaskStatus.PROCESSING.value, TaskStatus.PENDING.value]
    with app.app_context():
        old = count - live - last_hour
        # One transaction per batch: the search index's triggers rewrite pages, and SQLite's WAL
        # can only be checkpointed between transactions.
        with db.engine.connect() as conn:
            batch: list[dict[str, Any]] = []
            for index in range(count):
                if index < old:
                    # Oldest first, evenly spread over `days`, ending an hour ago.
                    created = now - timedelta(seconds=3600 + span * (1 - index / max(1, old)))
                    status = rng.choice(FINAL_MIX)
                elif index < old + last_hour:
                    created = now - timedelta(seconds=3600 * (1 - (index - old) / last_hour) + 120)
                    status = TaskStatus.COMPLETED.value if rng.random() < 0.9 else TaskStatus.FAILED.value
                else:
                    created = now - timedelta(seconds=rng.uniform(1, 300))
                    status = rng.choice(live_states)
                batch.append(_row(rng, index, created, status, now))
                if len(batch) >= BATCH:
                    conn.execute(insert(table), batch)
                    conn.commit()
                    batch = []
            if batch:
                conn.execute(insert(table), batch)
                conn.commit()
        # No ANALYZE: a fresh production database has no planner statistics either.
    return {"rows": count, "seconds": time.perf_counter() - started}


def _migration(name: str):
    """A migration module by its file name's end (its SQL is reused for bulk loads)."""
    import importlib.util
    from pathlib import Path

    path = next((Path(__file__).resolve().parent.parent / "migrations" / "versions").glob(f"*_{name}.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bulk_seed(app, count: int) -> dict[str, Any]:
    """seed_tasks for large counts: the search indexes are set aside during the load and built once
    after it, the way migrations 0007 and 0009 build them for existing rows."""
    from sqlalchemy import text

    migration = _migration("history_search")
    short_terms = _migration("short_term_search")
    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
        with db.engine.begin() as conn:
            if postgres:
                conn.execute(text("DROP INDEX IF EXISTS ix_render_tasks_search"))
                conn.execute(text("DROP INDEX IF EXISTS ix_render_tasks_search_grams"))
            else:
                for name in migration.SQLITE_TRIGGERS:
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    facts = seed_tasks(app, count)
    started = time.perf_counter()
    with app.app_context(), db.engine.begin() as conn:
        if postgres:
            conn.execute(text(migration.PG_INDEX))
            conn.execute(text(short_terms.PG_INDEX))
        else:
            conn.execute(text(migration.SQLITE_FILL))
            for statement in migration.SQLITE_TRIGGERS.values():
                conn.execute(text(statement))
    facts["index_seconds"] = time.perf_counter() - started
    return facts


def live_task_ids(app, limit: int = 20) -> list[str]:
    """Ids of some live tasks (for task-page polling)."""
    from webapp.services.tasks import active_tasks

    with app.app_context():
        return [t.id for t in active_tasks(limit)]


BENCH_VIEWER = ("bench-viewer", "bench-password")


def seeded(harness: Any, count: int) -> None:
    """Seed `count` tasks into the harness's database and create the viewer the benches sign in as."""
    from webapp.services import auth

    print(f"Seeding {count:,} tasks into {harness.env['DATABASE_URL']} ...")
    facts = bulk_seed(harness.app, count)
    print(f"  seeded in {facts['seconds']:.1f} s, search index built in {facts['index_seconds']:.1f} s")
    with harness.app.app_context():
        auth.create_user(*BENCH_VIEWER, "viewer")
