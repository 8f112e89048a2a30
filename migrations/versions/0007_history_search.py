"""history search over all tasks; index for the live board's change stamp

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-02 00:45:00

"""
from alembic import op

revision = '0007'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_render_tasks_updated', 'render_tasks', ['updated_at'], unique=False)


def downgrade():
    op.drop_index('ix_render_tasks_updated', table_name='render_tasks')
