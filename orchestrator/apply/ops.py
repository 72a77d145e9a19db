"""Journaled provider operations shared by apply and destroy."""

from __future__ import annotations

from typing import Any

from orchestrator.apply.diff import Resource
from orchestrator.apply.targets import Targets
from orchestrator.errors import NotFoundError, ProviderError
from orchestrator.priced import PricedReplica
from orchestrator.state import store
from orchestrator.state.db import StateDB, utcnow
from orchestrator.state.journal import Journal, checkpoint
from providers.base import LABEL_PLAN


def adopt_orphan(db: StateDB, journal: Journal, r: Resource) -> None:
    """Record a labelled resource state did not know, so what happens to it next is journaled against a row."""
    priced = r.priced or PricedReplica.unknown(r.provider, r.region)
    fields: dict[str, Any] = dict(
        project=journal.project, deployment=r.deployment, team=None, model="?", **priced.columns(),
        plan_id=r.handle.labels.get(LABEL_PLAN, "?"), group_key="?", handle_id=r.handle.id,
        endpoint=r.handle.endpoint, status="running", terminated_at=None, details={"adopted": True},
    )
    journal.record("adopt", r.replica_id, r.provider, {"handle": r.handle.id, "region": r.region, "orphan": True},
                   also=lambda s: store.upsert_replica(s, r.replica_id, **fields))
    r.in_state = True


def terminate_resource(db: StateDB, journal: Journal, targets: Targets, r: Resource) -> None:
    """Intent (committed) → provider.terminate → done; the row ends ``terminated``. NotFound counts as done."""
    target = targets.get(r.provider, r.region)
    if not r.in_state:
        adopt_orphan(db, journal, r)
    jid = journal.intent(
        "terminate", r.replica_id, r.provider, {"handle": r.handle.id, "region": r.region},
        also=lambda s: store.upsert_replica(s, r.replica_id, status="terminating"),
    )
    checkpoint(f"terminate-intent {r.replica_id}")
    try:
        target.provider.terminate(r.handle)
    except NotFoundError:
        pass  # already gone: the goal is reached
    except ProviderError as exc:
        journal.failed(jid, f"{type(exc).__name__}: {exc}")
        raise
    checkpoint(f"terminated {r.replica_id}")
    journal.done(jid, also=lambda s: store.upsert_replica(s, r.replica_id, status="terminated",
                                                         terminated_at=utcnow()))
    checkpoint(f"terminate-done {r.replica_id}")
