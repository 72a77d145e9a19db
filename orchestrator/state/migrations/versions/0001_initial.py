"""initial: replicas, journal, locks, plans

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("region", sa.String(128), nullable=False),
        sa.Column("instance_type", sa.String(128), nullable=False),
        sa.Column("gpu", sa.String(64), nullable=False),
        sa.Column("gpu_count", sa.Integer, nullable=False),
        sa.Column("market", sa.String(16), nullable=False),
        sa.Column("usd_per_hour", sa.Float, nullable=False),
        sa.Column("list_usd_per_hour", sa.Float, nullable=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("group_key", sa.String(32), nullable=False),
        sa.Column("handle_id", sa.String(256), nullable=True),
        sa.Column("endpoint", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
    )
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("replica_id", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_table(
        "locks",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("providers", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    for table in ("plans", "locks", "journal", "replicas"):
        op.drop_table(table)
