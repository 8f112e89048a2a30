"""Text search over every task's theme, description, keywords and id.

The database keeps the indexes (migrations 0007 and 0009). SQLite: an FTS5 table with the trigram
tokenizer, filled by triggers, and a vocabulary view of it. PostgreSQL: a pg_trgm GIN index on the
search text, and a GIN index on the text's one- and two-character grams. Both find a substring
anywhere in history, in any script (no word segmenter needed for Chinese), case-insensitively.

A page is found in one of two ways, whichever is cheap for the term:

- **Probe, newest first.** The newest PROBE_ROWS tasks from the page's cursor are walked along the
  created_at index and each row's text is checked. A common term (a theme, a frequent keyword, a
  two-character word like 春节) fills its page within a few hundred rows, at any cursor depth.
- **Index.** When the probe did not fill the page, the term is rare there: its matches are read
  from the index (at most INDEX_MATCHES of them) and sorted. Terms of 3 or more characters use the
  trigrams; shorter ones use the trigrams that begin with them (SQLite) or the gram index
  (PostgreSQL). A term with no match answers an empty page with no cursor. On SQLite a trigram
  lookup costs less than the probe, so terms of 3 or more characters ask the index first.

A term with more than INDEX_MATCHES matches that did not fill the probe's page walks the whole
created_at index from the cursor, checking each row, until its page is full.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, literal_column, or_, select, text
from sqlalchemy.dialects import postgresql

from webapp.extensions import db
from webapp.models import RenderTask

#: The trigram tokenizers index substrings of 3 characters; shorter terms use the short-term route.
MIN_INDEXED_CHARS = 3
#: Tasks the probe walks, from the page's cursor, before it asks the index.
PROBE_ROWS = 2_000
#: Matches read from an index for one page; more means the whole newest-first walk.
INDEX_MATCHES = 5_000
#: SQLite, short terms: trigrams beginning with the term OR-ed into one query, at most this many.
MAX_SHORT_TRIGRAMS = 1_000

#: PostgreSQL: the generated column of migration 0007 (theme, description, keywords, id).
PG_TEXT = "render_tasks.search_text"
#: PostgreSQL: the gram expression of migration 0009's index (it must be spelled the same).
PG_GRAMS = "task_search_grams(render_tasks.search_text)"
#: The keywords as JSON text (non-ASCII may be stored \u-escaped); cheaper per row than json_each.
SQLITE_KEYWORDS = "json_extract(render_tasks.request, '$.keywords_id')"
#: Characters a task id may hold, folded: the last characters of the indexed text are an id's.
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"

_SQLITE_MATCHES = text("SELECT rowid FROM task_search WHERE task_search MATCH :q LIMIT :cap")
_SQLITE_TRIGRAMS = text("SELECT term FROM task_search_terms WHERE term >= :low AND term < :high LIMIT :cap")

#: Runs the history page's query with extra conditions: (conditions, plan) -> rows, newest first.
PageRunner = Callable[[Sequence[Any], str], list[RenderTask]]


def like_pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_phrase(term: str) -> str:
    """The term as one FTS5 phrase: with the trigram tokenizer, a substring match."""
    return '"' + term.replace('"', '""') + '"'


def text_page(term: str, run_page: PageRunner, limit: int, cursor_at: datetime | None,
              since: datetime | None, until: datetime | None) -> list[RenderTask]:
    """Up to limit + 1 tasks whose search text contains `term`, newest first from the cursor."""
    matches = row_match(term)
    if db.engine.dialect.name == "postgresql" or len(term) < MIN_INDEXED_CHARS:
        start = _probe_start(cursor_at, since, until)
        probe = [matches] if start is None else [matches, RenderTask.created_at >= start]
        rows = run_page(probe, "walk")
        if len(rows) > limit or start is None:
            return rows  # a full page, or the probe saw every task in range
    # SQLite reads up to INDEX_MATCHES trigram matches in a millisecond or two, less than the
    # probe costs: the index comes first there.
    found = index_matches(term)
    if found is None:
        return run_page([matches], "walk")  # many matches: they fill a page soon enough
    if found is False:
        return []
    return run_page([found], "lookup")


def row_match(term: str) -> Any:
    """The condition checked row by row (no index): the task's text contains `term`."""
    pattern = like_pattern(term)
    if db.engine.dialect.name == "postgresql":
        column = literal_column(PG_TEXT)
        if term.lower() == term == term.upper():
            # Nothing to fold (Chinese, digits): LIKE compares bytes, about 3x cheaper than ILIKE.
            return column.like(pattern, escape="\\")
        return column.ilike(pattern, escape="\\")
    # Column by column (LIKE ignores ASCII case). The keywords are read from the request's JSON
    # (non-ASCII may be stored \u-escaped there) only when its raw text holds the term.
    keywords = literal_column(SQLITE_KEYWORDS)
    forms = [pattern]
    escaped = json.dumps(term)[1:-1]
    if escaped != term:
        forms.append(like_pattern(escaped))
    in_request = or_(*(literal_column("render_tasks.request").like(form, escape="\\") for form in forms))
    in_keywords = or_(*(keywords.like(form, escape="\\") for form in forms))
    return or_(*(column.like(pattern, escape="\\") for column in (RenderTask.theme, RenderTask.description,
                                                                   RenderTask.id)),
               and_(in_request, in_keywords))


