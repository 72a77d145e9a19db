"""load_spec: pydantic errors as located problems, the LoadedSpec API, the design.md example."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import LoadedSpec, load_spec, load_spec_text
from orchestrator.spec.models import Deployment, DeploymentFile, OnPremSite, SLO
from orchestrator.spec.problems import dotted, model_at

FIXTURES = Path(__file__).parent / "fixtures" / "spec"


def _load(tmp_path: Path, text: str, check: bool = True) -> LoadedSpec:
    p = tmp_path / "deploy.yaml"
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_spec(p, check=check)


def _problems(tmp_path: Path, text: str, check: bool = True) -> list[str]:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text, check)
    prefix = f"{tmp_path / 'deploy.yaml'}:"
    out = [str(p) for p in info.value.problems]
    assert all(s.startswith(prefix) for s in out), out
    return [s.removeprefix(prefix) for s in out]


def test_design_example_loads() -> None:
    loaded = load_spec(FIXTURES / "design_example.yaml")
    spec = loaded.spec
    assert [d.name for d in spec.deployments] == ["support-chat", "claims-summarizer"]
    assert spec.deployments[0].quantization == ["bf16", "fp8"]
    assert spec.providers.onprem.sites[0].gpus == {"H100-SXM": 16}
    assert spec.policies["patient-data-on-prem"].kind == "pin"
    assert spec.budget.monthly_usd == 60000
    assert loaded.sha256 == hashlib.sha256((FIXTURES / "design_example.yaml").read_bytes()).hexdigest()
    assert loaded.base_dir == FIXTURES.resolve()


def test_problem_points_at_a_field_or_its_nearest_parent() -> None:
    loaded = load_spec(FIXTURES / "design_example.yaml")
    p = loaded.problem(("deployments", 1, "slo", "tpot_p95_ms"), "no GPU meets this")
    assert (p.line, p.column) == (23, 43)
    assert p.path == "deployments[1].slo.tpot_p95_ms"
    assert str(p) == f"{loaded.path}:23:43: deployments[1].slo.tpot_p95_ms: no GPU meets this"
    # the second deployment has no "data": fall back to the deployment itself (line 20, "- name:")
    q = loaded.problem(("deployments", 1, "data", 0, "region"), "x")
    assert (q.line, q.column) == (20, 5)
    assert loaded.locate(("budget",), prefer_key=True) == (38, 1)


def test_misspelt_key_wrong_type_unknown_model_reported_together(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        version: 1
        project: demo
        deployments:
          - name: chat
            model: llama-3.1-8c
            quantisation: fp8
            traffic:
              requests_per_second: lots
              input_tokens: 1000
              output_tokens: 200
            slo: {ttft_p95_ms: 800, tpot_p95_ms: 60}
        """,
    )
    assert len(found) == 3
    assert found[0].startswith("5:12: deployments[0].model: unknown model 'llama-3.1-8c' (did you mean \"llama-3.1-8b\"")
    assert found[1] == '6:5: deployments[0].quantisation: unknown field "quantisation" (did you mean "quantization"?)'
    assert found[2] == "8:28: deployments[0].traffic.requests_per_second: expected a valid number, found 'lots'"


def test_missing_fields_point_at_the_parent(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        project: demo
        deployments:
          - name: chat
            model: llama-3.1-8b
            slo:
              ttft_p95_ms: 800
        """,
    )
    assert found == [
        '3:5: deployments[0].traffic: missing required field "traffic"',
        '5:5: deployments[0].slo.tpot_p95_ms: missing required field "tpot_p95_ms" (time per output token, p95, ms)',
    ]


def test_negative_and_out_of_range_values(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        project: demo
        deployments:
          - name: chat
            model: llama-3.1-8b
            traffic: {requests_per_second: -3, input_tokens: 0, output_tokens: 10}
            slo: {ttft_p95_ms: 800, tpot_p95_ms: 60}
        budget: {monthly_usd: -100}
        providers:
          aws: {discount: 1.5}
        """,
    )
    assert found == [
        "5:36: deployments[0].traffic.requests_per_second: expected greater than 0, found -3",
        "5:54: deployments[0].traffic.input_tokens: expected greater than 0, found 0",
        "7:23: budget.monthly_usd: expected greater than 0, found -100",
        "9:19: providers.aws.discount: expected less than 1, found 1.5",
    ]


