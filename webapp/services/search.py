"""Text search over every task's theme, description, keywords and id.

The database keeps the index (migration 0007): on SQLite an FTS5 table with the trigram tokenizer,
filled by triggers; on PostgreSQL a pg_trgm GIN index on the search text expression. Both find a
substring of 3 or more characters anywhere in history, in any script (no word segmenter needed for
Chinese), case-insensitively for ASCII. A term with few matches is read from the index and sorted;
one with many walks the newest-first index and stops at a full page.

A trigram index cannot look up shorter terms (two-character Chinese words are common). Those are
matched with LIKE over the newest SHORT_SCAN_ROWS tasks from the page's cursor on; when that window
holds fewer matches than a page, the page ends with a cursor to search the next older window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, or_, select, text

from webapp.extensions import db
from webapp.models import RenderTask

#: The trigram tokenizers index substrings of 3 characters; shorter terms are scanned.
MIN_INDEXED_CHARS = 3
#: Tasks a short term scans per page.
SHORT_SCAN_ROWS = 20_000
#: Fewer matches than this: the page is read from the matches (sorted in memory); more: from the
#: newest task down, keeping matches, which meets a page of them quickly.
RARE_MATCHES = 5_000

#: PostgreSQL: the generated column of migration 0007 (theme, description, keywords, id).
PG_TEXT = "render_tasks.search_text"
#: The keywords as JSON text (non-ASCII may be stored \u-escaped); cheaper per row than json_each.
SQLITE_KEYWORDS = "json_extract(render_tasks.request, '$.keywords_id')"

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
    #: Many matches: walk the newest-first index rather than read and sort every match.
    walk: bool = False


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
        return _postgres_term(term)
    phrase = fts_phrase(term)
    rowids = list(db.session.scalars(_SQLITE_MATCHES, {"q": phrase, "cap": RARE_MATCHES}))
    if not rowids:
        return TextFilter(empty=True)
    if len(rowids) < RARE_MATCHES:
        # Few matches: look them up by rowid and sort them.
        return TextFilter(text("render_tasks.rowid IN (SELECT value FROM json_each(:search_rowids))")
                          .bindparams(search_rowids=json.dumps(rowids)))
    # Many: walk the newest-first index and keep the rows in the (materialised) match set. The
    # unary + keeps SQLite from reading the matches by rowid and sorting them all.
    return TextFilter(text("+render_tasks.rowid IN (SELECT rowid FROM task_search WHERE task_search MATCH :search_q)")
                      .bindparams(search_q=phrase))


def _postgres_term(term: str) -> TextFilter:
    matches = literal_column(PG_TEXT).ilike(like_pattern(term), escape="\\")
    found = db.session.scalar(select(func.count()).select_from(
        select(literal_column("1")).select_from(RenderTask).where(matches).limit(RARE_MATCHES).subquery()))
    if not found:
        return TextFilter(empty=True)
    # Few: the GIN index finds them and they are sorted. Many: the newest-first walk (see
    # `newest_first_walk`), since the planner's guess for a substring is far too rare.
    return TextFilter(matches, walk=found >= RARE_MATCHES)


@contextmanager
def newest_first_walk(found: TextFilter) -> Iterator[None]:
    """Run the page's query walking the newest-first B-tree (PostgreSQL, a term with many matches).

    Without bitmap and sequential scans the planner reads an index in order and stops at the
    page's LIMIT (JIT off: the disabled plans' inflated costs would start it for nothing). The
    settings are local to the transaction and restored after the statement.
    """
    if not found.walk or db.engine.dialect.name != "postgresql":
        yield
        return
    settings = ("enable_bitmapscan", "enable_seqscan", "jit")
    for name in settings:
        db.session.execute(text(f"SET LOCAL {name} = off"))
    try:
        yield
    finally:
        for name in settings:
            db.session.execute(text(f"RESET {name}"))


def _short_term(term: str, postgres: bool, cursor_at: datetime | None, since: datetime | None,
                until: datetime | None) -> TextFilter:
    pattern = like_pattern(term)
    if postgres:
        condition = literal_column(PG_TEXT).ilike(pattern, escape="\\")
    else:
        # Column by column (LIKE ignores ASCII case), the keywords as their JSON text, which is
        # cheaper per row than json_each and may hold \u escapes.
        keywords = literal_column(SQLITE_KEYWORDS)
        options = [column.like(pattern, escape="\\")
                   for column in (RenderTask.theme, RenderTask.description, RenderTask.id, keywords)]
        escaped = json.dumps(term)[1:-1]
        if escaped != term:
            options.append(keywords.like(like_pattern(escaped), escape="\\"))
        condition = or_(*options)
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
    # The window is read newest first; on PostgreSQL the GIN index cannot serve 1-2 characters.
    return TextFilter(condition, window_start=start, walk=True)
