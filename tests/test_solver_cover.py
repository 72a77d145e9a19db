"""The unit cover rows (model._add_cover_rows) only restate what demand and capacity rows imply: with and
without them the MILP has the same optimum, on random instances with partial reach, spot and fixed charges."""

from __future__ import annotations

import random

import pytest

from orchestrator.solver import model
from orchestrator.solver.problem import SolverInput
from orchestrator.solver.solve import solve
from support.synthetic import SpecStub, candidate, deployment, offering

REGIONS = ["aws:r1", "aws:r2", "gcp:r3", "azure:r4"]


def _instance(seed: int) -> SolverInput:
    from policies.base import make_policy

    rng = random.Random(seed)
    deps = []
    for name in ("a", "b"):
        cands = []
        for k in range(rng.randint(3, 7)):
            o = offering(rng.choice(REGIONS), round(rng.uniform(1, 10), 2), gpu=rng.choice(["H100", "L4"]),
                         spot=round(rng.uniform(0.3, 3), 2), instance_type=f"{name}{k}")
            market = rng.choice(["on_demand", "spot"])
            cands.append(candidate(name, o, round(rng.uniform(1, 6), 2), ttft_ms=rng.choice([100, 400]), market=market))
        sources = [("u1", 0.7), ("u2", 0.3)]
        rtt = {(s, r): rng.choice([10, 50, 700]) for s, _ in sources for r in REGIONS}
        data = {r: round(rng.uniform(0, 3000), 1) for r in REGIONS if rng.random() < 0.6}
        pols = [make_policy("spot", "spot", {"min_failure_domains": rng.choice([1, 2])})]
        deps.append(deployment(name, round(rng.uniform(2, 15), 1), cands, sources=sources, rtt=rtt, ttft_slo_ms=600,
                               headroom=rng.choice([0.0, 0.2]), data_egress=data, response_usd=rng.choice([0.0, 5.0]),
                               policies=pols, spec=SpecStub(name)))
    return SolverInput(deps)


@pytest.mark.parametrize("seed", range(25))
def test_cover_rows_keep_the_optimum(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with_rows = solve(_instance(seed), "cost", tie_break=False)
    monkeypatch.setattr(model, "_add_cover_rows", lambda *a, **k: None)
    without = solve(_instance(seed), "cost", tie_break=False)
    assert with_rows.status == without.status
    if with_rows.ok:
        assert with_rows.values["cost"] == pytest.approx(without.values["cost"], rel=2e-4)


def test_cover_rows_are_in_the_model() -> None:
    inp = _instance(3)
    b = model.build(inp)
    labels = [t.label for t in b.row_tags if t.kind == "capacity" and "cover" in t.label]
    assert len(labels) >= len(inp.deployments)  # one total row each, plus one per partly answered user region
