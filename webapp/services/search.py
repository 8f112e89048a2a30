"""Text search over every task's theme, description, keywords and id.

The database keeps the index (migration 0007): on SQLite an FTS5 table with the trigram tokenizer,
filled by triggers; on PostgreSQL a pg_trgm GIN index on the search text expression. Both find a
substring of 3 or more characters anywhere in history, in any script (no word segmenter needed for
Chinese), case-insensitively for ASCII.

A trigram index cannot look up shorter terms (two-character Chinese words are common). Those are
matched with LIKE over the newest SHORT_SCAN_ROWS tasks from the page's cursor on; when that window
holds fewer matches than a page, the page ends with a cursor to search the next older window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import literal_column, or_, select, text

from webapp.extensions import db
from webapp.models import RenderTask

#: The trigram tokenizers index substrings of 3 characters; shorter terms are scanned.
MIN_INDEXED_CHARS = 3
#: Tasks a short term scans per page.
SHORT_SCAN_ROWS = 50_000
#: Fewer matches than this: the page is read from the matches (sorted in memory); more: from the
#: newest task down, keeping matches, which meets a page of them quickly.
RARE_MATCHES = 5_000

# The search text, as migration 0007 indexes it.
PG_BODY = ("(coalesce(theme, '') || ' ' || coalesce(description, '') || ' ' || "
           "coalesce(((request)::jsonb -> 'keywords_id')::text, '') || ' ' || id)")
SQLITE_KEYWORDS = "(SELECT group_concat(value, ' ') FROM json_each(render_tasks.request, '$.keywords_id'))"

_SQLITE_MATCHES = text("SELECT rowid FROM task_search WHERE task_search MATCH :q LIMIT :cap")


@dataclass
class TextFilter:
    """What a text term adds to the history query."""

    condition: Any = None
    #: True when nothing can match: the page is empty and has no cursor.
    empty: bool = False
    #: Short terms: created_at where this page's scan window starts (None: the window reaches the
    #: oldest task).
    window_start: datetime | None = None


def like_pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_phrase(term: str) -> str:
    """The term as one FTS5 phrase: with the trigram tokenizer, a substring match."""
    return '"' + term.replace('"', '""') + '"'


def text_filter(term: str, cursor_at: datetime | None, since: datetime | None,
                until: datetime | None) -> TextFilter:
    """The condition that keeps tasks whose search text contains `term`."""
    postgres = db.engine.dialect.name == "postgresql"
    if len(term) < MIN_INDEXED_CHARS:
        return _short_term(term, postgres, cursor_at, since, until)
    if postgres:
        return TextFilter(literal_column(PG_BODY).ilike(like_pattern(term), escape="\\"))
    phrase = fts_phrase(term)
    rowids = list(db.session.scalars(_SQLITE_MATCHES, {"q": phrase, "cap": RARE_MATCHES}))
    if not rowids:
        return TextFilter(empty=True)
    if len(rowids) < RARE_MATCHES:
        # Few matches: look them up by rowid and sort them.
        return TextFilter(text("render_tasks.rowid IN (SELECT value FROM json_each(:search_rowids))")
                          .bindparams(search_rowids=json.dumps(rowids)))
    # Many: walk the newest-first index and keep the rows in the (materialised) match set.
    return TextFilter(text("render_tasks.rowid IN (SELECT rowid FROM task_search WHERE task_search MATCH :search_q)")
                      .bindparams(search_q=phrase))


def _short_term(term: str, postgres: bool, cursor_at: datetime | None, since: datetime | None,
                until: datetime | None) -> TextFilter:
    pattern = like_pattern(term)
    if postgres:
        condition = literal_column(PG_BODY).ilike(pattern, escape="\\")
    else:
        condition = or_(RenderTask.theme.like(pattern, escape="\\"),
                        RenderTask.description.like(pattern, escape="\\"),
                        RenderTask.id.like(pattern, escape="\\"),
                        literal_column(SQLITE_KEYWORDS).like(pattern, escape="\\"))
    stmt = select(RenderTask.created_at)
    if cursor_at is not None:
        stmt = stmt.where(RenderTask.created_at <= cursor_at)
    if until is not None:
        stmt = stmt.where(RenderTask.created_at < until)
    start = db.session.scalar(stmt.order_by(RenderTask.created_at.desc()).offset(SHORT_SCAN_ROWS).limit(1))
    if start is not None and since is not None and start < since:
        start = None
    if start is not None:
        condition = condition & (RenderTask.created_at >= start)
    return TextFilter(condition, window_start=start)
