"""History text search over all of history, kept in step by the database (SQLite FTS5 trigram,
PostgreSQL pg_trgm); on both databases, through the API a client uses."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, text, update

from tests.conftest import small_brief
from webapp.extensions import db
from webapp.models import RenderTask
from webapp.services import search
from webapp.timeutil import utcnow


def history(client, token, query: str) -> dict:
    response = client.get(f"/tasks/history?{query}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def all_pages(client, token, query: str) -> tuple[list[str], int]:
    found, cursor, pages = [], "", 0
    while True:
        page = history(client, token, f"{query}&cursor={cursor}")
        found += [t["task_id"] for t in page["tasks"]]
        pages += 1
        if not page["next_cursor"]:
            return found, pages
        cursor = page["next_cursor"]


def insert_raw(task_id: str, theme: str, description: str, keywords: list[str], created) -> None:
    """A row written by plain SQL, as a bulk load or an import would."""
    brief = json.dumps(small_brief(theme_id=theme, keywords_id=keywords, user_description_id=description))
    db.session.execute(text(
        "INSERT INTO render_tasks (id, status, priority, queue, theme, description, resolution, quality, "
        "target_duration, request, progress, message, attempt, max_attempts, cancel_requested, created_at, "
        "updated_at, estimated_duration) VALUES (:id, 'completed', 'normal', 'video_generation', :theme, "
        ":description, '256x144', 'low', 5, :request, 100.0, '', 1, 4, false, :at, :at, 3)"),
        {"id": task_id, "theme": theme, "description": description, "request": brief, "at": created})
    db.session.commit()


@pytest.fixture
def viewer_token(make_token) -> str:
    return make_token("viewer")


@pytest.mark.parametrize("probe_rows", [2000, 3])  # 3: read from the index, not the probe
def test_a_rare_term_is_found_anywhere_in_history_in_one_pass(client, viewer_token, make_task, monkeypatch,
                                                              probe_rows):
    monkeypatch.setattr(search, "PROBE_ROWS", probe_rows)
    base = utcnow() - timedelta(days=400)
    wanted = []
    for i in range(60):
        theme = "城市夜景 launch" if i in (0, 31, 59) else f"产品宣传 {i}"
        task = make_task(request=small_brief(theme_id=theme), theme=theme, created_at=base + timedelta(days=i * 6))
        if i in (0, 31, 59):
            wanted.append(task.id)
    first = history(client, viewer_token, "q=城市夜景&limit=20")
    assert [t["task_id"] for t in first["tasks"]] == list(reversed(wanted))
    assert first["next_cursor"] is None
    # With a filter on several states too (one page per state, merged).
    both = history(client, viewer_token, "q=城市夜景&status=queued,failed&limit=2")
    assert [t["task_id"] for t in both["tasks"]] == list(reversed(wanted))[:2] and both["next_cursor"]
    # Case-insensitive for ASCII, and in the middle of a word.
    assert len(history(client, viewer_token, "q=LAUNCH")["tasks"]) == 3
    assert len(history(client, viewer_token, "q=aunc")["tasks"]) == 3


def test_no_match_is_an_empty_page_without_a_cursor(client, viewer_token, make_task):
    for i in range(30):
        make_task(created_at=utcnow() - timedelta(days=i))
    page = history(client, viewer_token, "q=不存在的主题")
    assert page["tasks"] == [] and page["next_cursor"] is None
    page = history(client, viewer_token, "q=zz-nothing-zz&status=completed,failed")
    assert page["tasks"] == [] and page["next_cursor"] is None


def test_keywords_description_and_task_id_are_searched(client, viewer_token, make_task):
    by_keyword = make_task(request=small_brief(theme_id="主题甲", keywords_id=["匠心传承", "city"],
                                               user_description_id="无关的描述"))
    by_text = make_task(request=small_brief(theme_id="主题乙", user_description_id="介绍智能手表的续航能力"))
    make_task(request=small_brief(theme_id="主题丙", keywords_id=["科技"], user_description_id="别的"))
    assert [t["task_id"] for t in history(client, viewer_token, "q=匠心传承")["tasks"]] == [by_keyword.id]
    assert [t["task_id"] for t in history(client, viewer_token, "q=续航能力")["tasks"]] == [by_text.id]
    part_of_id = by_text.id.split("_")[-1][:6]
    assert [t["task_id"] for t in history(client, viewer_token, f"q={part_of_id}")["tasks"]] == [by_text.id]


def test_rows_written_by_sql_updated_and_deleted_stay_in_step(client, viewer_token):
    now = utcnow()
    insert_raw("video_1700000000_rawsql01", "批量导入的视频", "from an import", ["档案"], now - timedelta(days=900))
    insert_raw("video_1700000001_rawsql02", "Another import", "旧的档案资料", [], now - timedelta(days=800))
    ids = [t["task_id"] for t in history(client, viewer_token, "q=导入的视")["tasks"]]
    assert ids == ["video_1700000000_rawsql01"]
    assert len(history(client, viewer_token, "q=import")["tasks"]) == 2

    db.session.execute(update(RenderTask).where(RenderTask.id == "video_1700000000_rawsql01")
                       .values(theme="改名以后的主题"))
    db.session.commit()
    assert history(client, viewer_token, "q=导入的视")["tasks"] == []
    assert [t["task_id"] for t in history(client, viewer_token, "q=改名以后")["tasks"]] == \
        ["video_1700000000_rawsql01"]

    db.session.execute(delete(RenderTask).where(RenderTask.id == "video_1700000001_rawsql02"))
    db.session.commit()
    assert [t["task_id"] for t in history(client, viewer_token, "q=import")["tasks"]] == \
        ["video_1700000000_rawsql01"]


@pytest.mark.parametrize(("probe_rows", "index_matches"), [
    (2000, 5000),  # the probe fills every page
    (3, 5000),  # the probe meets too few: the matches are read from the index
    (3, 5),  # too few in the probe, too many for the index: the whole walk
])
@pytest.mark.parametrize("term", ["holiday", "假日"])
def test_a_common_term_pages_newest_first_through_every_match(client, viewer_token, make_task, monkeypatch,
                                                              probe_rows, index_matches, term):
    monkeypatch.setattr(search, "PROBE_ROWS", probe_rows)
    monkeypatch.setattr(search, "INDEX_MATCHES", index_matches)
    base = utcnow() - timedelta(days=30)
    wanted = []
    for i in range(40):
        theme = f"Holiday sale 假日 {i}" if i % 3 else f"其他 {i}"
        task = make_task(request=small_brief(theme_id=theme), theme=theme, created_at=base + timedelta(hours=i))
        if i % 3:
            wanted.append(task.id)
    found, pages = all_pages(client, viewer_token, f"q={term}&limit=7")
    assert found == list(reversed(wanted))
    assert pages == 4  # 26 matches in pages of 7, the last one without a cursor


def test_two_character_chinese_terms_are_found(client, viewer_token, make_task):
    base = utcnow() - timedelta(days=3)
    wanted = [make_task(request=small_brief(theme_id=f"夜景 {i}"), theme=f"夜景 {i}",
                        created_at=base + timedelta(hours=i)).id for i in range(3)]
    keyword_only = make_task(request=small_brief(theme_id="主题", keywords_id=["美食"], user_description_id="无"),
                             theme="主题", created_at=base + timedelta(hours=5))
    make_task(request=small_brief(theme_id="别的"), theme="别的", created_at=base + timedelta(hours=4))
    found, _pages = all_pages(client, viewer_token, "q=夜景")
    assert found == list(reversed(wanted))
    assert [t["task_id"] for t in history(client, viewer_token, "q=美食")["tasks"]] == [keyword_only.id]
    assert history(client, viewer_token, "q=无此")["next_cursor"] is None


def test_history_page_says_no_match_without_an_older_tasks_button(client, make_user, make_task):
    make_user("reader", "viewer")
    client.post("/login", data={"username": "reader", "password": "password123"})
    for i in range(25):
        make_task(created_at=utcnow() - timedelta(hours=i))
    body = client.get("/history?q=没有这个主题").get_data(as_text=True)
    assert "No task matches these filters." in body and "Older tasks" not in body


def test_short_terms_are_read_from_the_index_when_rare(client, viewer_token, monkeypatch):
    # A probe of one row never fills a page: every answer below comes from the short-term index.
    monkeypatch.setattr(search, "PROBE_ROWS", 1)
    now = utcnow()
    for i in range(12):  # fixed ids: a random one could hold the two-letter terms below
        insert_raw(f"video_1700000100_filler{i:02d}", f"主题 {i}", "a description", [], now - timedelta(hours=i))
    insert_raw("video_1700000000_rawsqlqz", "Batch import", "from an archive", ["旧档"], now - timedelta(days=700))
    insert_raw("video_1700000001_rawsql02", "其他 import", "夜景 at night", [], now - timedelta(days=600))
    by_id_tail = history(client, viewer_token, "q=QZ")  # the last two characters of the indexed text
    assert [t["task_id"] for t in by_id_tail["tasks"]] == ["video_1700000000_rawsqlqz"]
    assert [t["task_id"] for t in history(client, viewer_token, "q=旧档")["tasks"]] == ["video_1700000000_rawsqlqz"]
    assert [t["task_id"] for t in history(client, viewer_token, "q=夜")["tasks"]] == ["video_1700000001_rawsql02"]
    for term in ("qy", "无此", "ж"):
        page = history(client, viewer_token, f"q={term}")
        assert page["tasks"] == [] and page["next_cursor"] is None, term
