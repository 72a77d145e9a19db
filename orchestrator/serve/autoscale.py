"""`orch autoscale FILE`: the control loop. Each round:

1. read every replica of the project (the meter's scrape of vLLM's /metrics, recorded as `orch meter` does);
2. per deployment with ``autoscale:``, turn the round into an Observation (token rate since the last round,
   requests running and queued) and ask ``decide`` for the replica count, against one replica's capacity at
   the SLO (a measured profile, else the performance model);
3. act through a new plan: scale out adds the cheapest replicas that keep the SLOs and policies
   (``where.cheapest_addition``), scale in removes the dearest (``where.without_one``); a replica that died or
   was preempted is simply missing from what runs. Apply's converger then does the work under the project's
   lock and journal: launch, wait for /health, register with the gateways, drain and terminate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError
from orchestrator.metering.scrape import Sample, delta
from orchestrator.perf.capacity import Capacity, replica_capacity
from orchestrator.plan import Plan, ReplicaGroup
from orchestrator.serve.decide import Decision, Observation, Rules, decide


@dataclass
class Watch:
    """What the loop remembers of one deployment between rounds."""

    rules: Rules
    history: deque[Observation] = field(default_factory=lambda: deque(maxlen=10_000))
    last_change: float | None = None
    last: Decision | None = None


def rules_of(spec_deployment: Any, floor_replicas: int = 0) -> Rules:
    a = spec_deployment.autoscale
    return Rules(min_replicas=a.min_replicas, max_replicas=a.max_replicas, target=a.target_utilization,
                 scale_out_after_s=a.scale_out_after_s, scale_in_after_s=a.scale_in_after_s,
                 cooldown_s=a.cooldown_s, floor=floor_replicas)


def observe(samples: list[Sample], previous: dict[str, Sample], t: float) -> Observation | None:
    """One deployment's load from this round's samples of its replicas (gaps left out) and the last round's.
    None when no replica could be read."""
    ok = [s for s in samples if s.ok]
    if not ok:
        return None
    tokens_per_s = 0.0
    for s in ok:
        p = previous.get(s.replica_id)
        if p is not None and p.ok and s.ts > p.ts:
            inc, _ = delta(p.counters, s.counters, p.started_at, s.started_at)
            tokens_per_s += inc["generation_tokens"] / (s.ts - p.ts)
    return Observation(t=t, replicas=len(ok), output_tokens_per_s=tokens_per_s,
                       running=sum(s.gauges["running"] for s in ok), waiting=sum(s.gauges["waiting"] for s in ok))


def capacity_of(dep_plan: Any, group: ReplicaGroup, spec_deployment: Any) -> Capacity:
    """One replica of ``group``'s capacity at the deployment's request shape and TPOT SLO."""
    t = spec_deployment.traffic
    cap = replica_capacity(dep_plan.model, group.gpu, group.gpus_per_replica, group.quantization, t.input_tokens,
                           t.output_tokens, spec_deployment.slo.tpot_p95_ms, dep_plan.hf_id)
    if cap is not None:
        return cap
    # neither a profile nor the model knows it (a configuration off the registry): the plan's own figure
    tps = group.capacity_rps * t.output_tokens
    return Capacity(tps, max(1.0, tps * spec_deployment.slo.tpot_p95_ms / 1000.0), "plan")


class Autoscaler:
    def __init__(self, loaded: Any, db: Any, *, say: Callable[[str], None], dry_run: bool = False,
                 clock: Callable[[], float] = time.time, apply_timeout_s: float = 1200.0) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.db = db
        self.say = say
        self.dry_run = dry_run
        self.clock = clock
        self.apply_timeout_s = apply_timeout_s
        self.previous: dict[str, Sample] = {}
        self.watches = {d.name: Watch(rules_of(d)) for d in self.spec.deployments if d.autoscale is not None}
        if not self.watches:
            raise UserError(f"{loaded.path}: no deployment has an autoscale: section (min_replicas, max_replicas, "
                            "target_utilization); nothing to scale")

    # -- reading ------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        from orchestrator.state import store

        rec = store.latest_plan(self.db, self.spec.project)
        if rec is None:
            raise UserError(f"project {self.spec.project} has not been applied: run `orch apply {self.loaded.path}` "
                            "first")
        return Plan.model_validate(rec.plan)

    def scrape(self) -> dict[str, list[Sample]]:
        """This round's samples of the project's replicas, by deployment (recorded for reports too)."""
        from orchestrator.metering.meter import scrape_all
        from orchestrator.metering.store import record_samples, running_replicas

        mine = [r for r in running_replicas(self.db.engine) if r.project == self.spec.project]
        samples = asyncio.run(scrape_all(mine)) if mine else []
        record_samples(self.db.engine, samples)
        by_id = {r.id: r.deployment for r in mine}
        out: dict[str, list[Sample]] = {}
        for s in samples:
            out.setdefault(by_id[s.replica_id], []).append(s)
        return out

    # -- one round ----------------------------------------------------------------------------------------
    def round(self) -> dict[str, Decision]:
        now = self.clock()
        plan = self.plan()
        by_dep = self.scrape()
        decisions: dict[str, Decision] = {}
        for name, w in self.watches.items():
            dep_plan = next((d for d in plan.deployments if d.name == name), None)
            if dep_plan is None or not dep_plan.replicas:
                continue
            spec_dep = next(d for d in self.spec.deployments if d.name == name)
            samples = by_dep.get(name, [])
            obs = observe(samples, self.previous, now)
            if obs is not None:
                w.history.append(obs)
            current = sum(g.count for g in dep_plan.replicas)
            cap = capacity_of(dep_plan, dep_plan.replicas[0], spec_dep)
            d = decide(list(w.history), cap, w.rules, current, now, w.last_change)
            decisions[name] = d
            self.say(f"{name}: {current} -> {d.replicas} replica(s): {d.reason} (one replica: "
                     f"{cap.output_tokens_per_s:,.0f} tok/s, {cap.concurrency:.0f} in flight, {cap.source})")
            w.last = d
            if d.change and not self.dry_run:
                try:
                    plan = self._scale(plan, name, d, cap.output_tokens_per_s / spec_dep.traffic.output_tokens)
                except UserError as exc:  # nowhere to add: hold, and say why every round it persists
                    self.say(f"{name}: cannot scale: {exc}")
                    decisions[name] = Decision(current, 0, str(exc))
                    continue
                w.last_change = self.clock()
        for samples in by_dep.values():
            for s in samples:
                if s.ok:
                    self.previous[s.replica_id] = s
        if not self.dry_run:
            self._converge(plan, repair_only=not any(d.change for d in decisions.values()), by_dep=by_dep)
        return decisions

    def _scale(self, plan: Plan, name: str, d: Decision, replica_rps: float) -> Plan:
        """The plan with ``d`` carried out; ``replica_rps``: one running replica's requests/s at the SLO, as the
        solver's candidates are sized now (a measured profile, else the performance model)."""
        from orchestrator.serve.where import cheapest_addition, replan, spot_floor, with_groups, without_one

        dep_plan = next(x for x in plan.deployments if x.name == name)
        groups = dep_plan.replicas
        if d.change > 0:
            running = [g for x in plan.deployments for g in x.replicas]
            # capacity for change - 1/2 replicas of the kind running, which whole replicas round up to `change`
            # of them (or as much of another kind): a full replica's worth would sit at the edge of its SLO
            added = cheapest_addition(self.loaded, name, (d.change - 0.5) * replica_rps, running)
            new = with_groups(groups, added)
            where = ", ".join(f"{g.count}x {g.instance_type} in {g.region} (${g.usd_per_hour:,.2f}/h)" for g in added)
            self.say(f"{name}: adding {where}: the cheapest place that keeps its SLOs and policies")
        else:
            new = list(groups)
            for _ in range(-d.change):
                picked = without_one(new, spot_floor(self.loaded, name))
                if picked is None:
                    break
                new, gone = picked
                self.say(f"{name}: removing one {gone.instance_type} in {gone.region} "
                         f"(${gone.usd_per_hour / max(gone.count, 1):,.2f}/h, the dearest)")
        return replan(plan, name, new)

    def _converge(self, plan: Plan, *, repair_only: bool, by_dep: dict[str, list[Sample]]) -> None:
        """Apply ``plan`` (a scaling step), or only mend what died: a desired replica without a live sample."""
        from orchestrator.apply.converge import ApplyOptions, Converger
        from orchestrator.apply.desired import desired_replicas
        from orchestrator.apply.diff import err_console
        from orchestrator.apply.planfile import providers_json
        from orchestrator.apply.targets import Targets
        from orchestrator.apply.converge import request_shapes
        from orchestrator.state.lock import project_lock

        if repair_only:
            live = {s.replica_id for ss in by_dep.values() for s in ss if s.ok}
            missing = [d.id for d in desired_replicas(plan) if d.gateway is None and d.id not in live]
            if not missing:
                return
            self.say(f"mending: {', '.join(missing)} not answering")
        drains = {d.name: d.autoscale.drain_timeout_s for d in self.spec.deployments if d.autoscale}
        with project_lock(self.db, plan.project, warn=self.say):
            conv = Converger(self.db, plan, Targets(self.spec.providers), err=err_console(),
                             spec_sha256=self.loaded.sha256, providers_json=providers_json(self.spec),
                             opts=ApplyOptions(timeout_s=self.apply_timeout_s, drain_s=drains),
                             shapes=request_shapes(self.spec))
            conv.prepare()
            result = conv.execute()
        if not result.converged:
            problems = "; ".join(f"{k}: {v}" for k, v in {**result.failed}.items()) or "not all healthy yet"
            self.say(f"not converged yet ({problems}); the next round goes on")


