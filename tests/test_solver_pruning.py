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
