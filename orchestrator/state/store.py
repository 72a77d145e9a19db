"""Queries and writes on the state tables that apply, status, destroy (and metering) share."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.state.db import StateDB, as_utc, utcnow
from orchestrator.state.models import BillingPeriod, PlanRecord, Replica

LIVE = ("creating", "running", "failed", "terminating")
_SECRETISH = re.compile(r"(secret|password|passwd|token(?!s)|credential|api[_-]?key|private[_-]?key|user[_-]?data)", re.I)


def scrub(value: Any) -> Any:
    """Drop anything that looks like a secret from details before they reach state or output."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRETISH.search(str(k)) and not isinstance(v, (dict, list)) else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def replicas(db: StateDB, project: str, *, live_only: bool = True) -> list[Replica]:
    with db.session() as s:
        q = select(Replica).where(Replica.project == project)
        if live_only:
            q = q.where(Replica.status.in_(LIVE))
        rows = list(s.scalars(q.order_by(Replica.deployment, Replica.id)))
        for r in rows:
            s.expunge(r)
        return rows


def upsert_replica(s: Session, replica_id: str, **fields: Any) -> Replica:
    """Create the row or update it; a re-created replica id starts a fresh row (created_at reset)."""
    if "details" in fields:
        fields["details"] = scrub(fields["details"] or {})
    if fields.get("terminated_at") is not None:
        close_billing(s, replica_id, fields["terminated_at"])
    row = s.get(Replica, replica_id)
    if row is None:
        fields.setdefault("created_at", utcnow())
        fields.setdefault("details", {})
        row = Replica(id=replica_id, **fields)
        s.add(row)
    else:
        for k, v in fields.items():
            setattr(row, k, v)
    return row


def _open_period(s: Session, replica_id: str) -> BillingPeriod | None:
    return s.scalars(
        select(BillingPeriod).where(BillingPeriod.replica_id == replica_id, BillingPeriod.end.is_(None))
        .order_by(BillingPeriod.start.desc()).limit(1)
    ).first()


def close_billing(s: Session, replica_id: str, end: datetime) -> None:
    """End the replica's open billing period(s) at ``end`` (terminated, gone, or a launch that failed)."""
    for p in s.scalars(select(BillingPeriod).where(BillingPeriod.replica_id == replica_id,
                                                   BillingPeriod.end.is_(None))):
        end_utc = as_utc(end)
        assert end_utc is not None
        p.end = max(end_utc, as_utc(p.start) or end_utc)


def open_billing(s: Session, replica_id: str, start: datetime, usd_per_hour: float, list_usd_per_hour: float,
                 plan_id: str) -> None:
    """Start billing the replica at this price (closing a period left open, e.g. by a crashed run)."""
    close_billing(s, replica_id, start)
    s.add(BillingPeriod(replica_id=replica_id, start=start, end=None, usd_per_hour=usd_per_hour,
                        list_usd_per_hour=list_usd_per_hour, plan_id=plan_id))


def ensure_billing(s: Session, replica_id: str, at: datetime, usd_per_hour: float, list_usd_per_hour: float,
                   plan_id: str) -> str | None:
    """The replica is billed at this price from ``at`` on: a no-op when it already is; a price change
    closes the open period at ``at`` and opens the next. Also keeps the row's current price and plan.
    Returns the old price when it changed ("$a/h"), else None."""
    row = s.get(Replica, replica_id)
    if row is not None:
        row.usd_per_hour, row.list_usd_per_hour, row.plan_id = usd_per_hour, list_usd_per_hour, plan_id
    open_ = _open_period(s, replica_id)
    if open_ is None:
        open_billing(s, replica_id, at, usd_per_hour, list_usd_per_hour, plan_id)
        return None
    if abs(open_.usd_per_hour - usd_per_hour) < 1e-12 and abs(open_.list_usd_per_hour - list_usd_per_hour) < 1e-12:
        open_.plan_id = plan_id
        return None
    old = open_.usd_per_hour
    open_billing(s, replica_id, at, usd_per_hour, list_usd_per_hour, plan_id)
    return f"${old:,.4g}/h"


def update_replica(db: StateDB, replica_id: str, **fields: Any) -> None:
    with db.session() as s:
        row = s.get(Replica, replica_id)
        if row is None:
            return
        if "details" in fields:
            fields["details"] = scrub({**(row.details or {}), **(fields["details"] or {})})
        if fields.get("terminated_at") is not None:
            close_billing(s, replica_id, fields["terminated_at"])
        for k, v in fields.items():
            setattr(row, k, v)


def save_plan(db: StateDB, plan_id: str, project: str, spec_sha256: str, plan_json: dict[str, Any],
              providers_json: dict[str, Any] | None) -> None:
    with db.session() as s:
        row = s.get(PlanRecord, plan_id)
        if row is None:
            s.add(PlanRecord(id=plan_id, project=project, created_at=utcnow(), spec_sha256=spec_sha256,
                             plan=plan_json, providers=providers_json))
        else:  # applied again: it becomes the latest
            row.created_at = utcnow()
            row.spec_sha256 = spec_sha256
            row.providers = providers_json


def latest_plan(db: StateDB, project: str) -> PlanRecord | None:
    with db.session() as s:
        row = s.scalars(
            select(PlanRecord).where(PlanRecord.project == project).order_by(PlanRecord.created_at.desc()).limit(1)
        ).first()
        if row is not None:
            s.expunge(row)
        return row


def projects(db: StateDB) -> list[str]:
    with db.session() as s:
        names = set(s.scalars(select(Replica.project).distinct())) | set(s.scalars(select(PlanRecord.project).distinct()))
        return sorted(names)


# ClientToken (an idempotency token) and HttpTokens (the IMDSv2 setting, "required") are settings, not secrets.
_SECRET_KEYS = re.compile(r"(secret|password|passwd|(?<!client)(?<!http)token|credential|api[_-]?key|private[_-]?key)",
                          re.I)


def scrub_calls(value: Any) -> Any:
    """Planned calls for --dry-run: providers never put credentials there; this is the second fence.

    Only string values under secret-looking keys are hidden (a list of secret *names* stays visible).
    """
    if isinstance(value, dict):
        return {k: ("<redacted>" if isinstance(v, str) and _SECRET_KEYS.search(str(k)) else scrub_calls(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_calls(v) for v in value]
    return value
