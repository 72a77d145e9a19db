"""metering: raw samples (retention window), cursor, hourly usage, extra cost items

Revision ID: 0002_metering
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_metering"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# Frozen copies of orchestrator.metering.scrape.COUNTERS / GAUGES at this revision.
COUNTERS = (
    "prompt_tokens", "generation_tokens", "requests", "preemptions", "prefix_cache_queries",
    "prefix_cache_hits", "ttft_sum", "ttft_count", "itl_sum", "itl_count", "prefill_time_sum",
    "decode_time_sum", "e2e_sum", "e2e_count",
)
GAUGES = ("running", "waiting", "kv_cache_usage")


def _floats(names: tuple[str, ...], suffix: str = "") -> list[sa.Column]:
    return [sa.Column(f"{n}{suffix}", sa.Float, nullable=False) for n in names]


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("replica_id", sa.String(200), nullable=False, index=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("started_at", sa.Float, nullable=False),
        *_floats(COUNTERS),
        *_floats(GAUGES),
    )
    op.create_table(
        "meter_cursor",
        sa.Column("replica_id", sa.String(200), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        *_floats(COUNTERS),
    )
    op.create_table(
        "usage_hourly",
        sa.Column("replica_id", sa.String(200), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True, index=True),
        sa.Column("samples_ok", sa.Integer, nullable=False),
        sa.Column("samples_err", sa.Integer, nullable=False),
        sa.Column("resets", sa.Integer, nullable=False),
        sa.Column("covered_seconds", sa.Float, nullable=False),
        *_floats(COUNTERS),
        *_floats(GAUGES, "_sum"),
    )
    op.create_table(
        "cost_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("replica_id", sa.String(200)),
        sa.Column("deployment", sa.String(200)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("usd", sa.Float, nullable=False),
        sa.Column("description", sa.String(500)),
    )


def downgrade() -> None:
    for name in ("cost_items", "usage_hourly", "meter_cursor", "metric_samples"):
        op.drop_table(name)
