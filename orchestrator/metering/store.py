"""Metering storage: record samples, bulk-ingest, and the queries reports run.

Tables are in orchestrator/metering/tables.py. The ``replicas`` table belongs to the state package;
it is reflected here, so this module depends only on its column names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, delete, func, inspect, select
from sqlalchemy.engine import Connection

from orchestrator.metering import tables as T
from orchestrator.metering.adapters import ingest_adapters
from orchestrator.metering.rollup import Cursor, rollup
from orchestrator.metering.scrape import COUNTERS, GAUGES, Sample
from orchestrator.priced import PricedReplica

RAW_RETENTION_S = 2 * 86400  # raw samples kept this long; hourly usage is kept forever


# --------------------------------------------------------------------------- opening state
def open_engine(state: str | os.PathLike[str] | None = None) -> Engine:
    """The state database's engine (``--state`` is a SQLite path or a URL; None: the default).

    orchestrator.state.open_state runs the Alembic revisions, 0002_metering included.
    """
    from orchestrator.state.db import open_state

    engine = open_state(None if state is None else str(state)).engine
    ensure_tables(engine)
    return engine


def ensure_tables(engine: Engine) -> None:
    """Create the metering tables if missing (a bare engine in tests; migrated databases have them)."""
    existing = set(inspect(engine).get_table_names())
    missing = [T.metadata.tables[n] for n in T.METERING_TABLES if n not in existing]
    if missing:
        T.metadata.create_all(engine, tables=missing)


# --------------------------------------------------------------------------- replicas (state's table)
@dataclass(frozen=True)
class Period:
    """[start, end) in unix seconds (end None: still billed) at one price."""

    start: float
    end: float | None
    usd_per_hour: float
    list_usd_per_hour: float


@dataclass(frozen=True, kw_only=True)
class Replica(PricedReplica):
    """A replica as state recorded it: where, at which price (the priced record), and when it was billed."""

    id: str
    project: str
    deployment: str
    team: str | None
    model: str
    plan_id: str | None
    endpoint: str | None
    status: str
    start: float | None  # unix s: when billing started (created_at, else ready_at)
    end: float | None  # unix s: terminated_at, None while it runs
    quantization: str = "bf16"
    details: dict[str, Any] = field(default_factory=dict)
    periods: list[Period] = field(default_factory=list)  # from billing_periods; empty: start..end at usd_per_hour

    def billing(self) -> list[Period]:
        """When the replica was billed, and at which prices (the row's life at its price if none recorded)."""
        if self.periods:
            return self.periods
        if self.start is None:
            return []
        return [Period(self.start, self.end, self.usd_per_hour, self.list_usd_per_hour)]


def to_epoch(value: Any) -> float | None:
    """DateTime (naive means UTC), ISO string or number -> unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def replicas_table(engine: Engine) -> Table | None:
    """The state package's replicas table, if this database has it."""
    if "replicas" not in inspect(engine).get_table_names():
        return None
    from orchestrator.state.models import Replica as ReplicaRecord

    return ReplicaRecord.__table__  # type: ignore[return-value]


def _replica(row: Any) -> Replica:
    m = row._mapping
    return Replica(
        **PricedReplica.of(m).columns(),
        id=str(m["id"]),
        project=m.get("project") or "",
        deployment=m.get("deployment") or "",
        team=m.get("team"),
        model=m.get("model") or "",
        plan_id=m.get("plan_id"),
        endpoint=m.get("endpoint"),
        status=m.get("status") or "",
        start=to_epoch(m.get("created_at")) or to_epoch(m.get("ready_at")),
        end=to_epoch(m.get("terminated_at")),
        quantization=(m.get("details") or {}).get("quantization") or m.get("quantization") or "bf16",
        details=dict(m.get("details") or {}),
    )


def _periods(conn: Connection) -> dict[str, list[Period]]:
    if "billing_periods" not in inspect(conn).get_table_names():
        return {}
    from orchestrator.state.models import BillingPeriod

    t = BillingPeriod.__table__
    out: dict[str, list[Period]] = {}
    for r in conn.execute(select(t).order_by(t.c.replica_id, t.c.start)):
        start = to_epoch(r.start)
        if start is not None:
            out.setdefault(r.replica_id, []).append(Period(start, to_epoch(r.end), r.usd_per_hour, r.list_usd_per_hour))
    return out


def replicas(engine: Engine, start: float | None = None, end: float | None = None) -> list[Replica]:
    """Replicas alive at some point of [start, end) (all replicas when no window is given)."""
    table = replicas_table(engine)
    if table is None:
        return []
    with engine.connect() as conn:
        rows = [_replica(r) for r in conn.execute(select(table))]
        periods = _periods(conn)
    for r in rows:
        r.periods.extend(periods.get(r.id, []))
    if start is None or end is None:
        return rows
    return [r for r in rows if any(p.start < end and (p.end is None or p.end > start) for p in r.billing())]


def running_replicas(engine: Engine) -> list[Replica]:
    """vLLM replicas to scrape: not terminated, with an endpoint (a gateway serves no vLLM metrics: its cost is
    billed to its deployment like a replica's, its tokens are its replicas')."""
    return [r for r in replicas(engine) if r.end is None and r.endpoint and r.status not in ("terminated", "stopped")
            and r.details.get("role") != "gateway"]


# --------------------------------------------------------------------------- writing
def _cursor(conn: Connection, replica_id: str) -> Cursor | None:
    row = conn.execute(select(T.meter_cursor).where(T.meter_cursor.c.replica_id == replica_id)).first()
    if row is None:
        return None
    m = row._mapping
    return Cursor(float(m["ts"]), np.array([m[c] for c in COUNTERS], dtype=np.float64), float(m["started_at"] or 0.0))


def _save_cursor(conn: Connection, replica_id: str, cursor: Cursor) -> None:
    values = {"replica_id": replica_id, "ts": cursor.ts, "started_at": cursor.started_at, **dict(zip(COUNTERS, cursor.counters.tolist()))}
    updated = conn.execute(
        T.meter_cursor.update().where(T.meter_cursor.c.replica_id == replica_id).values(**values)
    ).rowcount
    if not updated:
        conn.execute(T.meter_cursor.insert().values(**values))


def _upsert_hourly(conn: Connection, rows: list[dict]) -> None:
    """Add rows into usage_hourly, summing into an existing (replica, hour) bucket."""
    if not rows:
        return
    dialect = conn.engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # portable, slower path
        for row in rows:
            key = (T.usage_hourly.c.replica_id == row["replica_id"]) & (T.usage_hourly.c.hour == row["hour"])
            adds = {k: T.usage_hourly.c[k] + v for k, v in row.items() if k not in ("replica_id", "hour")}
            if not conn.execute(T.usage_hourly.update().where(key).values(**adds)).rowcount:
                conn.execute(T.usage_hourly.insert().values(**row))
        return
    stmt = insert(T.usage_hourly)
    summed = {c.name: c + stmt.excluded[c.name] for c in T.usage_hourly.c if c.name not in ("replica_id", "hour")}
    conn.execute(stmt.on_conflict_do_update(index_elements=["replica_id", "hour"], set_=summed), rows)


def ingest(
    conn: Connection,
    replica_id: str,
    ts: np.ndarray,
    ok: np.ndarray,
    counters: np.ndarray,
    gauges: np.ndarray,
    started: np.ndarray | None = None,
) -> int:
    """Roll a replica's samples into usage_hourly. Returns the number of hourly rows written."""
    hourly, cursor = rollup(ts, ok, counters, gauges, _cursor(conn, replica_id), started)
    rows = hourly.rows(replica_id)
    _upsert_hourly(conn, rows)
    if cursor is not None:
        _save_cursor(conn, replica_id, cursor)
    return len(rows)


def record_samples(engine: Engine, samples: Sequence[Sample], retention_s: float = RAW_RETENTION_S) -> None:
    """Store scraped samples: raw rows (pruned after retention_s) and their hourly rollup."""
    if not samples:
        return
    with engine.begin() as conn:
        conn.execute(
            T.metric_samples.insert(),
            [
                {"replica_id": s.replica_id, "ts": s.ts, "ok": s.ok, "error": s.error, "started_at": s.started_at,
                 **s.counters, **s.gauges}
                for s in samples
            ],
        )
        by_replica: dict[str, list[Sample]] = {}
        for s in samples:
            by_replica.setdefault(s.replica_id, []).append(s)
        for rid, ss in by_replica.items():
            ingest_adapters(conn, rid, ss)  # before ingest moves the meter cursor: it splits the same intervals
            ingest(
                conn,
                rid,
                np.array([s.ts for s in ss]),
                np.array([s.ok for s in ss]),
                np.array([[s.counters[c] for c in COUNTERS] for s in ss]),
                np.array([[s.gauges[g] for g in GAUGES] for s in ss]),
                np.array([s.started_at for s in ss]),
            )
        cutoff = max(s.ts for s in samples) - retention_s
        conn.execute(delete(T.metric_samples).where(T.metric_samples.c.ts < cutoff))


def add_cost_item(engine: Engine, item: CostItem) -> None:
    """Record an egress/storage/other charge (e.g. from a provider bill or a data-transfer meter)."""
    with engine.begin() as conn:
        conn.execute(T.cost_items.insert().values(**asdict(item)))


# --------------------------------------------------------------------------- reading
@dataclass
class UsageDay:
    """Usage of one replica on one UTC day (sums of hourly buckets)."""

    replica_id: str
    day: int  # unix seconds of the UTC day start
    samples_ok: int
    samples_err: int
    resets: int
    covered_seconds: float
    counters: dict[str, float]
    gauge_means: dict[str, float]


def usage_by_replica_day(engine: Engine, start: float, end: float) -> list[UsageDay]:
    """One GROUP BY over usage_hourly for the window [start, end) (hour granularity)."""
    h = T.usage_hourly.c
    day = (h.hour - h.hour % 86400).label("day")
    cols = [
        h.replica_id,
        day,
        func.sum(h.samples_ok),
        func.sum(h.samples_err),
        func.sum(h.resets),
        func.sum(h.covered_seconds),
        *[func.sum(h[c]) for c in COUNTERS],
        *[func.sum(h[f"{g}_sum"]) for g in GAUGES],
    ]
    q = (
        select(*cols)
        .where(h.hour >= int(start // 3600 * 3600), h.hour < end)
        .group_by(h.replica_id, day)
        .order_by(day, h.replica_id)
    )
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q):
            n_ok = int(r[2] or 0)
            counters = dict(zip(COUNTERS, (float(v or 0.0) for v in r[6 : 6 + len(COUNTERS)])))
            gsums = r[6 + len(COUNTERS) :]
            means = {g: (float(v or 0.0) / n_ok if n_ok else 0.0) for g, v in zip(GAUGES, gsums)}
            out.append(UsageDay(str(r[0]), int(r[1]), n_ok, int(r[3] or 0), int(r[4] or 0), float(r[5] or 0.0), counters, means))
    return out


@dataclass
class CostItem:
    ts: float
    replica_id: str | None
    deployment: str | None
    kind: str
    quantity: float
    unit: str
    usd: float
    description: str | None


def cost_items_between(engine: Engine, start: float, end: float) -> list[CostItem]:
    c = T.cost_items.c
    with engine.connect() as conn:
        rows = conn.execute(select(T.cost_items).where(c.ts >= start, c.ts < end)).all()
    return [
        CostItem(r.ts, r.replica_id, r.deployment, r.kind, r.quantity, r.unit, r.usd, r.description) for r in rows
    ]


def recent_samples(engine: Engine, replica_id: str, limit: int = 10) -> list[dict]:
    """Newest raw samples of a replica (for status/debugging)."""
    c = T.metric_samples.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(T.metric_samples).where(c.replica_id == replica_id).order_by(c.ts.desc()).limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]
