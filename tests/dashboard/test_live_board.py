"""The shared live board: one build per change for every viewer, ETag and 304 on unchanged polls,
each viewer's own line correct. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.conftest import IsolatedClient, small_brief
from tests.dashboard.conftest import HTMX
from webapp.dashboard import live
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.timeutil import utcnow


@pytest.fixture(autouse=True)
def still_clock(monkeypatch):
    """Keep the board's clock tick fixed, so only data changes move the ETag in these tests."""
    monkeypatch.setattr(live, "TICK_SECONDS", 10**9)


def signed_in_client(app, make_user, username: str, role: str):
    client = IsolatedClient(app, app.response_class, use_cookies=True)
    make_user(username, role)
    response = client.post("/login", data={"username": username, "password": "password123"})
    assert response.status_code == 302
    return client


def board_of(response) -> str:
    return response.get_data(as_text=True)


def test_unchanged_board_answers_304_and_a_change_answers_200(app, make_user, make_task):
    task = make_task(status="processing", progress=10.0, stage="render", started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    first = client.get("/", headers=HTMX)
    assert first.status_code == 200
    etag = first.headers["ETag"].strip('"')
    assert f'data-etag="{etag}"' in board_of(first)
    assert "no-cache" in first.headers["Cache-Control"]

    again = client.get("/", headers={**HTMX, "If-None-Match": f'"{etag}"'})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"].strip('"') == etag

    db.session.execute(update(RenderTask).where(RenderTask.id == task.id)
                       .values(progress=64.0, updated_at=utcnow() + timedelta(seconds=1)))
    db.session.commit()
    changed = client.get("/", headers={**HTMX, "If-None-Match": f'"{etag}"'})
    assert changed.status_code == 200
    assert changed.headers["ETag"].strip('"') != etag
    assert 'aria-valuenow="64.0"' in board_of(changed)


def test_new_and_finished_tasks_change_the_board(app, make_user, make_task):
    running = make_task(status="processing", progress=50.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    etag = client.get("/", headers=HTMX).headers["ETag"]

    newcomer = make_task(status="queued", updated_at=utcnow() + timedelta(seconds=1))
    response = client.get("/", headers={**HTMX, "If-None-Match": etag})
    assert response.status_code == 200 and f'data-task-id="{newcomer.id}"' in board_of(response)
    etag = response.headers["ETag"]

    later = utcnow() + timedelta(seconds=2)
    db.session.execute(update(RenderTask).where(RenderTask.id == running.id)
                       .values(status="completed", progress=100.0, finished_at=later, updated_at=later))
    db.session.commit()
    response = client.get("/", headers={**HTMX, "If-None-Match": etag})
    assert response.status_code == 200
    recent = re.search(r'<ul class="task-list compact" id="recent-tasks">(.*?)</ul>', board_of(response), re.S)
    assert recent and f'data-task-id="{running.id}"' in recent.group(1)


def test_viewers_of_one_role_share_one_build(app, make_user, make_task, count_queries):
    make_task(status="processing", progress=30.0, started_at=utcnow())
    one = signed_in_client(app, make_user, "first", "viewer")
    two = signed_in_client(app, make_user, "second", "viewer")
    a = one.get("/", headers=HTMX)
    with count_queries() as statements:
        b = two.get("/", headers=HTMX)
    assert a.status_code == b.status_code == 200
    assert board_of(a) == board_of(b) and a.headers["ETag"] == b.headers["ETag"]
    # The second viewer's poll reads the stamp and nothing else about tasks: no rebuild.
    task_reads = [s for s in statements if "render_tasks" in s]
    assert len(task_reads) == 1 and "max(updated_at)" in task_reads[0], statements
    assert len(live.cache_info()["keys"]) == 1

    admin = signed_in_client(app, make_user, "boss", "admin")
    assert admin.get("/", headers=HTMX).status_code == 200
    assert len(live.cache_info()["keys"]) == 2, live.cache_info()  # one build per role


def test_each_viewer_sees_their_own_live_tasks(app, make_user, make_task):
    for status in ("queued", "queued", "processing"):
        make_task(status=status, submitted_by="user:alice", started_at=utcnow())
    make_task(status="processing", submitted_by="user:bob", started_at=utcnow())
    make_task(status="completed", submitted_by="user:alice", finished_at=utcnow())
    alice = signed_in_client(app, make_user, "alice", "operator")
    bob = signed_in_client(app, make_user, "bob", "operator")
    carol = signed_in_client(app, make_user, "carol", "operator")
    a, b, c = (client.get("/", headers=HTMX) for client in (alice, bob, carol))
    assert "Yours: 1 running, 2 waiting" in board_of(a)
    assert "Yours: 1 running, 0 waiting" in board_of(b)
    assert 'id="yours"' not in board_of(c)
    assert len({r.headers["ETag"] for r in (a, b, c)}) == 3
    # Bob's ETag is not Alice's: a stale match never hides her own tasks.
    assert alice.get("/", headers={**HTMX, "If-None-Match": b.headers["ETag"]}).status_code == 200
    assert alice.get("/", headers={**HTMX, "If-None-Match": a.headers["ETag"]}).status_code == 304

    # The full page shows the same line, filled into the same shared build.
    page = alice.get("/").get_data(as_text=True)
    assert "Yours: 1 running, 2 waiting" in page and live.YOURS_SLOT not in page


def test_idle_board_still_stops_polling_and_rows_written_by_sql_are_seen(app, make_user, make_task):
    client = signed_in_client(app, make_user, "watcher", "viewer")
    idle = client.get("/", headers=HTMX)
    assert idle.status_code == 286
    brief = small_brief()
    now = utcnow() + timedelta(seconds=1)
    db.session.execute(RenderTask.__table__.insert().values(
        id="video_1700000000_rawsql01", status="queued", priority="high", queue="video_generation",
        theme="Raw SQL row", description="", resolution="320x180", quality="low", target_duration=5,
        request=brief, progress=0.0, message="", attempt=0, max_attempts=4, cancel_requested=False,
        created_at=now, updated_at=now, estimated_duration=3))
    db.session.commit()
    response = client.get("/", headers={**HTMX, "If-None-Match": idle.headers["ETag"]})
    assert response.status_code == 200 and "Raw SQL row" in board_of(response)


def test_a_burst_of_changes_rebuilds_at_most_once_per_period(app, make_user, make_task, monkeypatch):
    task = make_task(status="processing", progress=10.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 3600.0)
    first = client.get("/", headers=HTMX)
    db.session.execute(update(RenderTask).where(RenderTask.id == task.id)
                       .values(progress=77.0, updated_at=utcnow() + timedelta(seconds=1)))
    db.session.commit()
    # Within the period the last build is still served (and still matches).
    assert client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]}).status_code == 304
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 0.0)
    fresh = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert fresh.status_code == 200 and 'aria-valuenow="77.0"' in board_of(fresh)


