"""webhook endpoints and deliveries (outbox), task callbacks, batches, alert state

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:45:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('url', sa.String(2000), nullable=False),
        sa.Column('description', sa.String(500), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('secret', sa.String(200), nullable=False),
        sa.Column('previous_secret', sa.String(200), nullable=True),
        sa.Column('previous_secret_until', sa.DateTime(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', sa.String(255), nullable=True),
        sa.Column('failing_since', sa.DateTime(), nullable=True),
        sa.Column('created_by', sa.String(120), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('endpoint_id', sa.String(40),
                  sa.ForeignKey('webhook_endpoints.id', ondelete='CASCADE'), nullable=False),
        sa.Column('url', sa.String(2000), nullable=False),
        sa.Column('event', sa.String(32), nullable=False),
        sa.Column('task_id', sa.String(64), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('dispatched_at', sa.DateTime(), nullable=True),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('response_code', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=True),
        sa.Column('last_error', sa.String(500), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries', ['endpoint_id', 'created_at'])
    op.create_index('ix_webhook_deliveries_task', 'webhook_deliveries', ['task_id'])
    op.create_table(
        'task_callbacks',
        sa.Column('task_id', sa.String(64), primary_key=True),
        sa.Column('endpoint_id', sa.String(40),
                  sa.ForeignKey('webhook_endpoints.id', ondelete='CASCADE'), nullable=False),
        sa.Column('url', sa.String(2000), nullable=False),
    )
    op.create_table(
        'task_batches',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('mode', sa.String(16), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('submitted_by', sa.String(80), nullable=True),
        sa.Column('idempotency_key', sa.String(128), nullable=True, unique=True),
        sa.Column('request_hash', sa.String(64), nullable=True),
        sa.Column('response', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'batch_items',
        sa.Column('batch_id', sa.String(40), sa.ForeignKey('task_batches.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('position', sa.Integer(), primary_key=True),
        sa.Column('task_id', sa.String(64), nullable=False),
    )
    op.create_table(
        'alert_states',
        sa.Column('key', sa.String(120), primary_key=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.Column('fired_at', sa.DateTime(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.Column('notified_at', sa.DateTime(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table('alert_states')
    op.drop_table('batch_items')
    op.drop_table('task_batches')
    op.drop_table('task_callbacks')
    op.drop_index('ix_webhook_deliveries_task', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
