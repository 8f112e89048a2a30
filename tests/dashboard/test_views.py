"""The dashboard pages and their live fragments, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest

from tests.conftest import small_brief
from tests.dashboard.conftest import HTMX, csrf_from
from webapp.catalog import PRIORITIES, TaskStatus
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.services.validation import BriefError, validate_brief
from webapp.timeutil import utcnow

HISTORY_ANCHOR = datetime(2026, 3, 10, 9, 0, 0)  # naive UTC, like the database
PAGES = ["/", "/history", "/settings", "/videos/video_1700000000_abcdef12"]

GOOD_FORM = {
    "theme_id": "产品宣传",
    "keywords_id": "科技，创新, 未来",
    "target_duration_id": "5",
    "user_description_id": "一个展示AI技术发展的宣传视频",
    "priority": "high",
    "quality": "low",
    "resolution": "custom",
    "custom_resolution": "320x180",
}


def fresh(task_id: str) -> RenderTask:
    db.session.expire_all()
    return db.session.get(RenderTask, task_id)


def text_of(response) -> str:
    return response.get_data(as_text=True)


# --- access ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login_when_signed_out(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


def test_fragment_poll_when_signed_out_asks_htmx_for_a_full_redirect(client):
    response = client.get("/", headers=HTMX)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_login_with_wrong_password_fails_without_telling_which_part(client, make_user):
    make_user("ana", "operator")
    response = client.post("/login", data={"username": "ana", "password": "nope-nope"})
    assert response.status_code == 401
    assert "Wrong user name or password." in text_of(response)
    assert client.get("/").status_code == 302


def test_login_follows_only_local_next(client, make_user):
    make_user("ana", "operator")
    response = client.post("/login?next=https://evil.example/x", data={"username": "ana", "password": "password123"})
    assert response.location == "/"
    client.post("/logout")
    response = client.post("/login?next=/history", data={"username": "ana", "password": "password123"})
    assert response.location == "/history"


def test_inactive_user_cannot_sign_in(client, make_user):
    user = make_user("gone", "admin")
    user.active = False
    db.session.commit()
    assert client.post("/login", data={"username": "gone", "password": "password123"}).status_code == 401


def test_logout_signs_out(client, sign_in):
    sign_in("viewer")
    assert client.get("/").status_code == 200
    assert client.get("/logout").status_code == 200  # a page with the sign-out button
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", PAGES[:3])
def test_every_page_renders_for_a_signed_in_user(client, sign_in, path):
    sign_in("viewer")
    response = client.get(path)
    assert response.status_code == 200
    body = text_of(response)
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "vendor/htmx.min.js" in body and "//cdn" not in body


def test_viewer_sees_no_submit_form_and_cannot_post(client, sign_in, make_task):
    sign_in("viewer")
    body = text_of(client.get("/"))
    assert 'id="brief-form"' not in body
    assert client.post("/", data=GOOD_FORM).status_code == 403
    assert db.session.query(RenderTask).count() == 0


def test_viewer_sees_no_cancel_and_cannot_cancel(client, sign_in, make_task):
    task = make_task(status="processing", progress=40.0, started_at=utcnow())
    sign_in("viewer")
    body = text_of(client.get(f"/videos/{task.id}"))
    assert 'data-action="cancel"' not in body and 'data-action="resubmit"' not in body
    assert client.post(f"/videos/{task.id}/cancel").status_code == 403
    assert fresh(task.id).cancel_requested is False


def test_viewer_has_no_token_section(client, sign_in):
    sign_in("viewer")
    assert "API tokens" not in text_of(client.get("/settings"))
    assert client.post("/settings/tokens", data={"name": "x", "role": "viewer"}).status_code == 403


# --- CSRF ------------------------------------------------------------------------------------

def test_forms_and_htmx_posts_need_the_csrf_token(app, client, make_user):
    make_user("ana", "operator")
    app.config["WTF_CSRF_ENABLED"] = True
    login_page = text_of(client.get("/login"))
    assert client.post("/login", data={"username": "ana", "password": "password123"}).status_code == 400
    response = client.post("/login", data={"username": "ana", "password": "password123",
                                           "csrf_token": csrf_from(login_page)})
    assert response.status_code == 302
    page = text_of(client.get("/"))
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    rejected = client.post("/", data=GOOD_FORM, headers=HTMX)
    assert rejected.status_code == 400
    assert db.session.query(RenderTask).count() == 0
    accepted = client.post("/", data=GOOD_FORM, headers={**HTMX, "X-CSRFToken": token})
    assert accepted.status_code == 200
    assert db.session.query(RenderTask).count() == 1
    task_id = db.session.query(RenderTask.id).scalar()
    assert client.post(f"/videos/{task_id}/cancel").status_code == 400
    assert client.post("/lang", data={"lang": "zh"}).status_code == 400
    assert client.post("/logout").status_code == 400


# --- submit ----------------------------------------------------------------------------------

def test_operator_submits_the_form(client, sign_in):
    sign_in("operator", "olga")
    response = client.post("/", data=GOOD_FORM)
    assert response.status_code == 302
    task_id = response.location.rsplit("/", 1)[1]
    task = fresh(task_id)
    assert task.submitted_by == "user:olga"
    assert task.request == validate_brief({
        "theme_id": "产品宣传", "keywords_id": ["科技", "创新", "未来"], "target_duration_id": 5,
        "user_description_id": "一个展示AI技术发展的宣传视频", "priority": "high",
        "config": {"quality": "low", "resolution": "320x180"}})
    page = text_of(client.get(response.location))
    assert "产品宣传" in page and task_id in page


def test_htmx_submit_returns_a_fresh_form_and_refreshes_the_board(client, sign_in):
    sign_in("operator")
    response = client.post("/", data={**GOOD_FORM, "resolution": "1080x1920", "custom_resolution": ""}, headers=HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "aura:refresh"
    body = text_of(response)
    assert body.lstrip().startswith("{") is False and 'id="brief-form"' in body
    task = db.session.query(RenderTask).one()
    assert f'data-new-task="{task.id}"' in body
    assert task.resolution == "1080x1920"


def test_form_errors_are_inline_and_values_are_kept(client, sign_in):
    sign_in("operator")
    form = {**GOOD_FORM, "theme_id": "  ", "target_duration_id": "9999", "custom_resolution": "333x100",
            "user_description_id": "保留这段描述 <b>x</b>"}
    response = client.post("/", data=form)
    assert response.status_code == 400
    body = text_of(response)
    with pytest.raises(BriefError) as expected:
        validate_brief({"theme_id": " ", "keywords_id": ["a"], "target_duration_id": 9999,
                        "config": {"resolution": "333x100"}})
    for field, message in (("theme_id", expected.value.fields["theme_id"]),
                           ("target_duration_id", expected.value.fields["target_duration_id"]),
                           ("custom_resolution", expected.value.fields["config.resolution"])):
        assert f'<p class="field-error" id="err-{field}">{html.escape(message)}</p>' in body
    assert 'aria-invalid="true" aria-describedby="err-theme_id"' in body
    assert "保留这段描述 &lt;b&gt;x&lt;/b&gt;</textarea>" in body
    assert 'value="科技，创新, 未来"' in body and 'value="333x100"' in body and 'value="9999"' in body
    assert re.search(r'<option value="high"\s+selected>', body)
    assert db.session.query(RenderTask).count() == 0


def test_non_numeric_duration_and_missing_keywords_use_the_api_messages(client, sign_in):
    sign_in("operator")
    body = text_of(client.post("/", data={**GOOD_FORM, "target_duration_id": "ten", "keywords_id": " , "},
                               headers=HTMX))
    assert "The duration must be a whole number of seconds." in body
    assert "Give between 1 and 10 keywords." in body


def test_hostile_text_is_escaped_everywhere(client, sign_in, make_task):
    hostile = '<script>alert("x")</script>'
    brief = small_brief(theme_id=hostile, user_description_id=hostile, keywords_id=[hostile])
    task = make_task(request=brief, status="failed", finished_at=utcnow(),
                     error={"type": "<img src=x onerror=alert(1)>", "message": hostile, "stage": "render",
                            "traceback": f"Traceback\n  {hostile}"})
    sign_in("operator")
    for path in ("/", f"/videos/{task.id}", "/history", f"/?from={task.id}"):
        body = text_of(client.get(path))
        assert hostile not in body and "<img src=x" not in body, path
        assert "&lt;script&gt;" in body, path


# --- live fragments --------------------------------------------------------------------------

def test_dashboard_fragment_answers_286_when_nothing_is_live(client, sign_in, make_task):
    make_task(status="completed", progress=100.0, finished_at=utcnow())
    sign_in("viewer")
    response = client.get("/", headers=HTMX)
    assert response.status_code == 286
    body = text_of(response)
    assert body.lstrip().startswith('<div id="live-board"')
    assert "every " not in body  # the new element does not poll again
    assert "<html" not in body


def test_dashboard_fragment_polls_while_a_task_is_live(client, sign_in, make_task):
    task = make_task(status="processing", progress=42.0, stage="render", message="Rendering chunk 2/4",
                     started_at=utcnow() - timedelta(seconds=20))
    sign_in("viewer")
    response = client.get("/", headers=HTMX)
    assert response.status_code == 200
    body = text_of(response)
    poller = re.search(r'<div id="live-board"[^>]*>', body).group(0)
    assert "every 2s," in poller and 'data-poll="visible"' in poller
    assert 'hx-sync="this:drop"' in poller
    assert f'data-task-id="{task.id}"' in body
    assert 'aria-valuenow="42.0"' in body and "Rendering chunk 2/4" in body
    assert "ETA" in body


def test_history_restore_gets_the_whole_page(client, sign_in):
    sign_in("viewer")
    response = client.get("/", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert response.status_code == 200 and "<html" in text_of(response)


def test_queue_grid_counts_waiting_tasks_by_queue_and_priority(client, sign_in, make_task):
    old = utcnow() - timedelta(minutes=7)
    make_task(status="queued", priority="urgent", created_at=old)
    make_task(status="queued", priority="urgent")
    make_task(status="pending", priority="low")
    make_task(status="processing", priority="low")  # running, not waiting
    sign_in("viewer")
    body = text_of(client.get("/", headers=HTMX))
    row = re.search(r'<th scope="row" class="mono">video_generation</th>(.*?)</tr>', body, re.S).group(1)
    cells = re.findall(r'<span class="num">(\d+)</span>', row)
    assert cells == ["2", "0", "0", "1"]  # urgent, high, normal, low
    assert list(PRIORITIES) == ["urgent", "high", "normal", "low"]
    assert "7 min" in row


def test_chart_counts_the_last_hour(client, sign_in, make_task):
    now = utcnow()
    for minutes in (1, 2, 12):
        make_task(status="completed", progress=100.0, finished_at=now - timedelta(minutes=minutes))
    make_task(status="failed", finished_at=now - timedelta(minutes=3))
    make_task(status="completed", progress=100.0, finished_at=now - timedelta(minutes=90))  # too old
    sign_in("viewer")
    body = text_of(client.get("/", headers=HTMX))
    assert "Completed 3 and failed 1 tasks in the last hour" in body
    assert body.count('class="bar-done"') == 2 and body.count('class="bar-failed"') == 1


@pytest.mark.parametrize("view", ["dashboard", "task"])
def test_polled_fragment_costs_a_fixed_number_of_queries(client, sign_in, make_task, count_queries, view):
    sign_in("viewer")
    client.get("/", headers=HTMX)  # the session's user is cached from the first poll on: count from there
    first = make_task(status="processing", progress=10.0, started_at=utcnow())
    url = "/" if view == "dashboard" else f"/videos/{first.id}"

    def measure() -> int:
        with count_queries() as statements:
            assert client.get(url, headers=HTMX).status_code == 200
        return len(statements)

    one = measure()
    from webapp.services.tasks import add_event

    for i in range(29):
        make_task(status="queued" if i % 2 else "processing", progress=float(i), started_at=utcnow(),
                  priority=list(PRIORITIES)[i % 4], parent_id=first.id)
        add_event(first.id, "progress", f"step {i}")
        make_task(status="completed" if i % 3 else "failed", finished_at=utcnow() - timedelta(minutes=i))
    db.session.commit()
    many = measure()
    assert one == many, f"{one} queries with 1 row, {many} with 30"
    assert many <= 7


def test_task_fragment_stops_polling_when_the_task_is_final(client, sign_in, make_task):
    sign_in("viewer")
    running = make_task(status="processing", progress=50.0, started_at=utcnow())
    done = make_task(status="completed", progress=100.0, finished_at=utcnow())
    live = client.get(f"/videos/{running.id}", headers=HTMX)
    assert live.status_code == 200 and "every 2s" in text_of(live)
    final = client.get(f"/videos/{done.id}", headers=HTMX)
    assert final.status_code == 286 and "every 2s" not in text_of(final)
    assert text_of(final).lstrip().startswith('<div id="task-live"')


# --- the task page ---------------------------------------------------------------------------

def test_unknown_task_is_a_404_page(client, sign_in):
    sign_in("viewer")
    response = client.get("/videos/video_1700000000_nothere1")
    assert response.status_code == 404
    assert "No such task" in text_of(response) and "video_1700000000_nothere1" in text_of(response)


def test_completed_task_shows_player_downloads_and_file_facts(client, sign_in, make_task):
    task_id = "video_1700000001_done0001"
    files = [
        {"kind": "video", "name": "video.mp4", "size": 1_234_567, "duration": 5.0, "width": 320, "height": 180,
         "url": f"/media/{task_id}/video.mp4"},
        {"kind": "srt", "name": "captions.srt", "size": 321, "url": f"/media/{task_id}/captions.srt"},
        {"kind": "vtt", "name": "captions.vtt", "size": 330, "url": f"/media/{task_id}/captions.vtt"},
        {"kind": "poster", "name": "poster.jpg", "size": 9000, "width": 320, "height": 180,
         "url": f"/media/{task_id}/poster.jpg"},
    ]
    make_task(id=task_id, status="completed", progress=100.0, finished_at=utcnow(), actual_duration=12.5,
              result={"files": files, "video": "video.mp4", "poster": "poster.jpg",
                      "video_url": f"/media/{task_id}/video.mp4", "poster_url": f"/media/{task_id}/poster.jpg"})
    sign_in("viewer")
    body = text_of(client.get(f"/videos/{task_id}"))
    assert re.search(rf'<video id="player" controls [^>]*poster="/media/{task_id}/poster.jpg"', body)
    assert f'<source src="/media/{task_id}/video.mp4" type="video/mp4">' in body
    # Captions are burned in by default: the track is offered, but off, so none shows twice.
    track = re.search(rf'<track kind="subtitles" src="/media/{task_id}/captions.vtt"[^>]*>', body)
    assert track and "default" not in track.group(0)
    for name in ("video.mp4", "captions.srt", "captions.vtt"):
        assert f'href="/media/{task_id}/{name}" download="{name}"' in body
    assert "1.2 MB" in body and "320 × 180" in body and "12 s" in body


def test_sidecar_only_captions_turn_the_track_on(client, sign_in, make_task):
    from tests.conftest import small_brief

    task_id = "video_1700000001_side0001"
    brief = small_brief()
    brief["config"] = {**brief["config"], "subtitles": {"burn": False}}
    files = [{"kind": "vtt", "name": "captions.vtt", "size": 330, "url": f"/media/{task_id}/captions.vtt"}]
    make_task(id=task_id, status="completed", progress=100.0, finished_at=utcnow(), request=brief,
              result={"files": files, "video": "video.mp4", "video_url": f"/media/{task_id}/video.mp4"})
    sign_in("viewer")
    body = text_of(client.get(f"/videos/{task_id}"))
    track = re.search(rf'<track kind="subtitles" src="/media/{task_id}/captions.vtt"[^>]*>', body)
    assert track and track.group(0).endswith(" default>")


def test_failed_task_shows_the_error_and_to_admins_the_end_of_the_traceback(client, sign_in, make_task):
    lines = [f"  frame {i}" for i in range(40)] + ["RuntimeError: ffmpeg exited with 1"]
    task = make_task(status="failed", finished_at=utcnow(), message="Failed at render",
                     error={"type": "RuntimeError", "message": "ffmpeg exited with 1", "stage": "render",
                            "traceback": "\n".join(lines)})
    sign_in("admin")
    body = text_of(client.get(f"/videos/{task.id}"))
    assert "<strong>RuntimeError</strong>: ffmpeg exited with 1" in body
    assert "frame 39" in body and "frame 5\n" not in body
    assert "<video" not in body


def test_operator_cancels_a_waiting_task(client, sign_in, make_task):
    task = make_task(status="queued")
    sign_in("operator", "olga")
    page = text_of(client.get(f"/videos/{task.id}"))
    assert 'data-action="cancel"' in page and "hx-confirm=" in page
    response = client.post(f"/videos/{task.id}/cancel", headers=HTMX)
    assert response.status_code == 286
    assert 'data-status="cancelled"' in text_of(response)
    row = fresh(task.id)
    assert row.status == TaskStatus.CANCELLED.value
    assert "user:olga" in text_of(client.get(f"/videos/{task.id}"))  # in the timeline


def test_cancelling_a_running_task_flags_it_and_keeps_polling(client, sign_in, make_task):
    task = make_task(status="processing", progress=30.0, started_at=utcnow())
    sign_in("operator")
    response = client.post(f"/videos/{task.id}/cancel")
    assert response.status_code == 302
    assert fresh(task.id).cancel_requested is True
    fragment = client.get(f"/videos/{task.id}", headers=HTMX)
    assert fragment.status_code == 200 and 'data-action="cancel"' not in text_of(fragment)


def test_submit_again_prefills_and_links_both_tasks(client, sign_in, make_task):
    brief = small_brief(theme_id="城市旅游", keywords_id=["美食", "夜景"],
                        config={"quality": "medium", "resolution": "1600x900"})
    old = make_task(request=brief, status="failed", finished_at=utcnow())
    sign_in("operator")
    form_page = text_of(client.get(f"/?from={old.id}"))
    assert 'value="城市旅游"' in form_page and 'value="美食, 夜景"' in form_page
    assert f'name="parent_id" value="{old.id}"' in form_page
    assert re.search(r'<option value="custom"\s+selected>', form_page) and 'value="1600x900"' in form_page
    form = {"theme_id": "城市旅游", "keywords_id": "美食, 夜景", "target_duration_id": "5", "priority": "normal",
            "quality": "medium", "resolution": "custom", "custom_resolution": "1600x900",
            "user_description_id": "", "parent_id": old.id}
    new_id = client.post("/", data=form).location.rsplit("/", 1)[1]
    assert fresh(new_id).parent_id == old.id
    assert f'data-parent-link>{old.id}</a>' in text_of(client.get(f"/videos/{new_id}"))
    assert f'data-child-link>{new_id}</a>' in text_of(client.get(f"/videos/{old.id}"))


# --- history ---------------------------------------------------------------------------------

def test_history_filters_and_pages(client, sign_in, make_task):
    # A fixed morning, not "three days ago": 25 minutes from then never cross midnight, so the
    # next day's `since` matches none of them whatever the clock says.
    base = HISTORY_ANCHOR
    for i in range(25):
        make_task(status="completed" if i % 2 else "failed", priority="high" if i < 5 else "low",
                  created_at=base + timedelta(minutes=i), finished_at=base + timedelta(minutes=i, seconds=30),
                  request=small_brief(theme_id=f"主题 {i:02d}"))
    sign_in("viewer")
    body = text_of(client.get("/history?status=failed"))
    assert 'data-status="completed"' not in body and body.count('data-status="failed"') == 13
    body = text_of(client.get("/history?priority=high", headers=HTMX))
    assert body.count("<tr data-task-id") == 5 and "<html" not in body
    first = text_of(client.get("/history"))
    assert first.count("<tr data-task-id") == 20 and "主题 24" in first and "主题 04" not in first
    more = re.search(r'hx-get="([^"]+cursor=[^"]+)"', first).group(1)
    rest = text_of(client.get(html.unescape(more), headers=HTMX))
    assert rest.count("<tr data-task-id") == 5 and "主题 04" in rest and "主题 05" not in rest
    assert "主题 07" in text_of(client.get("/history?q=题 07"))
    day = (base + timedelta(days=1)).date().isoformat()
    assert "No task matches" in text_of(client.get(f"/history?since={day}"))


def test_history_search_with_a_task_id_jumps_to_the_task(client, sign_in, make_task):
    task = make_task()
    sign_in("viewer")
    response = client.get(f"/history?q={task.id}")
    assert response.status_code == 302 and response.location == f"/videos/{task.id}"
    htmx_response = client.get(f"/history?q={task.id}", headers=HTMX)
    assert htmx_response.headers["HX-Redirect"] == f"/videos/{task.id}"


def test_history_reports_a_bad_filter(client, sign_in):
    sign_in("viewer")
    response = client.get("/history?since=yesterday")
    assert response.status_code == 400
    assert "use an ISO 8601 date or time" in text_of(response)


# --- settings --------------------------------------------------------------------------------

def test_change_password(client, sign_in):
    sign_in("viewer", "vic")
    wrong = client.post("/settings/password", data={"current": "bad-bad-bad", "new": "new-password-1",
                                                    "confirm": "new-password-1"})
    assert wrong.status_code == 400 and "The current password is wrong." in text_of(wrong)
    short = client.post("/settings/password", data={"current": "password123", "new": "short", "confirm": "short"})
    assert short.status_code == 400 and "at least 8 characters" in text_of(short)
    ok = client.post("/settings/password", data={"current": "password123", "new": "new-password-1",
                                                 "confirm": "new-password-1"})
    assert ok.status_code == 302
    client.post("/logout")
    assert client.post("/login", data={"username": "vic", "password": "password123"}).status_code == 401
    assert client.post("/login", data={"username": "vic", "password": "new-password-1"}).status_code == 302


def test_operator_creates_and_revokes_an_api_token(client, sign_in, make_user):
    sign_in("operator", "olga")
    response = client.post("/settings/tokens", data={"name": "nightly", "role": "operator"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    raw = re.search(r'<code id="new-token">(aura_[^<]+)</code>', text_of(response)).group(1)
    api = client.get("/tasks/queue/status", headers={"Authorization": f"Bearer {raw}"})
    assert api.status_code == 200
    settings = text_of(client.get("/settings"))
    assert raw not in settings and raw[:12] in settings  # shown once, then only its prefix
    assert client.post("/settings/tokens", data={"name": "too-strong", "role": "admin"}).status_code == 400
    token_id = re.search(r'data-token-id="(\d+)"', settings).group(1)
    assert client.post(f"/settings/tokens/{token_id}/revoke").status_code == 302
    assert client.get("/tasks/queue/status", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_cannot_revoke_someone_elses_token(client, sign_in, make_user):
    from webapp.services.auth import create_token

    other = make_user("other", "operator")
    token, _raw = create_token("theirs", "operator", other)
    sign_in("operator", "olga")
    assert client.post(f"/settings/tokens/{token.id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(type(token), token.id).revoked_at is None


# --- language --------------------------------------------------------------------------------

def test_language_switch_sticks_in_a_cookie(client, sign_in):
    sign_in("operator")
    response = client.post("/lang", data={"lang": "zh", "next": "/history"})
    assert response.status_code == 302 and response.location == "/history"
    assert "lang=zh" in response.headers["Set-Cookie"]
    page = text_of(client.get("/"))
    assert '<html lang="zh-CN">' in page
    assert "新建视频" in page and "提交" in page
    client.post("/lang", data={"lang": "en"})
    assert '<html lang="en">' in text_of(client.get("/"))
    assert client.post("/lang", data={"lang": "fr"}).status_code == 400


def test_form_errors_and_api_messages_are_translated(client, sign_in, make_token):
    sign_in("operator")
    client.post("/lang", data={"lang": "zh"})
    body = text_of(client.post("/", data={**GOOD_FORM, "theme_id": ""}))
    assert "A theme is required." not in body
    assert "请填写主题。" in body
    token = make_token("operator")
    response = client.post("/tasks/video/async", json=small_brief(priority="high"),
                           headers={"Authorization": f"Bearer {token}", "Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.get_json()["message"] == "视频生成任务已提交，优先级：HIGH"


def test_task_page_lists_each_stage_with_its_runner_and_time(client, sign_in, make_task, make_token):
    from webapp.models import RenderStage

    started = utcnow() - timedelta(seconds=30)
    task = make_task(status="processing", attempt=1, lease_owner="gen@a:1:aa", started_at=started)
    for stage_id, kind, status, runner, seconds in (
            ("visuals", "visuals", "done", "media@hostA", 2.5), ("chunk-0", "render", "running", "video@hostB", None),
            ("assemble", "assemble", "waiting", None, None)):
        db.session.add(RenderStage(
            task_id=task.id, attempt=1, stage_id=stage_id, kind=kind, queue="video_processing", status=status,
            weight=0.1, runner=runner, progress=1.0 if status == "done" else 0.4 if runner else 0.0, message="",
            tries=1 if runner else 0, reused=False, started_at=started if runner else None,
            finished_at=started + timedelta(seconds=seconds) if seconds else None))
    db.session.commit()
    sign_in("viewer")
    body = text_of(client.get(f"/videos/{task.id}"))
    rows = re.findall(r'<tr data-stage="([^"]+)" data-stage-status="([^"]+)">(.*?)</tr>', body, re.S)
    assert [(r[0], r[1]) for r in rows] == [("visuals", "done"), ("chunk-0", "running"), ("assemble", "waiting")]
    assert "media@hostA" in rows[0][2] and "<td>2 s</td>" in rows[0][2]
    assert "video@hostB" in rows[1][2] and "40%" in rows[1][2]
    status = client.get(f"/tasks/status/{task.id}",
                        headers={"Authorization": f"Bearer {make_token('viewer')}"}).get_json()
    assert [(s["stage"], s["runner"]) for s in status["stages"]] == [
        ("visuals", "media@hostA"), ("chunk-0", "video@hostB"), ("assemble", None)]
