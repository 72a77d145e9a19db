"""What exists: state rows plus what each provider reports for the project's labels.

Providers are the truth about existence: a labelled resource state does not know is adopted (the
crash-recovery path), a live state row its provider no longer reports is gone. When a provider cannot
be reached, its state rows stand in, unverified, and nothing is decided about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.apply.diff import Resource
from orchestrator.apply.targets import Targets
from orchestrator.errors import OrchError
from orchestrator.state.db import StateDB
from orchestrator.state.models import Replica
from orchestrator.state.store import replicas
from providers.base import LABEL_DEPLOYMENT, LABEL_PROJECT, LABEL_REPLICA, Handle


@dataclass
class Inventory:
    resources: list[Resource] = field(default_factory=list)
    rows: dict[str, Replica] = field(default_factory=dict)  # live state rows by replica id
    gone: list[Replica] = field(default_factory=list)  # live rows whose provider no longer has them
    unreachable: dict[str, str] = field(default_factory=dict)  # "provider region" -> error
    reachable: set[tuple[str, str]] = field(default_factory=set)

    def by_replica(self) -> dict[str, list[Resource]]:
        out: dict[str, list[Resource]] = {}
        for r in self.resources:
            out.setdefault(r.replica_id, []).append(r)
        return out


def handle_from_row(row: Replica) -> Handle:
    return Handle(provider=row.provider, id=row.handle_id or "", region=row.region, state="unknown",
                  labels={LABEL_PROJECT: row.project, LABEL_DEPLOYMENT: row.deployment, LABEL_REPLICA: row.id},
                  endpoint=row.endpoint)


def gather(
    db: StateDB,
    project: str,
    targets: Targets,
    places: Iterable[tuple[str, str]],
    warn: Callable[[str], None] = lambda m: None,
) -> Inventory:
    """Inventory of ``project`` over ``places`` ((provider, region) pairs) plus every place state mentions."""
    inv = Inventory()
    for row in replicas(db, project):
        inv.rows[row.id] = row
    wanted = dict.fromkeys(list(places) + [(r.provider, r.region) for r in inv.rows.values()])
    seen: set[tuple[str, str]] = set()  # (replica, handle id)
    for provider_name, region in wanted:
        try:
            target = targets.get(provider_name, region)
            handles = target.provider.list({LABEL_PROJECT: project}, regions=target.list_regions)
        except OrchError as exc:
            inv.unreachable[f"{provider_name} {region}"] = str(exc)
            warn(f"warning: cannot list {provider_name} {region}: {exc}")
            continue
        inv.reachable.add((provider_name, region))
        for h in handles:
            rid = h.labels.get(LABEL_REPLICA)
            if not rid or h.labels.get(LABEL_PROJECT) != project or h.state == "terminated":
                continue
            if (rid, h.id) in seen:  # one provider instance may answer for several regions
                continue
            seen.add((rid, h.id))
            row = inv.rows.get(rid)
            in_state = row is not None and row.handle_id == h.id
            inv.resources.append(
                Resource(rid, h.labels.get(LABEL_DEPLOYMENT, row.deployment if row else "?"), provider_name,
                         region, h, verified=True, in_state=in_state,
                         priced=row.priced if row is not None else None)
            )
    found = {r.replica_id for r in inv.resources}
    for row in inv.rows.values():
        if row.id in found:
            continue
        if (row.provider, row.region) in inv.reachable:
            if row.status != "failed" or row.handle_id:
                inv.gone.append(row)
        elif row.handle_id:
            inv.resources.append(
                Resource(row.id, row.deployment, row.provider, row.region, handle_from_row(row),
                         verified=False, in_state=True, priced=row.priced)
            )
    return inv
