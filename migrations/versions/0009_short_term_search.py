"""search terms shorter than a trigram: a vocabulary of the SQLite index, a gram index on PostgreSQL

Trigram indexes cannot look up terms of 1 or 2 characters, and two-character Chinese words are
common in briefs. SQLite: an fts5vocab view of migration 0007's trigram index lists the trigrams
that begin with a short term; their matches are the term's. PostgreSQL: a GIN index on each
task's distinct one- and two-character grams (lower-cased, as ILIKE compares), kept in step by the
index itself and built here for existing rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:20:00

"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# webapp/services/search.py queries these (it spells the indexed expression the same way).
# Linear in the text: the pairs at even offsets, then at odd ones, split out by a regular expression
# (GIN sorts a row's grams and drops repeats itself).
PG_FUNCTION = r"""CREATE OR REPLACE FUNCTION task_search_grams(body text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT array_remove(string_to_array(folded, NULL)
                            || string_to_array(regexp_replace(folded, '(..)', E'\\1\x1f', 'g'), E'\x1f')
                            || string_to_array(regexp_replace(substr(folded, 2), '(..)', E'\\1\x1f', 'g'), E'\x1f'),
                            '')
        FROM (SELECT replace(lower(body), E'\x1f', ' ') AS folded) AS lowered
    $$"""
PG_INDEX = 'CREATE INDEX ix_render_tasks_search_grams ON render_tasks USING gin (task_search_grams(search_text))'
SQLITE_VOCAB = "CREATE VIRTUAL TABLE task_search_terms USING fts5vocab(task_search, row)"


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_FUNCTION)
        op.execute(PG_INDEX)
    else:
        op.execute(SQLITE_VOCAB)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP INDEX IF EXISTS ix_render_tasks_search_grams')
        op.execute('DROP FUNCTION IF EXISTS task_search_grams(text)')
    else:
        op.execute('DROP TABLE IF EXISTS task_search_terms')
