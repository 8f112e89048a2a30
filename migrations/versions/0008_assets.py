"""the media library: assets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'assets',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('owner', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('original_name', sa.String(length=255), nullable=False),
        sa.Column('ext', sa.String(length=8), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('duration', sa.Float(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('codec', sa.String(length=32), nullable=True),
        sa.Column('tags_text', sa.String(length=600), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('probe', sa.JSON(), nullable=True),
        sa.Column('has_thumbnail', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_assets_owner_created', 'assets', ['owner', 'created_at', 'id'], unique=False)
    op.create_index('ix_assets_kind_created', 'assets', ['kind', 'created_at', 'id'], unique=False)
    op.create_index('ix_assets_shared', 'assets', ['shared'], unique=False)


def downgrade():
    op.drop_index('ix_assets_shared', table_name='assets')
    op.drop_index('ix_assets_kind_created', table_name='assets')
    op.drop_index('ix_assets_owner_created', table_name='assets')
    op.drop_table('assets')
