"""Apply's journaled writes, mixed into the Converger: resolving a killed run's intents, adopting labelled
resources state does not know, repricing kept replicas, and launching and terminating replicas, each provider call
behind an intent committed first (orchestrator.state.journal) so a crash leaves nothing unaccounted for."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator.apply.desired import DesiredReplica
from orchestrator.apply.diff import Change, Resource
from orchestrator.apply.ops import terminate_resource
from orchestrator.errors import ProviderError
from orchestrator.state import store
from orchestrator.state.db import StateDB, utcnow
from orchestrator.state.journal import Journal, checkpoint
from providers.base import Handle

if TYPE_CHECKING:
    from orchestrator.apply.actual import Inventory
    from orchestrator.apply.converge import ApplyResult
    from orchestrator.apply.targets import Targets


class WriteSteps:
    """Needs the Converger's db, journal, project, plan id, targets, inventory, request shapes and say."""

    db: StateDB
    journal: Journal
    project: str
    pid: str
    targets: Targets
    inventory: Inventory
    shapes: dict[str, dict[str, float]]

    def say(self, msg: str) -> None: ...  # the Converger's

    def _recover(self) -> None:
        inv = self.inventory
        live = inv.by_replica()
        for e in self.journal.pending():
            try:
                region = json.loads(e.detail or "{}").get("region")
            except ValueError:
                region = None
            if region and (e.provider, region) not in inv.reachable:
                continue  # its provider cannot be asked now: decide on a later run
            exists = any(r.verified for r in live.get(e.replica_id or "", []))
            if e.action == "launch":
                if exists:
                    self.journal.done(e.id, "interrupted run: resource found by labels; adopted")
                else:  # nothing was created, so nothing was billed
                    self.journal.failed(e.id, "interrupted run: the provider has no such resource; will relaunch",
                                        also=lambda s, e=e: store.close_billing(s, e.replica_id or "", e.ts))
            elif e.action == "terminate":
                if exists:
                    self.journal.failed(e.id, "interrupted run: resource still exists")
                else:
                    self.journal.done(e.id, "interrupted run: resource gone")
            else:
                self.journal.failed(e.id, "interrupted run")
        for row in inv.gone:
            store.update_replica(self.db, row.id, status="terminated", terminated_at=utcnow(),
                                 details={"terminated_reason": "not found by the provider"})
            inv.rows.pop(row.id, None)

    def _row_fields(self, d: DesiredReplica) -> dict[str, Any]:
        return {
            "project": self.project, "deployment": d.deployment.name, "team": d.deployment.team,
            "model": d.deployment.model, **d.priced.columns(), "plan_id": self.pid, "group_key": d.group_key,
        }

    def _details(self, d: DesiredReplica) -> dict[str, Any]:
        """What reports need to size the replica as the plan did: model source, quantization, request
        shape and SLO, and the plan's capacity at the SLO (output tokens/s)."""
        g, shape = d.group, self.shapes.get(d.deployment.name, {})
        if d.gateway is not None:
            return {"option": d.option, "role": "gateway", "port": d.gateway.port, "users": d.gateway.users,
                    "upstream": d.gateway.upstream}
        out: dict[str, Any] = {"option": d.option, "quantization": g.quantization, "hf_id": d.deployment.hf_id,
                               **shape}
        if shape.get("output_tokens") and g.capacity_rps > 0:
            out["planned_capacity_tps"] = g.capacity_rps * shape["output_tokens"]
        return out

    def _adopt(self, c: Change, result: ApplyResult) -> None:
        r = c.resource
        assert r is not None
        fields = self._row_fields(c.desired) if c.desired else {}
        fields.update(handle_id=r.handle.id, endpoint=r.handle.endpoint, status="creating", terminated_at=None,
                      details={"adopted": True, **(r.handle.details or {}),
                               **(self._details(c.desired) if c.desired else {})})

        def write(s: Any) -> None:
            store.upsert_replica(s, r.replica_id, **fields)
            if c.desired is not None:  # billed from now unless a crashed launch already opened its period
                store.ensure_billing(s, r.replica_id, utcnow(), fields["usd_per_hour"], fields["list_usd_per_hour"],
                                     self.pid)

        # no external call: complete once recorded
        self.journal.record("adopt", r.replica_id, r.provider, {"handle": r.handle.id, "region": r.region},
                            also=write)
        r.in_state = True
        result.adopted.append(r.replica_id)
        self.say(f"adopted {r.replica_id} ({r.provider} {r.region}, {r.handle.id}): found by its labels")

    def _reprice(self, d: DesiredReplica, result: ApplyResult) -> None:
        """A kept replica is billed at the plan's price from now on (the old price stays on past hours),
        and its row describes it as this plan does."""
        f = self._row_fields(d)
        with self.db.session() as s:
            old = store.ensure_billing(s, d.id, utcnow(), f["usd_per_hour"], f["list_usd_per_hour"], self.pid)
        store.update_replica(self.db, d.id, details=self._details(d))
        if old is not None:
            msg = f"{d.id}: price {old} -> ${f['usd_per_hour']:,.4g}/h from now on"
            result.repriced.append(msg)
            self.say(msg)

    def launch(self, d: DesiredReplica) -> Handle:
        g = d.group
        target = self.targets.get(g.provider, g.region)
        container = d.container(**target.container_kwargs)
        fields = self._row_fields(d)
        fields.update(handle_id=None, endpoint=None, status="creating", created_at=utcnow(), ready_at=None,
                      terminated_at=None, details=self._details(d))

        def write_row(s: Any) -> None:
            store.upsert_replica(s, d.id, **fields)
            store.open_billing(s, d.id, fields["created_at"], fields["usd_per_hour"], fields["list_usd_per_hour"],
                               self.pid)

        def failed_row(s: Any) -> None:  # nothing was created: nothing is billed
            store.upsert_replica(s, d.id, status="failed", details={"error": why})
            store.close_billing(s, d.id, fields["created_at"])

        jid = self.journal.intent(
            "launch", d.id, g.provider,
            {"plan_id": self.pid, "region": g.region, "instance_type": g.instance_type, "market": g.market},
            also=write_row,
        )
        checkpoint(f"launch-intent {d.id}")
        try:
            handle = target.provider.launch(container, d.placement())
        except ProviderError as exc:
            why = f"{type(exc).__name__}: {exc}"
            self.journal.failed(jid, why, also=failed_row)
            raise
        checkpoint(f"launched {d.id}")

        def record(s: Any) -> None:
            store.upsert_replica(s, d.id, handle_id=handle.id, endpoint=handle.endpoint,
                                 details={**self._details(d), **(handle.details or {})})

        self.journal.done(jid, {"handle": handle.id, "endpoint": handle.endpoint}, also=record)
        checkpoint(f"launch-done {d.id}")
        return handle

    def terminate(self, r: Resource) -> None:
        terminate_resource(self.db, self.journal, self.targets, r)