def test_a_quiet_board_shows_a_new_task_at_once_within_the_period(app, make_user, make_task, monkeypatch):
    """An idle board does not poll: the submit's refresh is the only request, so it is never stale."""
    from webapp.dashboard import live

    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 3600.0)
    client = signed_in_client(app, make_user, "watcher", "viewer")
    idle = client.get("/", headers=HTMX)
    assert idle.status_code == 286
    make_task(theme="Just submitted", status="queued", updated_at=utcnow() + timedelta(seconds=1))
    response = client.get("/", headers={**HTMX, "If-None-Match": idle.headers["ETag"]})
    assert response.status_code == 200 and "Just submitted" in board_of(response)


def test_a_poll_within_the_period_runs_no_query_and_a_changed_user_is_refused(app, make_user, make_task,
                                                                              count_queries, monkeypatch):
    """The poll's cheap path: no user row, no stamp; yet a password change ends the session at once."""
    from webapp.models import User
    from webapp.services import auth

    make_task(status="processing", progress=20.0, submitted_by="user:watcher", started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 3600.0)
    first = client.get("/", headers=HTMX)
    assert first.status_code == 200 and "Yours: 1 running, 0 waiting" in board_of(first)
    with count_queries() as statements:
        again = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
        changed = client.get("/", headers={**HTMX, "If-None-Match": '"something-else"'})
    assert again.status_code == 304 and statements == []
    assert changed.status_code == 200 and "Yours: 1 running, 0 waiting" in board_of(changed)

    auth.update_user(db.session.scalar(db.select(User).filter_by(username="watcher")), password="another-one1")
    refused = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert refused.status_code == 401 and "HX-Redirect" in refused.headers


