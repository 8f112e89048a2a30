"""users.session_epoch: bumped when a password, role or active flag changes, ending other sessions

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 01:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_epoch')