def _probe_start(cursor_at: datetime | None, since: datetime | None, until: datetime | None) -> datetime | None:
    """created_at of the PROBE_ROWS-th task from the cursor (None: the probe reaches `since` or the oldest)."""
    stmt = select(RenderTask.created_at)
    if cursor_at is not None:
        stmt = stmt.where(RenderTask.created_at <= cursor_at)
    if until is not None:
        stmt = stmt.where(RenderTask.created_at < until)
    start = db.session.scalar(stmt.order_by(RenderTask.created_at.desc()).offset(PROBE_ROWS).limit(1))
    if start is not None and since is not None and start < since:
        return None
    return start


def index_matches(term: str) -> Any:
    """A condition selecting the term's matches read from the index; False when there are none,
    None when there are more than INDEX_MATCHES (or the index cannot tell them apart)."""
    if db.engine.dialect.name == "postgresql":
        return _postgres_matches(term)
    if len(term) >= MIN_INDEXED_CHARS:
        query = fts_phrase(term)
    else:
        trigrams = _sqlite_trigrams(term)
        if trigrams is None:
            return None
        if not trigrams:
            return False
        query = " OR ".join(fts_phrase(t) for t in trigrams)
    rowids = list(db.session.scalars(_SQLITE_MATCHES, {"q": query, "cap": INDEX_MATCHES}))
    if not rowids:
        return False
    if len(rowids) >= INDEX_MATCHES:
        return None
    return text("render_tasks.rowid IN (SELECT value FROM json_each(:search_rowids))").bindparams(
        search_rowids=json.dumps(rowids))


def _sqlite_trigrams(term: str) -> list[str] | None:
    """The indexed trigrams that hold a 1-2 character term (None: too many to OR together).

    Every occurrence of the term is the start of a trigram, except at the end of the text, which
    is the task id: a two-character term of id characters also looks for the trigrams that end
    with it. A single id character is left to the walk (it is in most ids anyway).
    """
    folded = term.lower()  # the trigram tokenizer folds case
    ends_an_id = all(ch in ID_CHARS for ch in folded)
    if ends_an_id and len(folded) == 1:
        return None
    found = list(db.session.scalars(_SQLITE_TRIGRAMS, {"low": folded, "high": folded + "\U0010ffff",
                                                       "cap": MAX_SHORT_TRIGRAMS + 1}))
    if len(found) > MAX_SHORT_TRIGRAMS:
        return None
    if ends_an_id:
        found += [ch + folded for ch in ID_CHARS]
    return found


def _postgres_matches(term: str) -> Any:
    if len(term) >= MIN_INDEXED_CHARS:
        condition = literal_column(PG_TEXT).ilike(like_pattern(term), escape="\\")
    else:
        condition = text(f"{PG_GRAMS} @> ARRAY[lower(:search_gram)]").bindparams(search_gram=term)
    with planned("lookup"):
        ids = list(db.session.scalars(select(RenderTask.id).where(condition).limit(INDEX_MATCHES)))
    if not ids:
        return False
    if len(ids) >= INDEX_MATCHES:
        return None
    # One array parameter: thousands of bound values cost milliseconds to build and parse.
    return RenderTask.id == any_(bindparam("search_ids", ids, type_=postgresql.ARRAY(String)))


#: PostgreSQL planner settings per plan: "walk" reads the newest-first B-tree and stops at the
#: page's LIMIT (the planner's guess for a substring is far too rare, and without this it reads a
#: common term's every match through the GIN index); "lookup" reads a few thousand matches through
#: an index (GIN or primary key) and sorts them, never walking the B-tree past them. JIT off: the
#: disabled plans' inflated costs would start it for nothing.
_PG_PLANS = {
    "walk": ("enable_bitmapscan", "enable_seqscan", "jit"),
    "lookup": ("enable_indexscan", "enable_indexonlyscan", "enable_seqscan", "jit"),
}


_PG_SET = text("SELECT set_config(name, 'off', true) FROM unnest(CAST(:names AS text[])) AS name")
_PG_RESET = text("SELECT set_config(name, reset_val, true) FROM pg_settings WHERE name = ANY(CAST(:names AS text[]))")


@contextmanager
def planned(plan: str) -> Iterator[None]:
    """Run the statements inside with the plan's PostgreSQL settings (nothing on SQLite).

    The settings are local to the transaction and reset after the statements, each way in one
    round trip (on a busy machine every round trip to the server can cost milliseconds).
    """
    names = list(_PG_PLANS.get(plan, ())) if db.engine.dialect.name == "postgresql" else []
    if names:
        db.session.execute(_PG_SET, {"names": names})
    try:
        yield
    finally:
        if names:
            db.session.execute(_PG_RESET, {"names": names})
