"""The dashboard in headless Chromium against the real app, Redis and Celery workers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.conftest import SCREENSHOTS
from webapp.timeutil import utcnow

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_submit_in_chinese_and_watch_it_finish_without_reload(page, live_server, login, stack):
    stack.start_worker(concurrency=1)
    login(page, "operator", "olga")
    page.get_by_role("button", name="中文").click()
    page.wait_for_selector('html[lang="zh-CN"]')
    page.evaluate("window.__noReload = true")

    page.get_by_label("主题", exact=True).fill("城市夜景")
    keywords = page.get_by_label("关键词", exact=True)
    for word in ("美食", "夜景", "江景"):
        keywords.fill(word)
        keywords.press("Enter")
    assert page.locator(".tag-list .tag").count() == 3
    # Long enough to outlast a few 2 s polls: the bar must be seen moving before it completes.
    page.get_by_label("目标时长（秒）").fill("20")
    page.get_by_label("优先级", exact=True).select_option("high")
    page.get_by_label("画质", exact=True).select_option("low")
    page.get_by_label("尺寸", exact=True).select_option("custom")
    page.get_by_label("自定义尺寸（宽x高）").fill("640x360")
    page.get_by_label("描述", exact=True).fill("一段展示城市夜晚美食与江景的短片。")
    page.get_by_role("button", name="提交").click()

    new_link = page.locator("[data-new-task]")
    new_link.wait_for()
    task_id = new_link.get_attribute("data-new-task")
    assert re.fullmatch(r"video_\d+_[a-z0-9]+", task_id)
    # The form is fresh again and the board shows the new task.
    assert page.get_by_label("主题", exact=True).input_value() == ""
    row = page.locator(f'#live-board [data-task-id="{task_id}"]').first
    row.wait_for()
    assert "城市夜景" in row.inner_text()

    seen: set[float] = set()
    done_row = page.locator(f'#recent-tasks [data-task-id="{task_id}"][data-status="completed"]')
    for _ in range(600):
        if done_row.count():
            break
        bar = page.locator(f'#active-tasks [data-task-id="{task_id}"] [role=progressbar]')
        if bar.count():
            seen.add(float(bar.get_attribute("aria-valuenow")))
            if len(seen) == 2:
                shot(page, "dashboard-running")
        page.wait_for_timeout(200)
    assert done_row.count() == 1, f"task did not complete; progress seen {sorted(seen)}"
    assert page.evaluate("window.__noReload") is True  # no navigation happened
    assert len(seen) >= 2, f"the bar never moved: {sorted(seen)}"
    assert done_row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100.0"
    assert "已完成" in done_row.inner_text()
    page.wait_for_function("() => document.querySelector('#live-board').dataset.live === 'false'")
    shot(page, "dashboard-done-zh")

    done_row.locator("a.task-theme").click()
    page.wait_for_url(f"{live_server}/videos/{task_id}")
    video = page.locator("video#player")
    video.wait_for()
    page.wait_for_function("() => document.querySelector('video#player').readyState >= 1", timeout=20_000)
    duration = page.evaluate("document.querySelector('video#player').duration")
    assert abs(duration - 20.0) < 0.5
    page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
    page.wait_for_function("() => document.querySelector('video#player').currentTime > 0.3", timeout=20_000)
    downloads = page.locator("table.files a[download]")
    names = [downloads.nth(i).inner_text() for i in range(downloads.count())]
    assert any(n.endswith(".mp4") for n in names) and any(n.endswith(".srt") for n in names)
    assert any(n.endswith(".vtt") for n in names)
    page.evaluate("document.querySelector('video#player').pause()")


def test_cancel_from_the_task_page(page, live_server, login, make_task):
    task = make_task(status="queued", request={
        "theme_id": "新品发布", "keywords_id": ["轻薄", "续航"], "target_duration_id": 15,
        "user_description_id": "竖屏短视频", "priority": "urgent",
        "config": {"quality": "high", "resolution": "1080x1920"}})
    login(page, "operator")
    page.goto(f"{live_server}/videos/{task.id}")
    page.evaluate("window.__noReload = true")
    assert page.locator("#task-live").get_attribute("data-status") == "queued"
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Cancel task").click()
    page.wait_for_selector('#task-live[data-status="cancelled"]')
    assert dialogs and "Cancel this task?" in dialogs[0]
    assert page.evaluate("window.__noReload") is True
    assert page.locator('[data-action="cancel"]').count() == 0
    assert "Cancelled." in page.locator("#task-live").inner_text()


def test_history_filters_and_jump_to_a_task(page, live_server, login, make_task):
    now = utcnow()
    tasks = []
    for i, status in enumerate(["completed", "failed", "completed", "cancelled", "failed", "queued"]):
        tasks.append(make_task(status=status, created_at=now - timedelta(minutes=10 - i),
                               finished_at=None if status == "queued" else now - timedelta(minutes=9 - i)))
    login(page, "viewer")
    page.get_by_role("link", name="History").click()
    page.wait_for_url(f"{live_server}/history")
    assert page.locator("#history-rows tr[data-task-id]").count() == 6
    page.get_by_label("Status").select_option("failed")
    page.wait_for_url(re.compile(r".*/history\?.*status=failed.*"))
    page.wait_for_function("() => document.querySelectorAll('#history-rows tr[data-task-id]').length === 2")
    statuses = page.locator("#history-rows tr[data-task-id]").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses == ["failed", "failed"]
    shot(page, "history-filtered")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Search theme, description or task id").fill(tasks[3].id)
    page.get_by_label("Search theme, description or task id").press("Enter")
    page.wait_for_url(f"{live_server}/videos/{tasks[3].id}")
    assert page.locator("#task-live").get_attribute("data-status") == "cancelled"


def test_viewer_sees_neither_the_form_nor_cancel(page, live_server, login, make_task):
    task = make_task(status="processing", progress=35.0, stage="render", message="Rendering chunk 1/3",
                     started_at=utcnow() - timedelta(seconds=12))
    login(page, "viewer")
    assert page.locator("#brief-form").count() == 0
    assert page.locator(f'#active-tasks [data-task-id="{task.id}"]').count() == 1
    page.goto(f"{live_server}/videos/{task.id}")
    assert page.locator('[data-action="cancel"]').count() == 0
    assert page.locator('[data-action="resubmit"]').count() == 0
    assert "Rendering chunk 1/3" in page.locator("#task-live").inner_text()


def test_phone_and_dark_scheme_and_keyboard(browser, live_server, make_user, make_task):
    """The dashboard on a phone in dark mode: no horizontal scroll, keyboard reaches the form."""
    make_user("phone", "operator")
    make_task(status="processing", progress=60.0, stage="render", started_at=utcnow() - timedelta(seconds=30))
    make_task(status="completed", progress=100.0, finished_at=utcnow() - timedelta(minutes=4))
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", locale="zh-CN",
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/login")
        assert page.locator("html").get_attribute("lang") == "zh-CN"  # Accept-Language
        page.get_by_label("用户名").fill("phone")
        page.get_by_label("密码").fill("password123")
        page.get_by_label("密码").press("Enter")
        page.wait_for_url(f"{live_server}/")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 19, 26)"
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        page.locator("#f-theme").focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "f-keywords"
        shot(page, "dashboard-phone-dark")
    finally:
        context.close()


def test_unchanged_board_polls_get_304_and_keep_the_board(page, live_server, login, make_task, monkeypatch):
    from webapp.dashboard import live

    monkeypatch.setattr(live, "TICK_SECONDS", 10**9)
    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 0.0)  # only data changes move the ETag here
    task = make_task(status="processing", progress=35.0, stage="render", message="Rendering chunk 1/3",
                     started_at=utcnow() - timedelta(seconds=12))
    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if r.request.headers.get("hx-request") else None)
    login(page, "viewer")
    board = page.locator("#live-board")
    etag = board.get_attribute("data-etag")
    assert etag
    page.evaluate("document.getElementById('live-board').dataset.marker = 'kept'")
    deadline = utcnow() + timedelta(seconds=15)
    while polls.count(304) < 2 and utcnow() < deadline:
        page.wait_for_timeout(250)
    assert polls.count(304) >= 2, polls
    # The same element, untouched: htmx did not swap the empty 304 body in.
    assert board.get_attribute("data-marker") == "kept"
    assert page.locator(f'#active-tasks [data-task-id="{task.id}"]').count() == 1
    assert "Rendering chunk 1/3" in board.inner_text()
    assert board.get_attribute("data-live") == "true"

    # A change is swapped in by the next poll.
    from webapp.extensions import db
    from webapp.models import RenderTask

    db.session.execute(RenderTask.__table__.update().where(RenderTask.id == task.id)
                       .values(progress=80.0, message="Rendering chunk 3/3",
                               updated_at=utcnow() + timedelta(seconds=1)))
    db.session.commit()
    page.wait_for_function("() => document.getElementById('live-board').innerText.includes('Rendering chunk 3/3')")
    assert page.locator("#live-board").get_attribute("data-etag") != etag


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_queue_grid_fits_its_card_in_chinese_at_1280px(browser, live_server, make_user, make_task, role):
    """Chinese labels, the submit form beside the board: the queue x priority grid's last column shows."""
    make_user("grid", role)
    for prio in ("urgent", "high", "normal", "low"):
        make_task(status="queued", priority=prio, created_at=utcnow() - timedelta(minutes=75))
    make_task(status="processing", progress=20.0, started_at=utcnow())
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{live_server}/login")
        page.get_by_label("用户名").fill("grid")
        page.get_by_label("密码").fill("password123")
        page.get_by_label("密码").press("Enter")
        page.wait_for_url(f"{live_server}/")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        scroller = page.locator("#queues-title ~ .table-scroll")
        widths = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert widths[0] <= widths[1], f"the grid is {widths[0]} px wide in a {widths[1]} px card"
        last = page.locator(".grid-table thead th").last
        card = page.locator("#queues-title").locator("xpath=..")
        last_box, card_box = last.bounding_box(), card.bounding_box()
        assert last_box["x"] + last_box["width"] <= card_box["x"] + card_box["width"]
        assert last.inner_text().strip() == "最长等待"
        shot(page, f"queue-grid-zh-1280-{role}")
    finally:
        context.close()
