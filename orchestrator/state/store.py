"""Queries and writes on the state tables that apply, status, destroy (and metering) share."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.state.db import StateDB, utcnow
from orchestrator.state.models import PlanRecord, Replica

LIVE = ("creating", "running", "failed", "terminating")
_SECRETISH = re.compile(r"(secret|password|passwd|token|credential|api[_-]?key|private[_-]?key|user[_-]?data)", re.I)


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


def update_replica(db: StateDB, replica_id: str, **fields: Any) -> None:
    with db.session() as s:
        row = s.get(Replica, replica_id)
        if row is None:
            return
        if "details" in fields:
            fields["details"] = scrub({**(row.details or {}), **(fields["details"] or {})})
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


_SECRET_KEYS = re.compile(r"(secret|password|passwd|(?<!client)token|credential|api[_-]?key|private[_-]?key)", re.I)


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
