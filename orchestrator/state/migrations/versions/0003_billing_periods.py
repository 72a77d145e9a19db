"""billing_periods: when each replica was billed and at which price (price changes apply from the apply)

Revision ID: 0003_billing_periods
Revises: 0002_metering
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_billing_periods"
down_revision = "0002_metering"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_periods",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("replica_id", sa.String(128), nullable=False, index=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("usd_per_hour", sa.Float, nullable=False),
        sa.Column("list_usd_per_hour", sa.Float, nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=False),
    )
    # Existing replicas: one period over their recorded life at their recorded price. A launch that
    # failed before anything existed (no handle) was never billed.
    op.execute(
        'INSERT INTO billing_periods (replica_id, start, "end", usd_per_hour, list_usd_per_hour, plan_id) '
        "SELECT id, created_at, CASE WHEN status = 'failed' AND handle_id IS NULL THEN created_at "
        "ELSE terminated_at END, usd_per_hour, COALESCE(list_usd_per_hour, usd_per_hour), plan_id FROM replicas"
    )


def downgrade() -> None:
    op.drop_table("billing_periods")
