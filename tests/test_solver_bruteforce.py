"""The MILP against exhaustive enumeration of unit counts on small random instances."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from orchestrator.placement.candidates import HOURS_PER_MONTH
from orchestrator.solver.problem import ResourceLimit, SolverInput
from orchestrator.solver.solve import SolveStrategy, solve
from support.synthetic import candidate, deployment, offering

REGIONS = ["aws:r1", "aws:r2", "gcp:r3"]


def _instance(seed: int):
    rng = random.Random(seed)
    cands = []
    for k in range(rng.randint(2, 4)):
        region = rng.choice(REGIONS)
        o = offering(region, round(rng.uniform(1, 10), 2), gpu=rng.choice(["H100", "L4"]), instance_type=f"t{k}")
        cands.append(candidate("d", o, round(rng.uniform(1, 6), 2), ttft_ms=rng.choice([100, 400])))
    sources = [("u1", 0.6), ("u2", 0.4)]
    rtt = {(s, r): rng.choice([10, 50, 700]) for s, _ in sources for r in REGIONS}
    data = {r: round(rng.uniform(0, 3000), 1) for r in REGIONS if rng.random() < 0.6}
    dep = deployment("d", round(rng.uniform(2, 12), 1), cands, sources=sources, rtt=rtt, ttft_slo_ms=600,
                     headroom=rng.choice([0.0, 0.2]), data_egress=data)
    quota = rng.choice([None, rng.randint(2, 6)])
    limits = [ResourceLimit("q", "quota", quota, lambda c: c.gpu == "H100")] if quota else []
    return dep, limits


def _brute(dep, limits) -> float | None:
    cands = dep.candidates
    need = dep.rps * (1 + dep.headroom)
    demand = {s: dep.rps * sh for s, sh in dep.sources}
    reach = [{s for k, (s, _) in enumerate(dep.sources) if dep.rtt_ms[k][i] + c.ttft_ms <= dep.ttft_slo_ms} for i, c in enumerate(cands)]
    ubs = [math.ceil(need / c.rps_per_unit) + 1 for c in cands]
    best = None
    for units in itertools.product(*[range(u + 1) for u in ubs]):
        cap = [u * c.rps_per_unit / (1 + dep.headroom) for u, c in zip(units, cands)]
        # Hall's condition on the two user regions (a transportation problem)
        ok = True
        for subset in ([("u1")], [("u2")], ["u1", "u2"]):
            avail = sum(cp for cp, rs in zip(cap, reach) if rs & set(subset))
            if avail + 1e-9 < sum(demand[s] for s in subset):
                ok = False
        if not ok:
            continue
        if any(sum(u * c.gpus_per_unit for u, c in zip(units, cands) if lim.match(c)) > lim.max_gpus for lim in limits):
            continue
        cost = sum(u * c.usd_per_unit_hour * HOURS_PER_MONTH for u, c in zip(units, cands))
        cost += sum(dep.data_egress_usd_month.get(r, 0.0) for r in {c.region for u, c in zip(units, cands) if u > 0})
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_milp_matches_brute_force(seed: int) -> None:
    dep, limits = _instance(seed)
    expected = _brute(dep, limits)
    sol = solve(SolverInput([dep], limits), "cost")
    if expected is None:
        assert sol.status == "infeasible"
        return
    assert sol.ok, sol.status
    assert sol.values["cost"] == pytest.approx(expected, rel=2e-4)


@pytest.mark.parametrize("seed", range(12))
def test_decomposition_matches_the_joint_milp(seed: int) -> None:
    """Deployments solved one by one (then checked against quotas/budget) give the joint optimum."""
    from support.synthetic import SpecStub
    from policies.base import make_policy

    rng = random.Random(1000 + seed)
    deps = []
    for k in range(3):
        dep, _ = _instance(seed * 10 + k)
        name = f"d{k}"
        for c in dep.candidates:
            c.deployment = name
        spot = rng.random() < 0.3
        pols = [make_policy("spot", "spot", {"min_failure_domains": 1})] if spot else []
        deps.append(deployment(name, dep.rps, dep.candidates, sources=dep.sources,
                               rtt={(s, c.region): dep.rtt_ms[i][j] for i, (s, _) in enumerate(dep.sources) for j, c in enumerate(dep.candidates)},
                               ttft_slo_ms=10_000, headroom=dep.headroom, data_egress=dep.data_egress_usd_month,
                               policies=pols, spec=SpecStub(name)))
    limits = [ResourceLimit("h100", "quota", rng.randint(2, 12), lambda c: c.gpu == "H100")]
    budget = [make_policy("b", "budget", {"monthly_usd": rng.uniform(5_000, 60_000)})]
    joint = solve(SolverInput(deps, limits, budget), "cost", strategy=SolveStrategy(decompose=False))
    split = solve(SolverInput(deps, limits, budget), "cost", strategy=SolveStrategy(decompose=True))
    assert joint.status == split.status
    if joint.ok:
        assert split.values["cost"] == pytest.approx(joint.values["cost"], rel=2e-4)
