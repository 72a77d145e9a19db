"""adapter_usage_hourly, adapter_cursor: tokens of LoRA deployments split by adapter (an estimate)

Revision ID: 0004_adapter_usage
Revises: 0003_billing_periods
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_adapter_usage"
down_revision = "0003_billing_periods"
branch_labels = None
depends_on = None

# Frozen copy of orchestrator.metering.tables.ADAPTER_COUNTERS at this revision.
COUNTERS = ("prompt_tokens", "generation_tokens", "requests", "prefill_time_sum", "decode_time_sum")


def upgrade() -> None:
    op.create_table(
        "adapter_usage_hourly",
        sa.Column("replica_id", sa.String(200), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True, index=True),
        sa.Column("adapter", sa.String(200), primary_key=True),
        sa.Column("intervals", sa.Integer, nullable=False),
        *[sa.Column(c, sa.Float, nullable=False) for c in COUNTERS],
    )
    op.create_table(
        "adapter_cursor",
        sa.Column("replica_id", sa.String(200), primary_key=True),
        sa.Column("seen", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("adapter_cursor")
    op.drop_table("adapter_usage_hourly")
