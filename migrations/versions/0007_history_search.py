"""history search index; index on updated_at for the live board

Search over all tasks: SQLite FTS5 with the trigram tokenizer, PostgreSQL pg_trgm.

The search text of a task is its theme, description, keywords and id. The database keeps the
index in step by itself (SQLite: triggers into an FTS5 table; PostgreSQL: a generated column with
a pg_trgm GIN index), so rows written by any path are found. Existing rows are indexed here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:45:00

"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# webapp/services/search.py reads what these build (a migration keeps its own frozen copy).
SQLITE_BODY = ("coalesce({t}.theme, '') || ' ' || coalesce({t}.description, '') || ' ' || "
               "coalesce((SELECT group_concat(value, ' ') FROM json_each({t}.request, '$.keywords_id')), '') "
               "|| ' ' || {t}.id")
PG_BODY = ("(coalesce(theme, '') || ' ' || coalesce(description, '') || ' ' || "
           "coalesce(((request)::jsonb -> 'keywords_id')::text, '') || ' ' || id)")


PG_INDEX = 'CREATE INDEX ix_render_tasks_search ON render_tasks USING gin (search_text gin_trgm_ops)'
SQLITE_FILL = ("INSERT INTO task_search(rowid, body) SELECT rowid, "
               f"{SQLITE_BODY.format(t='render_tasks')} FROM render_tasks")
SQLITE_TRIGGERS = {
    'task_search_insert': f"""CREATE TRIGGER task_search_insert AFTER INSERT ON render_tasks BEGIN
        INSERT INTO task_search(rowid, body) VALUES (new.rowid, {SQLITE_BODY.format(t='new')});
    END""",
    'task_search_delete': f"""CREATE TRIGGER task_search_delete AFTER DELETE ON render_tasks BEGIN
        INSERT INTO task_search(task_search, rowid, body) VALUES ('delete', old.rowid, {SQLITE_BODY.format(t='old')});
    END""",
    'task_search_update': f"""CREATE TRIGGER task_search_update AFTER UPDATE OF id, theme, description, request
        ON render_tasks BEGIN
        INSERT INTO task_search(task_search, rowid, body) VALUES ('delete', old.rowid, {SQLITE_BODY.format(t='old')});
        INSERT INTO task_search(rowid, body) VALUES (new.rowid, {SQLITE_BODY.format(t='new')});
    END""",
}


def upgrade():
    op.create_index('ix_render_tasks_updated', 'render_tasks', ['updated_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        # Stored, so the index's recheck and short-term scans read text instead of casting JSON.
        op.execute(f'ALTER TABLE render_tasks ADD COLUMN search_text text GENERATED ALWAYS AS {PG_BODY} STORED')
        op.execute(PG_INDEX)
        return
    # Contentless: the index only; rows are read from render_tasks by rowid.
    op.execute("CREATE VIRTUAL TABLE task_search USING fts5(body, tokenize='trigram', content='')")
    op.execute(SQLITE_FILL)
    for statement in SQLITE_TRIGGERS.values():
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP INDEX IF EXISTS ix_render_tasks_search')
        op.execute('ALTER TABLE render_tasks DROP COLUMN IF EXISTS search_text')
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
        op.execute('DROP TABLE IF EXISTS task_search')
    op.drop_index('ix_render_tasks_updated', table_name='render_tasks')
