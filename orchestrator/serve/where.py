"""Where the autoscaler adds a replica and which one it removes: placement questions, answered by placement.

Scale out re-solves the deployment's placement for the capacity to add alone: the same candidates, SLOs,
policies and objective as `orch place`, with every running replica of the project counted against quotas,
inventory and the budget. The answer is the cheapest addition that keeps them all. Scale in removes the
replica with the highest price per hour first, unless that would leave less on-demand capacity than the
deployment's spot policy keeps.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.errors import UserError
from orchestrator.plan import DeploymentPlan, Plan, ReplicaGroup


def cheapest_addition(loaded: Any, deployment: str, add_rps: float, running: list[ReplicaGroup], *,
                      objective: str = "cost", time_limit: float = 10.0, catalog: Any = None) -> list[ReplicaGroup]:
    """Replica groups that add ``add_rps`` requests/s of capacity at the SLO to ``deployment``, at the least cost,
    with ``running`` (the project's live groups) holding their GPUs and their cost. Raises UserError when none
    fits (quota, inventory or budget exhausted).

    The deployment keeps its headroom: the solver sizes TTFT queueing at the planned utilization
    1 / (1 + headroom), so the demand it is given is the capacity to add divided by that."""
    from orchestrator.catalog.load import load_catalog
    from orchestrator.placement.explain import result_for
    from orchestrator.placement.inputs import build_inputs
    from orchestrator.solver.solve import Held, solve

    spec = loaded.spec
    dep = next(d for d in spec.deployments if d.name == deployment)
    demand = max(add_rps, 1e-6) / (1.0 + dep.traffic.headroom)
    traffic = dep.traffic.model_copy(update={"requests_per_second": demand})
    sub_spec = spec.model_copy(update={"deployments": [dep.model_copy(update={"traffic": traffic})]})
    sub = dataclasses.replace(loaded, spec=sub_spec)
    catalog = catalog or load_catalog(sub_spec)
    inp = build_inputs(sub, catalog, objective=objective)
    used = {lim.name: float(sum(g.gpus_per_replica * g.count for g in running
                                if lim.match(SimpleNamespace(provider=g.provider, region=g.region, gpu=g.gpu))))
            for lim in inp.problem.limits}
    fixed = sum(g.usd_per_hour for g in running) * HOURS_PER_MONTH
    sol = solve(inp.problem, objective, held=Held(used, fixed), time_limit=time_limit, tie_break=False)
    if not sol.ok and sol.status != "time_limit":
        raise UserError(f"{deployment}: no place left to add a replica (quotas, inventory, budget or policies rule "
                        "out every candidate)")
    return result_for(sol, inp.problem.deployments[0]).groups


def _same(a: ReplicaGroup, b: ReplicaGroup) -> bool:
    from orchestrator.apply.desired import group_key

    return group_key(a) == group_key(b)


def with_groups(groups: list[ReplicaGroup], added: list[ReplicaGroup]) -> list[ReplicaGroup]:
    """``groups`` plus ``added``: a group of the same configuration grows, another is appended."""
    out = [g.model_copy() for g in groups]
    for a in added:
        same = next((g for g in out if _same(g, a)), None)
        if same is None:
            out.append(a.model_copy(update={"traffic": {}}))
            continue
        same.resize(same.count + a.count)
        same.instances = same.instances + a.instances if same.instances else 0
    return out


def _on_demand(g: ReplicaGroup) -> bool:
    return g.market != "spot"


def without_one(groups: list[ReplicaGroup], floor: float = 0.0) -> tuple[list[ReplicaGroup], ReplicaGroup] | None:
    """``groups`` with one replica of the dearest group removed (per replica $/h), keeping on-demand capacity at
    least ``floor`` × the capacity that stays; None when no replica can go."""
    def cap(gs: list[ReplicaGroup], pred: Any = lambda g: True) -> float:
        return sum(g.capacity_rps * g.count for g in gs if pred(g))

    for g in sorted(groups, key=lambda g: (-g.usd_per_hour / max(g.count, 1), g.region)):
        out = [x.model_copy() for x in groups]
        x = next(x for x in out if _same(x, g))
        x.resize(x.count - 1)
        if x.instances:
            x.instances -= x.instances_per_replica
        out = [y for y in out if y.count > 0]
        if not out:
            return None
        if cap(out, _on_demand) + 1e-9 >= floor * cap(out):
            return out, g
    return None


def replan(plan: Plan, deployment: str, groups: list[ReplicaGroup]) -> Plan:
    """The plan with ``deployment``'s chosen replicas replaced by ``groups`` (its cost updated)."""
    deps: list[DeploymentPlan] = []
    for d in plan.deployments:
        if d.name != deployment:
            deps.append(d)
            continue
        compute = sum(g.usd_per_hour for g in groups)
        egress_h = d.egress_usd_per_month / HOURS_PER_MONTH
        deps.append(d.model_copy(update={"replicas": groups, "usd_per_hour": round(compute + egress_h, 4)}))
    return plan.model_copy(update={"deployments": deps})


def spot_floor(loaded: Any, deployment: str) -> float:
    """The on-demand share of capacity the deployment's spot policy keeps (0 when it has none)."""
    from policies.assign import policies_for

    per_dep, _ = policies_for(loaded.spec)
    dep = next(d for d in loaded.spec.deployments if d.name == deployment)
    floors = [p.floor(dep) for p in per_dep.get(deployment, []) if hasattr(p, "floor")]
    return max(floors, default=0.0) if dep.spot != "forbid" else 0.0