def test_a_refresh_after_an_event_is_not_served_an_older_build(app, make_user, make_task, monkeypatch):
    """The board's refresh after the viewer's own submit (X-Aura-Refresh) skips the reuse period."""
    make_task(status="processing", progress=20.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "operator")
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 3600.0)
    first = client.get("/", headers=HTMX)
    make_task(theme="Just submitted", status="queued", submitted_by="user:watcher",
              updated_at=utcnow() + timedelta(seconds=1))
    polled = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert polled.status_code == 304  # a plain poll within the period may get the last build
    refreshed = client.get("/", headers={**HTMX, "X-Aura-Refresh": "event", "If-None-Match": first.headers["ETag"]})
    assert refreshed.status_code == 200
    assert "Just submitted" in board_of(refreshed) and "Yours: 0 running, 1 waiting" in board_of(refreshed)


def test_processes_share_one_build_through_redis(app, make_user, make_task, monkeypatch):
    """A second process (its own cache) takes the first one's build from Redis: same HTML and ETag,
    no render of its own."""
    make_task(status="processing", progress=20.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    first = client.get("/", headers=HTMX)
    app.extensions["aura_board"] = live.BoardCache()  # as another gunicorn worker would have

    def no_build(*_args, **_kwargs):
        raise AssertionError("the second process must not build the board again")

    monkeypatch.setattr(live, "_build", no_build)
    second = client.get("/", headers=HTMX)
    assert second.status_code == 200 and second.headers["ETag"] == first.headers["ETag"]
    assert board_of(second) == board_of(first)


def test_a_session_ended_by_another_process_is_refused_by_the_next_poll(app, make_user, make_task, monkeypatch):
    """Another process changes the user (the row and the auth generation, not this process's cache)."""
    from webapp.models import User
    from webapp.services import auth
    from webapp.services.broker import redis_client

    make_task(status="processing", progress=20.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    monkeypatch.setattr(auth, "SESSION_GENERATION_SECONDS", 0.0)
    assert client.get("/", headers=HTMX).status_code == 200
    db.session.execute(update(User).where(User.username == "watcher").values(session_epoch=User.session_epoch + 1))
    db.session.commit()
    assert client.get("/", headers=HTMX).status_code == 200  # no bump yet: the cached picture holds
    redis_client().incr(auth.GENERATION_KEY)
    refused = client.get("/", headers=HTMX)
    assert refused.status_code == 401 and "HX-Redirect" in refused.headers


def test_within_the_period_another_process_adopts_the_newest_build_instead_of_building(
        app, make_user, make_task, count_queries, monkeypatch):
    """However many workers serve the polls, a live board is built once per period: a worker whose
    own period ran out takes the newest shared build while it is young enough, without a query."""
    task = make_task(status="processing", progress=10.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 3600.0)
    first = client.get("/", headers=HTMX)
    db.session.execute(update(RenderTask).where(RenderTask.id == task.id)
                       .values(progress=55.0, updated_at=utcnow() + timedelta(seconds=1)))
    db.session.commit()
    app.extensions["aura_board"] = live.BoardCache()  # another worker
    with count_queries() as statements:
        second = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert second.status_code == 304 and not [s for s in statements if "render_tasks" in s]
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 0.0)
    third = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert third.status_code == 200 and 'aria-valuenow="55.0"' in board_of(third)


def test_the_poll_that_finds_a_change_gets_the_young_last_build_and_the_next_poll_the_new_one(
        app, make_user, make_task, monkeypatch):
    """No poll waits for a build while the last one is young: it is made beside that poll."""
    import threading
    import time

    task = make_task(status="processing", progress=10.0, started_at=utcnow())
    client = signed_in_client(app, make_user, "watcher", "viewer")
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 0.5)
    first = client.get("/", headers=HTMX)
    builders: list[threading.Thread] = []
    original = live._build

    def recording_build(*args, **kwargs):
        builders.append(threading.current_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(live, "_build", recording_build)
    db.session.execute(update(RenderTask).where(RenderTask.id == task.id)
                       .values(progress=88.0, updated_at=utcnow() + timedelta(seconds=1)))
    db.session.commit()
    time.sleep(0.6)  # the period ran out, the last build is still young (< 2 periods)
    finder = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert finder.status_code == 304
    deadline = time.monotonic() + 10
    while not builders and time.monotonic() < deadline:
        time.sleep(0.01)
    assert builders and builders[0] is not threading.current_thread()
    builders[0].join(timeout=10)
    after = client.get("/", headers={**HTMX, "If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200 and 'aria-valuenow="88.0"' in board_of(after)
