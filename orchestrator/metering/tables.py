"""The metering tables (created by Alembic revision 0002_metering; see state/migrations/versions).

Storage design: the scraper keeps raw samples only for a retention window (``metric_samples``) and
rolls every interval between consecutive good samples into one row per replica and UTC hour
(``usage_hourly``). A month of 200 replicas is then 144k rows, and a report is a few GROUP BYs.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, String, Table, Text

from orchestrator.metering.scrape import COUNTERS, GAUGES
from orchestrator.state.db import Base

metadata = Base.metadata


def _floats(names: tuple[str, ...], suffix: str = "") -> list[Column]:
    return [Column(f"{n}{suffix}", Float, nullable=False, default=0.0) for n in names]


METERING_TABLES = ("metric_samples", "meter_cursor", "usage_hourly", "cost_items", "adapter_usage_hourly", "adapter_cursor")


metric_samples = Table(
    "metric_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("replica_id", String(200), nullable=False, index=True),
    Column("ts", Float, nullable=False, index=True),  # unix seconds UTC
    Column("ok", Boolean, nullable=False),
    Column("error", String(500)),
    Column("started_at", Float, nullable=False, default=0.0),
    *_floats(COUNTERS),
    *_floats(GAUGES),
)

# Last good sample per replica: the baseline for the next delta.
meter_cursor = Table(
    "meter_cursor",
    metadata,
    Column("replica_id", String(200), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("started_at", Float, nullable=False, default=0.0),
    *_floats(COUNTERS),
)

usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("replica_id", String(200), primary_key=True),
    Column("hour", Integer, primary_key=True, index=True),  # unix seconds of the UTC hour start
    Column("samples_ok", Integer, nullable=False, default=0),
    Column("samples_err", Integer, nullable=False, default=0),
    Column("resets", Integer, nullable=False, default=0),
    Column("covered_seconds", Float, nullable=False, default=0.0),  # between consecutive good samples
    *_floats(COUNTERS),  # increases over the intervals ending in this hour
    *_floats(GAUGES, "_sum"),  # sum over good samples; divide by samples_ok for the mean
)

# Egress, storage and other non-compute charges, when recorded.
cost_items = Table(
    "cost_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("replica_id", String(200)),
    Column("deployment", String(200)),
    Column("kind", String(40), nullable=False),  # egress | storage | other
    Column("quantity", Float, nullable=False, default=0.0),
    Column("unit", String(40), nullable=False, default="GB"),
    Column("usd", Float, nullable=False),
    Column("description", String(500)),
)

# Tokens of LoRA deployments split by adapter (orchestrator/metering/adapters.py): an estimate, per replica, UTC hour
# and adapter ("(no adapter)": intervals in which vLLM showed no adapter active). Revision 0004_adapter_usage.
ADAPTER_COUNTERS = ("prompt_tokens", "generation_tokens", "requests", "prefill_time_sum", "decode_time_sum")
adapter_usage_hourly = Table(
    "adapter_usage_hourly",
    metadata,
    Column("replica_id", String(200), primary_key=True),
    Column("hour", Integer, primary_key=True, index=True),
    Column("adapter", String(200), primary_key=True),
    Column("intervals", Integer, nullable=False, default=0),  # scrape intervals that gave this adapter tokens
    *_floats(ADAPTER_COUNTERS),
)

# Per replica: vllm:lora_requests_info as last scraped (adapter set -> the time vLLM last showed it, JSON).
adapter_cursor = Table(
    "adapter_cursor",
    metadata,
    Column("replica_id", String(200), primary_key=True),
    Column("seen", Text, nullable=False),
)
