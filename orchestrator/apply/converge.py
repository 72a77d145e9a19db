"""Converge a plan onto providers: journaled, resumable after a crash, with ranked fallbacks.

Order of work, and why:
1. recover: intent rows left by a killed run are resolved against what providers report by label;
2. adopt: labelled resources state does not know are recorded (no duplicates after a crash);
3. create: intent committed BEFORE each provider call; CapacityError/QuotaError moves the deployment to
   its next ranked fallback (said on stderr and in the journal), AuthError stops, other provider errors
   are recorded and the rest goes on (a rerun converges);
4. wait for /health;
5. tell each deployment's gateways which healthy replicas to route to (orchestrator.serve.sync);
6. delete what is no longer desired, only once the deployment's desired replicas are all healthy: nothing
   healthy is torn down to make room for something that may never come up. A replica leaves its gateways and
   finishes its requests (drain) before it is terminated.
The journaled writes (recover, adopt, reprice, launch, terminate) are in orchestrator.apply.writes, the gateway
steps in orchestrator.apply.gateways; this module holds the run, its fallbacks and its wait for /health.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.apply.actual import Inventory, gather
from orchestrator.apply.desired import DesiredReplica, desired_for, options, plan_id
from orchestrator.apply.diff import Change, Resource, diff
from orchestrator.apply.gateways import DRAIN_S, GatewayPortTaken, GatewaySteps  # noqa: F401 - apply's API
from orchestrator.apply.readiness import Waiting, wait_ready
from orchestrator.apply.targets import Targets
from orchestrator.apply.writes import WriteSteps
from orchestrator.errors import AuthError, CapacityError, ProviderError, QuotaError
from orchestrator.plan import Plan
from orchestrator.state import store
from orchestrator.state.db import StateDB, utcnow
from orchestrator.state.journal import Journal

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class ApplyOptions:
    wait: bool = True
    timeout_s: float = 1200.0
    interval_s: float = 2.0
    drain_s: dict[str, float] = field(default_factory=dict)  # deployment -> drain timeout (default DRAIN_S)




@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    healthy: list[str] = field(default_factory=list)
    unhealthy: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # deletes held back until replacements are healthy
    failed: dict[str, str] = field(default_factory=dict)  # replica or deployment -> why
    fallbacks: list[str] = field(default_factory=list)
    repriced: list[str] = field(default_factory=list)  # kept replicas whose price changed

    @property
    def converged(self) -> bool:
        return not (self.failed or self.unhealthy or self.deferred)


def all_places(plan: Plan) -> list[tuple[str, str]]:
    """Every (provider, region) the plan may use, fallbacks included: where its resources may be."""
    return list(dict.fromkeys((g.provider, g.region) for d in plan.deployments for o in options(d) for g in o))


class Converger(WriteSteps, GatewaySteps):
    def __init__(
        self, db: StateDB, plan: Plan, targets: Targets, *, err: Console, spec_sha256: str = "",
        providers_json: dict[str, Any] | None = None, opts: ApplyOptions | None = None,
        shapes: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.db = db
        self.plan = plan
        self.project = plan.project
        self.pid = plan_id(plan)
        self.targets = targets
        self.err = err
        self.spec_sha256 = spec_sha256 or plan.spec_sha256
        self.providers_json = providers_json
        self.opts = opts or ApplyOptions()
        self.shapes = shapes or {}  # deployment -> input_tokens, output_tokens, tpot_slo_ms (from the spec)
        self.journal = Journal(db, plan.project)
        self.choice: dict[str, int] = {}
        self.inventory = Inventory()
        self.changes: list[Change] = []
        self.endpoints: dict[str, str] = {}  # replica id -> endpoint, as it answered /health this run

    # -- reading -----------------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        self.err.print(msg, highlight=False, markup=False)

    def fallback_choice(self) -> dict[str, int]:
        """The fallback option each deployment moved to under this plan (from the journal)."""
        choice: dict[str, int] = {}
        for e in self.journal.entries("fallback"):
            try:
                d = json.loads(e.detail or "{}")
            except ValueError:
                continue
            if d.get("plan_id") == self.pid and e.status == "done":
                choice[d["deployment"]] = int(d["to"])
        return choice

    def desired(self) -> list[DesiredReplica]:
        out: list[DesiredReplica] = []
        for dep in self.plan.deployments:
            out.extend(desired_for(self.project, self.pid, dep, self.choice.get(dep.name, 0)))
        return out

    def prepare(self) -> list[Change]:
        """Recover from an interrupted run, read what exists, and compute the changes (state: recovery only)."""
        self.choice = self.fallback_choice()
        self.inventory = gather(self.db, self.project, self.targets, all_places(self.plan), warn=self.say)
        self._recover()
        self.changes = diff(self.desired(), self.inventory.resources)
        self._preflight()
        return self.changes

    # -- the run -----------------------------------------------------------------------------------------
    def execute(self) -> ApplyResult:
        result = ApplyResult()
        store.save_plan(self.db, self.pid, self.project, self.spec_sha256,
                        self.plan.model_dump(mode="json"), self.providers_json)
        existing: dict[str, Resource] = {}
        for c in self.changes:
            if c.action == "adopt":
                self._adopt(c, result)
            if c.action == "keep" and c.desired is not None:
                self._reprice(c.desired, result)
            if c.action in ("keep", "adopt") and c.resource is not None:
                existing[c.replica_id] = c.resource
        launched: dict[str, Resource] = {}
        self._free_moved_gateway_ports(result)
        for dep in self.plan.deployments:
            self._create_deployment(dep.name, existing, launched, result)
        existing.update(launched)

        final = self.desired()
        final_ids = {d.id for d in final}
        healthy = self._wait(final, existing, result) if self.opts.wait else set()

        # what is no longer desired: the diff's deletes plus what an abandoned option launched this run
        doomed = [c.resource for c in self.changes if c.action == "delete" and c.resource is not None]
        doomed += [r for rid, r in existing.items() if rid not in final_ids]
        by_dep: dict[str, list[str]] = {}
        for d in final:
            by_dep.setdefault(d.deployment.name, []).append(d.id)
        going: list[Resource] = []
        for r in doomed:
            replacements = by_dep.get(r.deployment, [])
            if any(rid not in healthy for rid in replacements):
                result.deferred.append(r.replica_id)
                self.say(f"kept {r.replica_id} until {r.deployment}'s desired replicas are healthy")
                continue
            if not r.verified:
                result.deferred.append(r.replica_id)
                self.say(f"kept {r.replica_id}: {r.provider} {r.region} is unreachable")
                continue
            going.append(r)
        kept = {r.replica_id for r in doomed} - {r.replica_id for r in going}
        if self.opts.wait:
            self._sync_gateways(final, existing, healthy, kept, result)
        for r in going:
            try:
                self._drain(r)
                self.terminate(r)
                result.deleted.append(r.replica_id)
                self.say(f"deleted {r.replica_id} ({r.provider} {r.region}, {r.handle.id})")
            except AuthError:
                raise
            except ProviderError as exc:
                result.failed[r.replica_id] = f"terminate: {exc}"
                self.say(f"failed to delete {r.replica_id}: {exc}")
        return result

    def _create_deployment(self, name: str, existing: dict[str, Resource], launched: dict[str, Resource],
                           result: ApplyResult) -> None:
        dep = next(d for d in self.plan.deployments if d.name == name)
        opts = options(dep)
        option = min(self.choice.get(name, 0), len(opts) - 1)
        while True:
            todo = [d for d in desired_for(self.project, self.pid, dep, option)
                    if d.id not in existing and d.id not in launched]
            broken_groups: set[str] = set()
            try:
                for d in todo:
                    if d.group_key in broken_groups:
                        result.failed[d.id] = "skipped: an earlier replica of its group failed"
                        continue
                    try:
                        h = self.launch(d)
                    except (CapacityError, QuotaError):
                        raise
                    except AuthError:
                        raise
                    except ProviderError as exc:
                        result.failed[d.id] = str(exc)
                        broken_groups.add(d.group_key)
                        self.say(f"failed to launch {d.id} on {d.group.provider} {d.group.region}: {exc}")
                        continue
                    launched[d.id] = Resource(d.id, name, d.group.provider, d.group.region, h, verified=True,
                                              in_state=True, priced=d.priced)
                    result.created.append(d.id)
                    self.say(f"launched {d.id} on {d.group.provider} {d.group.region} "
                             f"{d.group.instance_type} ({h.id})")
            except (CapacityError, QuotaError) as exc:
                kind = "no capacity" if isinstance(exc, CapacityError) else "quota exceeded"
                g = d.group
                if option + 1 >= len(opts):
                    result.failed[name] = f"{kind} on {g.provider} {g.region} {g.instance_type} and no fallback left"
                    self.say(f"{name}: {kind} on {g.provider} {g.region} {g.instance_type} ({exc}); "
                             "no fallback left")
                    return
                nxt = opts[option + 1]
                where = ", ".join(f"{x.count}x {x.provider} {x.region} {x.instance_type}" for x in nxt)
                msg = (f"{name}: {kind} on {g.provider} {g.region} {g.instance_type} ({exc}); "
                       f"taking fallback #{option + 1}: {where}")
                self.say(msg)
                self.journal.record("fallback", d.id, g.provider, {
                    "plan_id": self.pid, "deployment": name, "from": option, "to": option + 1,
                    "reason": f"{type(exc).__name__}: {exc}", "next": where,
                })
                result.fallbacks.append(msg)
                option += 1
                self.choice[name] = option
                continue
            return

    def _wait(self, final: list[DesiredReplica], existing: dict[str, Resource], result: ApplyResult) -> set[str]:
        items: list[Waiting] = []
        for d in final:
            r = existing.get(d.id)
            if r is None:
                continue
            target = self.targets.get(r.provider, r.region)
            handle = r.handle

            def refresh(target=target, handle=handle) -> str | None:  # type: ignore[no-untyped-def]
                return target.provider.describe(handle.id, handle.region).endpoint

            def exited(target=target, handle=handle) -> str | None:  # type: ignore[no-untyped-def]
                now = target.provider.describe(handle.id, handle.region)
                if now.state not in ("terminated", "stopped"):
                    return None
                tail = str(now.details.get("log_tail") or "").strip()
                return f"it {now.state}" + (f"; the end of its log:\n{tail}" if tail else "")

            items.append(Waiting(d.id, r.handle.endpoint, refresh, exited))

        def on_ready(rid: str, endpoint: str) -> None:
            self.endpoints[rid] = endpoint
            rows = self.inventory.rows
            first = rid not in rows or rows[rid].ready_at is None or rows[rid].status != "running"
            fields: dict[str, Any] = {"status": "running", "endpoint": endpoint}
            if first:
                fields["ready_at"] = utcnow()
            store.update_replica(self.db, rid, **fields)

        if items:
            self.say(f"waiting up to {self.opts.timeout_s:.0f}s for {len(items)} replica(s) to answer /health")
        exits: dict[str, str] = {}

        def on_exit(rid: str, why: str) -> None:
            exits[rid] = why
            self.say(f"{rid} exited before it was healthy: {why}")

        ready = wait_ready(items, timeout_s=self.opts.timeout_s, console=self.err, interval_s=self.opts.interval_s,
                           on_ready=on_ready, on_exit=on_exit)
        healthy = {rid for rid, ok in ready.items() if ok}
        result.healthy = sorted(healthy)
        result.unhealthy = sorted(rid for rid, ok in ready.items() if not ok and rid not in exits)
        for rid, why in exits.items():
            result.failed[rid] = f"exited before it was healthy: {why.splitlines()[0]}"
        for rid in result.unhealthy:
            self.say(f"not healthy after {self.opts.timeout_s:.0f}s: {rid} (left running; rerun apply to wait again)")
        return healthy


def request_shapes(spec: Any) -> dict[str, dict[str, float]]:
    """Per deployment, the request shape and TPOT SLO it was planned for (reports size capacity with them)."""
    return {d.name: {"input_tokens": d.traffic.input_tokens, "output_tokens": d.traffic.output_tokens,
                     "tpot_slo_ms": d.slo.tpot_p95_ms} for d in spec.deployments}