def test_literal_pattern_and_type_messages(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        project: Demo_Project
        deployments:
          - name: chat
            model: llama-3.1-8b
            quantization: [bf16, fp9]
            spot: sometimes
            traffic: {requests_per_second: 1, input_tokens: 10, output_tokens: 10, sources: [{region: us-east-1, share: 1}]}
            slo: [800, 60]
        """,
    )
    assert found[0] == (
        "1:10: project: expected a lowercase name of letters, digits and '-' (at most 63, starting and ending "
        "with a letter or digit), found 'Demo_Project'"
    )
    assert found[1].startswith("5:26: deployments[0].quantization[1]: expected one of 'bf16', 'fp16', 'fp8'")
    assert found[1].endswith("found 'fp9' (did you mean \"fp8\"?)")
    assert found[2].startswith("6:11: deployments[0].spot: expected one of 'forbid', 'allow' or 'prefer', found 'sometimes'")
    assert found[3] == (
        "7:95: deployments[0].traffic.sources[0].region: expected a provider-qualified region such as "
        "aws:us-east-1 or onprem:dc-frankfurt, found 'us-east-1'"
    )
    assert found[4] == "8:10: deployments[0].slo: expected a mapping (key: value fields), found a list of 2"


def test_unknown_field_suggestions_follow_the_model_at_that_path(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        project: demo
        deployments:
          - name: chat
            model: llama-3.1-8b
            traffic: {requests_per_second: 1, input_tokens: 10, output_tokens: 10, sourcs: []}
            slo: {ttft_p95_ms: 800, tpot_p95_ms: 60}
        providers:
          onprem:
            sites:
              - {name: dc1, location: eu-central, gpus: {H100: 1}, cost: {power_usd_per_kwh: 0.2, pu: 1.2}}
          awz: {}
        budgt: {monthly_usd: 5}
        """,
    )
    assert found == [
        '5:76: deployments[0].traffic.sourcs: unknown field "sourcs" (did you mean "sources"?)',
        '10:91: providers.onprem.sites[0].cost.pu: unknown field "pu" (did you mean "pue"?)',
        '11:3: providers.awz: unknown field "awz" (did you mean "aws"?)',
        '12:1: budgt: unknown field "budgt" (did you mean "budget"?)',
    ]


def test_unknown_field_without_close_match_lists_valid_fields(tmp_path: Path) -> None:
    found = _problems(tmp_path, "project: demo\nbudget: {monthly_usd: 5, currency: EUR}\ndeployments: []\n")
    assert '2:26: budget.currency: unknown field "currency"; valid fields: monthly_usd' in found


def test_model_at_walks_lists_dicts_and_optionals() -> None:
    assert model_at(DeploymentFile, ("deployments", 3)) is Deployment
    assert model_at(DeploymentFile, ("deployments", 0, "slo")) is SLO
    assert model_at(DeploymentFile, ("providers", "onprem", "sites", 2)) is OnPremSite
    assert model_at(DeploymentFile, ("deployments", 0, "name")) is None
    assert model_at(DeploymentFile, ("nope",)) is None


def test_dotted_paths() -> None:
    assert dotted(("deployments", 0, "slo", "ttft_p95_ms")) == "deployments[0].slo.ttft_p95_ms"
    assert dotted(("providers", "onprem", "sites", 0, "gpus", "H100-SXM")) == "providers.onprem.sites[0].gpus.H100-SXM"
    assert dotted(("policies", "a b")) == "policies['a b']"


def test_dict_values_and_validators_are_located(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        project: demo
        deployments:
          - {name: a, model: llama-3.1-8b, traffic: {requests_per_second: 1, input_tokens: 1, output_tokens: 1}, slo: {ttft_p95_ms: 1000, tpot_p95_ms: 100}}
        providers:
          onprem:
            sites:
              - name: dc1
                location: eu-central
                gpus: {H100: many, A100: -2}
                cost: {power_usd_per_kwh: 0.2}
        """,
    )
    assert found == ["9:22: providers.onprem.sites[0].gpus.H100: expected a valid integer, found 'many'"]


def test_check_false_skips_semantic_checks(tmp_path: Path) -> None:
    text = (FIXTURES / "minimal.yaml").read_text().replace("llama-3.1-8b", "no-such-model")
    loaded = _load(tmp_path, text, check=False)
    assert loaded.spec.deployments[0].model == "no-such-model"
    assert _problems(tmp_path, text)[0].startswith("5:12: deployments[0].model: unknown model")


def test_load_spec_text_matches_load_spec() -> None:
    text = (FIXTURES / "minimal.yaml").read_text()
    a = load_spec_text(text, FIXTURES / "minimal.yaml")
    b = load_spec(FIXTURES / "minimal.yaml")
    assert a.spec == b.spec and a.sha256 == b.sha256
