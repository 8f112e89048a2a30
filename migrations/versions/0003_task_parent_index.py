"""index on render_tasks.parent_id ("submit again" links)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 14:45:00

"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_render_tasks_parent', 'render_tasks', ['parent_id'], unique=False)


def downgrade():
    op.drop_index('ix_render_tasks_parent', table_name='render_tasks')
