"""Apply's steps for a deployment's gateways, mixed into the Converger: the ports a new local gateway needs, the
gateway a moved one replaces, telling each gateway which replicas to route to, and draining a replica at its
gateways before it is terminated (orchestrator/serve/sync.py does the talking)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from containers.labels import LABEL_ROLE
from orchestrator.apply.desired import DesiredReplica
from orchestrator.apply.diff import Change, Resource
from orchestrator.errors import OrchError, UserError
from orchestrator.serve.sync import GatewayRef
from providers.abilities import WithGatewayPreflight

if TYPE_CHECKING:
    from orchestrator.apply.actual import Inventory
    from orchestrator.apply.converge import ApplyOptions, ApplyResult
    from orchestrator.apply.targets import Targets
    from orchestrator.plan import Plan

DRAIN_S = 120.0


class GatewayPortTaken(UserError):
    """A new gateway's port is held by another program (found before anything changed)."""

    def __init__(self, message: str, *, deployment: str) -> None:
        super().__init__(message)
        self.deployment = deployment



class GatewaySteps:
    """Needs the Converger's changes, inventory, targets, endpoints, opts, plan and say."""

    changes: list[Change]
    endpoints: dict[str, str]
    inventory: Inventory
    targets: Targets
    opts: ApplyOptions
    plan: Plan

    def say(self, msg: str) -> None: ...  # the Converger's

    def terminate(self, r: Resource) -> None: ...  # the Converger's

    def is_gateway(self, r: Resource) -> bool:
        row = self.inventory.rows.get(r.replica_id)
        return r.handle.labels.get(LABEL_ROLE) == "gateway" or (row is not None and
                                                               (row.details or {}).get("role") == "gateway")

    def _replaced_gateways(self, c: Change) -> list[Resource]:
        """Gateways of c's deployment, no longer desired, in the place c's new gateway goes: they hold its port."""
        return [o.resource for o in self.changes if o.action == "delete" and o.resource is not None
                and o.deployment == c.deployment and (o.priced.provider, o.priced.region) == (c.priced.provider, c.priced.region)
                and self.is_gateway(o.resource)]

    def _free_moved_gateway_ports(self, result: ApplyResult) -> None:
        """A gateway moving within one place (a new id, the same host and port) stops the old one first: a short
        outage of that endpoint, instead of a new gateway that cannot bind its port."""
        replaced: set[str] = set()
        for c in self.changes:
            if c.action == "create" and c.desired is not None and c.desired.gateway is not None:
                for old in self._replaced_gateways(c):
                    if old.replica_id not in replaced and old.verified:
                        self.terminate(old)
                        replaced.add(old.replica_id)
                        result.deleted.append(old.replica_id)
                        self.say(f"deleted {old.replica_id}: the gateway that replaces it needs its port")
        self.changes = [c for c in self.changes if c.replica_id not in replaced or c.action != "delete"]

    def _preflight(self) -> None:
        """Before anything changes: a new local gateway's ports must be free (or held by the gateway it replaces)."""
        for c in self.changes:
            d = c.desired
            if c.action != "create" or d is None or d.gateway is None or self._replaced_gateways(c):
                continue
            target = self.targets.get(d.group.provider, d.group.region)
            if isinstance(target.provider, WithGatewayPreflight):
                try:
                    target.provider.check_ports(d.container(**target.container_kwargs))
                except UserError as exc:
                    raise GatewayPortTaken(str(exc), deployment=d.deployment.name) from None

    # -- serving -------------------------------------------------------------------------------------------
    def _endpoint(self, rid: str, existing: dict[str, Resource]) -> str | None:
        r = existing.get(rid)
        row = self.inventory.rows.get(rid)
        return self.endpoints.get(rid) or (r.handle.endpoint if r else None) or (row.endpoint if row else None)

    def _private_endpoint(self, rid: str, endpoint: str, existing: dict[str, Resource]) -> str | None:
        """http://<private ip>:<port> when the provider reported one (AWS, GCP), else None."""
        r = existing.get(rid)
        ip = (r.handle.details or {}).get("private_ip") if r else None
        port = urlsplit(endpoint).port
        return f"http://{ip}:{port}" if ip and port else None

    def _gateway_refs(self, deployment: str, final: list[DesiredReplica], existing: dict[str, Resource],
                      healthy: set[str]) -> list[GatewayRef]:
        from orchestrator.serve.keys import admin_key

        refs = []
        for d in final:
            if d.gateway is None or d.deployment.name != deployment or d.id not in healthy:
                continue
            endpoint = self._endpoint(d.id, existing)
            if endpoint:
                target = self.targets.get(d.group.provider, d.group.region)
                refs.append(GatewayRef(d.id, endpoint, tuple(d.gateway.upstream), admin_key(target.provider),
                                       d.group.region))
        return refs

    def _sync_gateways(self, final: list[DesiredReplica], existing: dict[str, Resource], healthy: set[str],
                       kept: set[str], result: ApplyResult) -> None:
        """Each healthy gateway routes to the healthy replicas the plan meant for it (level-triggered)."""
        from orchestrator.serve.sync import Worker, sync_gateway

        for dep in self.plan.deployments:
            workers = [Worker(d.id, d.group.region, ep, self._private_endpoint(d.id, ep, existing)) for d in final
                       if d.gateway is None and d.deployment.name == dep.name and d.id in healthy
                       and (ep := self._endpoint(d.id, existing))]
            keep = {ep for rid in kept if (ep := self._endpoint(rid, existing))}
            try:
                refs = self._gateway_refs(dep.name, final, existing, healthy)
            except OrchError as exc:
                result.failed[f"{dep.name} gateways"] = str(exc)
                self.say(f"{dep.name}: cannot reach its gateways: {exc}")
                continue
            for g in refs:
                try:
                    sync_gateway(g, workers, keep=keep, say=self.say)
                except OrchError as exc:
                    result.failed[g.replica_id] = f"gateway: {exc}"
                    self.say(f"{g.replica_id}: {exc}")

    def _drain(self, r: Resource) -> None:
        """A replica leaving: out of its deployment's gateways first, then let its requests finish."""
        from orchestrator.serve.sync import Worker, deregister, drain

        row = self.inventory.rows.get(r.replica_id)
        endpoint = r.handle.endpoint or (row.endpoint if row else None)
        if not endpoint or self.is_gateway(r):
            return
        gateways: list[GatewayRef] = []
        from orchestrator.serve.keys import admin_key

        for row in self.inventory.rows.values():
            if row.deployment == r.deployment and (row.details or {}).get("role") == "gateway" and row.endpoint:
                try:
                    key = admin_key(self.targets.get(row.provider, row.region).provider)
                except OrchError as exc:
                    self.say(f"warning: {r.replica_id}: cannot reach gateway {row.id}: {exc}")
                    continue
                gateways.append(GatewayRef(row.id, row.endpoint, (), key, row.region))
        private = (r.handle.details or {}).get("private_ip")
        port = urlsplit(endpoint).port
        worker = Worker(r.replica_id, r.region, endpoint, f"http://{private}:{port}" if private and port else None)
        deregister(gateways, worker, say=self.say)
        limit = self.opts.drain_s.get(r.deployment, DRAIN_S)
        if not drain(endpoint, limit):
            self.say(f"{r.replica_id}: requests still running after {limit:.0f}s of draining; terminating anyway")

