"""render_stages: one row per stage of each task attempt

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'render_stages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('task_id', sa.String(length=64), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('stage_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('queue', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('weight', sa.Float(), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=True),
        sa.Column('runner', sa.String(length=128), nullable=True),
        sa.Column('runner_host', sa.String(length=128), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('message', sa.String(length=255), nullable=False),
        sa.Column('input_hash', sa.String(length=64), nullable=True),
        sa.Column('artifacts', sa.JSON(), nullable=True),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('reused', sa.Boolean(), nullable=False),
        sa.Column('published_at', sa.DateTime(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['task_id'], ['render_tasks.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'attempt', 'stage_id', name='uq_render_stages_attempt_stage'),
    )
    op.create_index('ix_render_stages_status', 'render_stages', ['status', 'published_at'], unique=False)


def downgrade():
    op.drop_index('ix_render_stages_status', table_name='render_stages')
    op.drop_table('render_stages')
