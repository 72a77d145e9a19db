"""Semantic checks: shares, names, models, regions, GPUs, policies, SLOs; all reported together."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import LoadedSpec, load_spec

HEAD = """\
version: 1
project: demo
deployments:
"""
DEPLOYMENT = """\
  - name: {name}
    model: {model}
    traffic:
      requests_per_second: 5
      input_tokens: 1000
      output_tokens: 200
{extra}    slo: {{ttft_p95_ms: {ttft}, tpot_p95_ms: {tpot}}}
"""


def deployment(name: str = "chat", model: str = "llama-3.1-8b", extra: str = "", ttft: float = 1000, tpot: float = 50) -> str:
    return DEPLOYMENT.format(name=name, model=model, extra=textwrap.indent(textwrap.dedent(extra), "    "), ttft=ttft, tpot=tpot)


def _load(tmp_path: Path, text: str) -> LoadedSpec:
    p = tmp_path / "deploy.yaml"
    p.write_text(text, encoding="utf-8")
    return load_spec(p)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text)
    prefix = f"{tmp_path / 'deploy.yaml'}:"
    return [str(p).removeprefix(prefix) for p in info.value.problems]


def at(text: str, needle: str, nth: int = 1) -> str:
    """'line:column' (1-based) of the nth occurrence of needle in text: the expected location."""
    idx = -1
    for _ in range(nth):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return f"{line}:{col}"


def with_sources(*pairs: tuple[str, float], name: str = "chat") -> str:
    """A deployment whose traffic has these sources (inserted under traffic:)."""
    rows = "".join(f"        - {{region: {r}, share: {s}}}\n" for r, s in pairs)
    text = deployment(name=name)
    return text.replace("      output_tokens: 200\n", "      output_tokens: 200\n      sources:\n" + rows)


def test_valid_file_passes(tmp_path: Path) -> None:
    loaded = _load(tmp_path, HEAD + with_sources(("aws:us-east-1", 0.7), ("gcp:europe-west4", 0.3)))
    assert [s.share for s in loaded.spec.deployments[0].traffic.sources] == [0.7, 0.3]


def test_shares_must_sum_to_one(tmp_path: Path) -> None:
    text = HEAD + with_sources(("aws:us-east-1", 0.6), ("aws:eu-west-1", 0.3))
    found = _problems(tmp_path, text)
    assert found == [f"{at(text, '- {region')}: deployments[0].traffic.sources: traffic shares sum to 0.9; they must sum to 1 (±0.001)"]


def test_shares_within_tolerance_pass(tmp_path: Path) -> None:
    _load(tmp_path, HEAD + with_sources(("aws:us-east-1", 0.3333), ("aws:eu-west-1", 0.3333), ("gcp:us-central1", 0.3334)))


def test_duplicate_source_region(tmp_path: Path) -> None:
    text = HEAD + with_sources(("aws:us-east-1", 0.5), ("aws:us-east-1", 0.5))
    found = _problems(tmp_path, text)
    assert found == [f'{at(text, "aws:us-east-1", 2)}: deployments[0].traffic.sources[1].region: region "aws:us-east-1" is listed twice; merge the shares']


def test_omitted_sources_are_left_to_the_solver(tmp_path: Path) -> None:
    assert _load(tmp_path, HEAD + deployment()).spec.deployments[0].traffic.sources == []


def test_duplicate_deployment_names(tmp_path: Path) -> None:
    text = HEAD + deployment() + deployment()
    found = _problems(tmp_path, text)
    assert found == [f'{at(text, "chat", 2)}: deployments[1].name: duplicate deployment name "chat" (also deployments[0])']


def test_unknown_model_with_suggestion(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, HEAD + deployment(model="mixtral-8x7"))
    assert msg.startswith("5:12: deployments[0].model: unknown model 'mixtral-8x7' (did you mean \"mixtral-8x7b\"")


def test_model_config_path_missing(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, HEAD + deployment(model="models/mine/config.json"))
    assert msg == f"5:12: deployments[0].model: model config file not found: {tmp_path / 'models/mine/config.json'}"


def test_model_config_path_relative_to_the_file(tmp_path: Path) -> None:
    src = Path(__file__).parent / "fixtures" / "hf" / "llama-3.1-8b.json"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(src.read_text())
    loaded = _load(tmp_path, HEAD + deployment(model="m/config.json"))
    assert loaded.spec.deployments[0].model == "m/config.json"


def test_model_config_path_not_json(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (msg,) = _problems(tmp_path, HEAD + deployment(model="bad.json"))
    assert msg.startswith("5:12: deployments[0].model: ") and "not valid JSON" in msg


def test_max_model_len_beyond_context(tmp_path: Path) -> None:
    text = HEAD + deployment(model="mistral-7b", extra="max_model_len: 10000000\n")
    (msg,) = _problems(tmp_path, text)
    assert msg.startswith(f"{at(text, '10000000')}: deployments[0].max_model_len: max_model_len 10000000 exceeds mistral-7b's context window")


def test_unknown_regions_everywhere(tmp_path: Path) -> None:
    text = HEAD + with_sources(("aws:us-east-9", 1.0)).replace(
        "    slo:", "    data:\n      - {region: gcp:europe-west44, gb_per_month: 10}\n    slo:"
    )
    text += "providers:\n  aws:\n    regions: [us-east-1, eu-wst-1, aws:us-west-2]\n    quotas: [{max_gpus: 8, region: mars-1}]\n"
    found = _problems(tmp_path, text)
    assert found[0].startswith(f'{at(text, "aws:us-east-9")}: deployments[0].traffic.sources[0].region: unknown region "aws:us-east-9" (did you mean ')
    assert '"aws:us-east-1"' in found[0]
    assert found[1].startswith(f'{at(text, "gcp:europe-west44")}: deployments[0].data[0].region: unknown region "gcp:europe-west44" (did you mean "gcp:europe-west4"')
    assert found[2].startswith(f'{at(text, "eu-wst-1")}: providers.aws.regions[1]: unknown aws region "eu-wst-1" (did you mean "eu-west-1"')
    assert found[3] == f'{at(text, "aws:us-west-2")}: providers.aws.regions[2]: write "us-west-2": regions under providers.aws are not prefixed'
    assert found[4].startswith(f'{at(text, "mars-1")}: providers.aws.quotas[0].region: unknown aws region "mars-1"')
    assert len(found) == 5


ONPREM = """\
providers:
  onprem:
    sites:
      - name: dc-frankfurt
        location: eu-central
        gpus: {gpus}
        cost: {{power_usd_per_kwh: 0.2}}
