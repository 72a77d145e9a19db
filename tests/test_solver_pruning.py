"""Dominance pruning (within and across regions) never changes the optimum: pruned vs unpruned inputs."""

from __future__ import annotations

import pytest

from orchestrator.solver.inputs import build_inputs
from orchestrator.solver.solve import solve
from orchestrator.solver.synthetic import LoadedStub, random_catalog, random_spec


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

    from orchestrator.candidates import _pareto
    from orchestrator.solver.inputs import prune_across_regions
    from orchestrator.solver.problem import SolverInput
    from orchestrator.solver.synthetic import candidate, deployment, offering

    kept = _pareto(np.array([0, 1]), np.zeros(2, int), np.zeros(2, bool), np.array([10.0, 5.9]), np.array([10.0, 6.0]),
                   np.zeros(2), np.ones(2), np.full(2, 100.0), np.ones(2, np.int64), exact_ttft=False, carbon=False)
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
