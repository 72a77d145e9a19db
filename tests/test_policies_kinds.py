"""Each policy kind: parameters, filters, rows and preferences; and a new kind needs no solver change."""

from __future__ import annotations

from typing import ClassVar

import pytest

from orchestrator.errors import UserError
from orchestrator.solver.model import RowTag
from orchestrator.solver.problem import SolverInput
from orchestrator.solver.solve import solve
from support.synthetic import SpecStub, candidate, deployment, offering
from policies.base import Policy, PolicyParams, make_policy, matches_region
from policies import registry
from policies.registry import kinds, params_model, register

D = SpecStub("d")


def test_all_kinds_are_registered_with_strict_params() -> None:
    assert {"residency", "pin", "exclude", "onprem-first", "spot", "hardware", "budget"} <= set(kinds())
    for k in kinds():
        model = params_model(k)
        assert model is not None and model.model_config.get("extra") == "forbid"


def test_unknown_kind_and_bad_params_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"did you mean \"residency\""):
        make_policy("p", "residencey", {})
    with pytest.raises(UserError, match="regionz"):
        make_policy("p", "residency", {"regionz": ["aws:*"]})
    with pytest.raises(UserError, match="unknown GPU type"):
        make_policy("p", "hardware", {"gpus": ["H1000"]})


def test_region_globs() -> None:
    assert matches_region("aws:eu-west-1", ["aws:eu-*"])
    assert not matches_region("aws:us-east-1", ["aws:eu-*"])
    assert matches_region("onprem:dc-frankfurt", ["onprem:*"])
    assert matches_region("onprem:dc-frankfurt", ["onprem"])


@pytest.mark.parametrize(
    "kind, params, region, gpu, rejected",
    [
        ("residency", {"regions": ["aws:eu-*", "onprem:*"]}, "aws:us-east-1", "H100", True),
        ("residency", {"regions": ["aws:eu-*", "onprem:*"]}, "onprem:dc", "H100", False),
        ("pin", {"providers": ["onprem"]}, "aws:eu-west-1", "H100", True),
        ("pin", {"providers": ["onprem"]}, "onprem:dc", "H100", False),
        ("exclude", {"providers": ["azure"]}, "azure:eastus", "H100", True),
        ("exclude", {"regions": ["aws:us-*"]}, "aws:us-east-1", "H100", True),
        ("exclude", {"regions": ["aws:us-*"]}, "aws:eu-west-1", "H100", False),
        ("hardware", {"gpus": ["H100", "h200"]}, "aws:eu-west-1", "L4", True),
        ("hardware", {"gpus": ["H100-SXM"]}, "aws:eu-west-1", "H100", False),
    ],
)
def test_filters(kind: str, params: dict, region: str, gpu: str, rejected: bool) -> None:
    p = make_policy("p", kind, params)
    why = p.reject(D, candidate("d", offering(region, 1.0, gpu=gpu), 1))
    assert (why is not None) == rejected
    if why:
        assert kind in why and "(p)" in why  # the reason names the kind and the policy


def test_exclude_needs_something() -> None:
    with pytest.raises(UserError):
        make_policy("p", "exclude", {})


def test_onprem_first_uses_onprem_before_cheaper_cloud() -> None:
    site = offering("onprem:dc", 30.0, gpu="H100", gpu_count=8, max_gpus=8)
    cloud = offering("aws:r", 10.0, gpu="H100", gpu_count=8)
    cands = [candidate("d", site, 1.0), candidate("d", cloud, 1.0)]
    from orchestrator.solver.problem import ResourceLimit

    inv = [ResourceLimit("inv", "inventory", 8, lambda c: c.region == "onprem:dc")]
    plain = solve(SolverInput([deployment("d", 12, cands)], inv), "cost")
    assert plain.units == {cands[1]: 2}  # the cloud is cheaper per node here
    pol = make_policy("first", "onprem-first", {})
    dep = deployment("d", 12, cands, policies=[pol], spec=D)
    sol = solve(SolverInput([dep], inv), "cost")
    assert sol.units == {cands[0]: 1, cands[1]: 1}  # the whole site, then the cloud for the rest


def test_budget_policy_is_per_deployment() -> None:
    a = [candidate("a", offering("aws:r", 1.0), 1)]
    b = [candidate("b", offering("aws:r", 1.0), 1)]
    pol = make_policy("cap-a", "budget", {"monthly_usd": 3000})
    deps = [deployment("a", 4, a, policies=[pol], spec=SpecStub("a")), deployment("b", 10, b)]
    assert solve(SolverInput(deps), "cost").ok  # a needs $2,920, b is not capped
    deps[0] = deployment("a", 5, a, policies=[pol], spec=SpecStub("a"))
    assert solve(SolverInput(deps), "cost").status == "infeasible"


def test_a_new_kind_plugs_in_without_touching_the_solver() -> None:
    class MaxReplicasParams(PolicyParams):
        max_units: int

    @register
    class MaxReplicas(Policy):
        kind: ClassVar[str] = "test-max-units"
        Params: ClassVar[type[PolicyParams]] = MaxReplicasParams

        def add_constraints(self, builder, deployment, candidates):  # noqa: ANN001, ANN201
            builder.add_row({builder.units(c): 1.0 for c in candidates}, 0, self.params.max_units, RowTag("policy", "max", None))

    cands = [candidate("d", offering("aws:r", 1.0), 1), candidate("d", offering("aws:r", 5.0, gpu="B200"), 4)]
    try:
        pol = make_policy("cap", "test-max-units", {"max_units": 2})
    finally:
        registry._KINDS.pop("test-max-units", None)  # keep the registry clean for other tests
    free = solve(SolverInput([deployment("d", 6, cands)]), "cost")
    assert free.units == {cands[0]: 6}
    capped = solve(SolverInput([deployment("d", 6, cands, policies=[pol], spec=D)]), "cost")
    assert capped.units == {cands[1]: 2}


def test_policy_verdicts_shared_by_what_each_kind_reads_match_one_verdict_per_candidate(monkeypatch) -> None:
    """Filters are asked once per combination of the fields a kind reads; reading everything gives the same candidates."""
    from pathlib import Path

    from orchestrator.catalog.load import load_catalog
    from orchestrator.placement.inputs import build_inputs
    from orchestrator.spec.loader import load_spec

    loaded = load_spec(Path(__file__).parents[1] / "examples" / "multi-region.yaml")
    catalog = load_catalog(loaded.spec)

    def described() -> dict[str, list[str]]:
        inp = build_inputs(loaded, catalog)
        return {d: sorted(c.describe() for c in dc.candidates) for d, dc in inp.candidates.items()}

    shared = described()
    for kind in kinds():
        monkeypatch.setattr(registry.get_kind(kind), "reads", Policy.reads)
    assert described() == shared
    assert any(shared.values())
