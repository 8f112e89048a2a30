"""users.session_epoch (a change of password, role or active flag ends other sessions); an index
for the per-submitter cap on active tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_render_tasks_submitter_status', 'render_tasks', ['submitted_by', 'status'], unique=False)


def downgrade():
    op.drop_index('ix_render_tasks_submitter_status', table_name='render_tasks')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_epoch')
