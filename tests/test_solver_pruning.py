"""Dominance pruning (within and across regions) never changes the optimum: pruned vs unpruned inputs."""

from __future__ import annotations

import pytest
from support.synthetic import LoadedStub, random_catalog, random_spec

from orchestrator.placement.inputs import build_inputs
from orchestrator.solver.solve import solve


@pytest.mark.parametrize("seed", range(4))
def test_pruned_candidates_keep_the_optimum(seed: int) -> None:
    cat = random_catalog(60, seed, regions_per_100=8)
    spec = random_spec(3, list(cat.regions), seed)
    pruned = build_inputs(LoadedStub(spec), cat)
    full = build_inputs(LoadedStub(spec), cat, prune=False)
    assert len(pruned.problem.candidates) < len(full.problem.candidates)
    a = solve(pruned.problem, "cost", tie_break=False)
    b = solve(full.problem, "cost", tie_break=False)
    assert a.status == b.status
    if a.ok:
        assert a.values["cost"] == pytest.approx(b.values["cost"], rel=2e-4)


def test_a_bigger_unit_that_rounds_better_is_not_pruned() -> None:
    """B is cheaper per req/s, but 10 req/s take one A unit ($10/h) or two B units ($11.80/h): A must stay."""
    import numpy as np
    from support.synthetic import candidate, deployment, offering

    from orchestrator.placement.pruning import (
        DominanceColumns,
        pareto,
        prune_across_regions,
    )
    from orchestrator.solver.problem import SolverInput

    cols = DominanceColumns(unit=np.array([10.0, 5.9]), capacity=np.array([10.0, 6.0]), co2=np.zeros(2), gpus=np.ones(2),
                            ttft=np.full(2, 100.0), reach=np.ones(2, np.int64), counted=np.zeros(2, bool))
    kept = pareto(np.array([0, 1]), np.zeros(2, int), cols, exact_ttft=False, carbon=False)
    assert kept.tolist() == [0, 1]
    a = candidate("d", offering("aws:r1", 10.0), 10.0)
    b = candidate("d", offering("aws:r2", 5.9), 6.0)
    d = prune_across_regions(deployment("d", 10.0, [a, b]), lambda c: False)
    assert len(d.candidates) == 2
    sol = solve(SolverInput([d]), "cost", tie_break=False)
    assert sol.values["cost"] == pytest.approx(10.0 * 730)
    # a B that replaces A unit for unit at a lower price still prunes it
    c = candidate("d", offering("aws:r2", 9.0), 10.0)
    assert [x.region for x in prune_across_regions(deployment("d", 10.0, [a, c]), lambda c: False).candidates] == ["aws:r2"]


def test_cross_region_dominance_is_the_same_in_any_block_size(monkeypatch) -> None:  # noqa: ANN001
    import numpy as np

    from orchestrator.placement import pruning as inputs
    from orchestrator.placement.pruning import CandidateRows

    rng = np.random.default_rng(1)
    n, s = 200, 2
    regions = np.array([f"aws:r{int(x)}" for x in rng.integers(0, 6, n)])
    rows = CandidateRows(regions, np.array(["on_demand", "spot"])[rng.integers(0, 2, n)], np.round(rng.uniform(1, 20, n), 1),
                         rng.choice([1.0, 2.0, 4.0, 8.0], n), rng.integers(1, 4, n).astype(np.int64), np.zeros(n),
                         rng.random(n) < 0.1)
    per_region = {r: 0.0 if r.endswith(("0", "1")) else 365.0 for r in set(regions)}
    data = np.array([per_region[r] for r in regions])
    resp = np.round(rng.uniform(0, 1, (s, n)), 1)
    whole = inputs.beaten_across_regions(rows, data, resp)
    monkeypatch.setattr(inputs, "BLOCK", 7)
    assert (inputs.beaten_across_regions(rows, data, resp) == whole).all()
    assert 0 < whole.sum() < n