"""


def test_onprem_and_local_regions_are_known_only_when_declared(tmp_path: Path) -> None:
    pairs = (("onprem:dc-frankfurt", 0.5), ("local:this-machine", 0.5))
    found = _problems(tmp_path, HEAD + with_sources(*pairs))
    assert [f.split(": ", 2)[2].split(" (")[0].split(";")[0] for f in found] == [
        'unknown region "onprem:dc-frankfurt"',
        'unknown region "local:this-machine"',
    ]
    _load(tmp_path, HEAD + with_sources(*pairs) + ONPREM.format(gpus="{H100-SXM: 16}") + "  local: {}\n")


def test_unknown_gpu_types(tmp_path: Path) -> None:
    text = HEAD + deployment() + ONPREM.format(gpus="{H100-SXM: 8, H10: 8, CPU: 4}")
    text += "  gcp:\n    quotas: [{max_gpus: 8, gpu: A100-80GB}, {max_gpus: 4, gpu: B300}]\n"
    found = _problems(tmp_path, text)
    assert found[0].startswith(f'{at(text, "H10:")}: providers.onprem.sites[0].gpus.H10: unknown GPU type "H10" (did you mean "H100"')
    assert found[1].startswith(f'{at(text, "CPU")}: providers.onprem.sites[0].gpus.CPU: unknown GPU type "CPU"')
    assert found[2].startswith(f'{at(text, "B300")}: providers.gcp.quotas[1].gpu: unknown GPU type "B300"')
    assert "CPU" not in found[2].split("known: ")[1]
    assert len(found) == 3


POLICIES = """\
policies:
  on-prem-only: {kind: pin, providers: [onprem]}
