"""Tables of the state database. The metering engineer reads ``replicas`` (uptime, price): keep its names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.priced import PricedReplica
from orchestrator.state.db import Base

REPLICA_STATUSES = ("creating", "running", "failed", "terminating", "terminated")
JOURNAL_ACTIONS = ("launch", "terminate", "adopt", "fallback")
JOURNAL_STATUSES = ("intent", "done", "failed")


class Replica(Base):
    """One replica orch created (or adopted). ``id`` is the replica label, stable across applies; the columns from
    ``provider`` to ``list_usd_per_hour`` are an ``orchestrator.priced.PricedReplica``."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    deployment: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str] = mapped_column(String(256))
    provider: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(128))
    instance_type: Mapped[str] = mapped_column(String(128))
    gpu: Mapped[str] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer)
    market: Mapped[str] = mapped_column(String(16))
    usd_per_hour: Mapped[float] = mapped_column(Float)  # effective, per replica
    list_usd_per_hour: Mapped[float | None] = mapped_column(Float, nullable=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(32))
    handle_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # REPLICA_STATUSES
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    terminated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # never secrets

    @property
    def priced(self) -> PricedReplica:
        """The row's columns of the priced-replica record (written from it with ``PricedReplica.columns()``)."""
        return PricedReplica.of(self)


class JournalEntry(Base):
    """Written (and committed) before every external call, then marked done or failed."""

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(16))  # JOURNAL_ACTIONS
    replica_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # JOURNAL_STATUSES
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class Lock(Base):
    """At most one apply/destroy per project: the primary key makes the second insert fail."""

    __tablename__ = "locks"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))  # host:pid
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PlanRecord(Base):
    """Every plan apply carried out, with the provider settings it used (so status/destroy work without FILE)."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    providers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # spec's providers: section



class BillingPeriod(Base):
    """A stretch of time a replica was billed at one price: [start, end), end NULL while it runs.

    Launch opens one, terminate closes it, and an apply that changes the price closes the old one and
    opens the next, so each hour is priced at the rate in force then. A replica id relaunched later (the
    id is stable) gets a new period, so its earlier life stays billed.
    """

    __tablename__ = "billing_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    replica_id: Mapped[str] = mapped_column(String(128), index=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    usd_per_hour: Mapped[float] = mapped_column(Float)  # effective, per replica
    list_usd_per_hour: Mapped[float] = mapped_column(Float)
    plan_id: Mapped[str] = mapped_column(String(64))
