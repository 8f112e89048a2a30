"""clip proxies: the state of a heavy clip's light copy for renders

A clip larger than 1920x1080, faster than 30 frames per second or in HDR gets a proxy (H.264,
SDR, at most 1920x1080 and 30 fps) made by a worker after the upload; `proxy` is its state
(NULL: none needed; wanted, ready, failed), `proxy_tries` the attempts so far, `proxy_at` when it
was last asked for. The index serves the reconciler's look for lost requests.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 01:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('assets') as batch:
        batch.add_column(sa.Column('proxy', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('proxy_tries', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('proxy_at', sa.DateTime(), nullable=True))
    op.create_index('ix_assets_proxy_at', 'assets', ['proxy', 'proxy_at'], unique=False)


def downgrade():
    op.drop_index('ix_assets_proxy_at', table_name='assets')
    with op.batch_alter_table('assets') as batch:
        batch.drop_column('proxy_at')
        batch.drop_column('proxy_tries')
        batch.drop_column('proxy')