"""


def test_undefined_policy(tmp_path: Path) -> None:
    text = HEAD + deployment(extra="policies: [on-prem-onyl]\n") + POLICIES
    found = _problems(tmp_path, text)
    assert found == [
        f'{at(text, "on-prem-onyl")}: deployments[0].policies[0]: undefined policy "on-prem-onyl" (did you mean "on-prem-only"?); '
        "defined under policies: on-prem-only"
    ]


def test_unknown_policy_kind_and_bad_params(tmp_path: Path) -> None:
    from policies.registry import kinds

    assert "pin" in kinds()
    text = HEAD + deployment() + "policies:\n  a: {kind: pinn, providers: [onprem]}\n  b: {kind: pin, provider: [aws]}\n  c:\n    kind: pin\n    providers: []\n"
    found = _problems(tmp_path, text)
    assert found[0].startswith(f'{at(text, "pinn")}: policies.a.kind: unknown policy kind "pinn" (did you mean "pin"?); known kinds: ')
    assert found[1] == f"{at(text, 'b: {kind')}: policies.b.providers: missing required field \"providers\" (aws | gcp | azure | onprem | local)"
    assert found[2] == f'{at(text, "provider:")}: policies.b.provider: unknown field "provider" (did you mean "providers"?)'
    assert found[3].startswith(f"{at(text, '[]')}: policies.c.providers: ") and "at least 1 item" in found[3]
    assert len(found) == 4


def test_policy_without_kind(tmp_path: Path) -> None:
    text = HEAD + deployment() + "policies:\n  a: {providers: [onprem]}\n"
    found = _problems(tmp_path, text)
    assert found == [f"{at(text, 'a: {')}: policies.a.kind: missing required field \"kind\""]


def test_checks_run_on_the_valid_parts_of_a_broken_file(tmp_path: Path) -> None:
    broken = deployment(name="Bad_Name", model="llama-3.1-8bb").replace("requests_per_second: 5", "requests_per_second: -1")
    text = HEAD + broken + with_sources(("aws:us-east-1", 0.5), name="chat2")
    found = _problems(tmp_path, text)
    assert [f.split(": ")[0] + ": " + f.split(": ")[1] for f in found] == [
        f"{at(text, 'Bad_Name')}: deployments[0].name",
        f"{at(text, 'llama-3.1-8bb')}: deployments[0].model",
        f"{at(text, '-1')}: deployments[0].traffic.requests_per_second",
        f"{at(text, '- {region')}: deployments[1].traffic.sources",
    ]


def test_slo_check_with_a_stub_performance_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check's own logic, independent of the real performance model's numbers."""
    import orchestrator.perf as perf

    calls = []

    class Best:
        tpot_ms, ttft_ms, gpu, gpus = 11.2, 90.0, "H200", 8

        def describe(self) -> str:
            return "11.2 ms on 8×H200 (fp8)"

        def describe_ttft(self) -> str:
            return "90 ms on 8×H200 (fp8)"

    def fake(model, quantizations, input_tokens, output_tokens):  # noqa: ANN001, ANN202
        calls.append((model.name, quantizations, input_tokens, output_tokens))
        return Best()

    monkeypatch.setattr(perf, "best_achievable", fake, raising=False)
    extra = "quantization: [bf16, fp8]\n"
    text = HEAD + deployment(model="llama-3.1-70b", extra=extra, ttft=50, tpot=5)
    found = _problems(tmp_path, text)
    assert calls == [("llama-3.1-70b", ["bf16", "fp8"], 1000, 200)]
    assert found == [
        f"{at(text, '50,')}: deployments[0].slo.ttft_p95_ms: ttft_p95_ms 50 is below what any GPU reaches for llama-3.1-70b "
        "(fastest: 90 ms on 8×H200 (fp8))",
        f"{at(text, '5}')}: deployments[0].slo.tpot_p95_ms: tpot_p95_ms 5 is below what any GPU reaches for llama-3.1-70b "
        "(fastest: 11.2 ms on 8×H200 (fp8))",
    ]
    _load(tmp_path, HEAD + deployment(model="llama-3.1-70b", extra=extra, ttft=90, tpot=11.2))


def test_slo_no_gpu_could_meet_with_the_real_performance_model(tmp_path: Path) -> None:
    text = HEAD + deployment(model="llama-3.1-70b", tpot=0.5)
    found = _problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith(f"{at(text, '0.5}')}: deployments[0].slo.tpot_p95_ms: tpot_p95_ms 0.5 is below what any GPU reaches for llama-3.1-70b (fastest: ")
    _load(tmp_path, HEAD + deployment(model="llama-3.1-70b", tpot=200, ttft=20000))


def test_model_that_fits_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.perf as perf

    def fits_nowhere(model, quantizations, input_tokens, output_tokens):  # noqa: ANN001, ANN202
        raise ValueError(f"{model.name} fits on no known GPU with up to 8 GPUs and {quantizations}")

    monkeypatch.setattr(perf, "best_achievable", fits_nowhere, raising=False)
    text = HEAD + deployment(model="llama-3.1-405b", extra="quantization: int4\n")
    found = _problems(tmp_path, text)
    assert found == [f"{at(text, 'llama-3.1-405b')}: deployments[0].model: llama-3.1-405b fits on no known GPU with up to 8 GPUs and ['int4']"]


def test_region_check_needs_the_catalog(tmp_path: Path) -> None:
    import orchestrator.catalog.regions as regions
    assert "aws:us-east-1" in regions.all_regions()
    found = _problems(tmp_path, HEAD + with_sources(("aws:nowhere-1", 1)))
    assert 'unknown region "aws:nowhere-1"' in found[0]