def settle(plan: Plan, loaded: Any, previous: Plan | None, say: Callable[[str], None]) -> Plan:
    """What `orch apply` carries out for deployments the autoscaler owns: while the file is the one last applied,
    the replicas the autoscaler chose stay (apply does not undo its work); otherwise the plan's, brought within
    [min_replicas, max_replicas] (the dearest removed, the cheapest added)."""
    from orchestrator.serve.where import cheapest_addition, replan, spot_floor, with_groups, without_one

    for d in loaded.spec.deployments:
        a = d.autoscale
        dep = next((x for x in plan.deployments if x.name == d.name), None)
        if a is None or dep is None or not dep.replicas:
            continue
        before = next((x for x in previous.deployments if x.name == d.name), None) if previous else None
        if before is not None and before.replicas and previous.spec_sha256 == loaded.sha256:  # type: ignore[union-attr]
            n = sum(g.count for g in before.replicas)
            if [g.model_dump(exclude={"traffic"}) for g in before.replicas] != \
                    [g.model_dump(exclude={"traffic"}) for g in dep.replicas]:
                say(f"{d.name}: keeping the {n} replica(s) the autoscaler runs (the file is unchanged)")
            plan = replan(plan, d.name, [g.model_copy() for g in before.replicas])
            continue
        groups = list(dep.replicas)
        n = sum(g.count for g in groups)
        while n > a.max_replicas:
            picked = without_one(groups, spot_floor(loaded, d.name))
            if picked is None:
                break
            groups, _ = picked
            n = sum(g.count for g in groups)
        others = [g for x in plan.deployments if x.name != d.name for g in x.replicas]
        for _ in range(a.min_replicas):  # each round adds at least one replica; a larger one may cover more capacity
            if n >= a.min_replicas:     # than asked in fewer replicas, so the count is checked again
                break
            per = min(g.capacity_rps for g in groups) or 1.0
            groups = with_groups(groups, cheapest_addition(loaded, d.name, (a.min_replicas - n - 0.5) * per,
                                                           others + groups))
            n = sum(g.count for g in groups)
        m = sum(g.count for g in groups)
        if m != sum(g.count for g in dep.replicas):
            say(f"{d.name}: {sum(g.count for g in dep.replicas)} planned replica(s) -> {m}, within autoscale's "
                f"min_replicas {a.min_replicas} .. max_replicas {a.max_replicas}")
            plan = replan(plan, d.name, groups)
    return plan


def run(scaler: Autoscaler, interval_s: float, *, once: bool = False,
        sleep: Callable[[float], None] = time.sleep) -> None:
    """Rounds every ``interval_s`` (drift-free) until interrupted, or one with ``once``."""
    next_at = time.monotonic()
    while True:
        scaler.round()
        if once:
            return
        next_at += interval_s
        sleep(max(0.0, next_at - time.monotonic()))

