"""Writing new traffic into a deployment file: in place (comments, layout kept) or, where an anchor shares it,
from the data; the result always reads back as a valid file holding exactly the new values."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec_text
from orchestrator.spec.traffic_edit import scalar, with_traffic

HEAD = "version: 1\nproject: acme\ndeployments:\n"
DEP = """\
  - name: {name}
    model: llama-3.1-8b-instruct
    traffic: {traffic}
    slo: {{ttft_p95_ms: 1500, tpot_p95_ms: 60}}
"""


def _traffic(text: str, name: str):  # type: ignore[no-untyped-def]
    return next(d for d in load_spec_text(text, "x.yaml").spec.deployments if d.name == name).traffic


def test_flow_mapping_edited_in_place() -> None:
    src = HEAD + DEP.format(name="a", traffic="{requests_per_second: 5, input_tokens: 2000, output_tokens: 200}  # x")
    out, kept = with_traffic(src.encode(), "x.yaml", {"a": {"requests_per_second": 0.0001234, "input_tokens": 7}})
    assert kept and out == src.replace("5,", "0.0001234,").replace("2000", "7")
    t = _traffic(out, "a")
    assert (t.requests_per_second, t.input_tokens, t.output_tokens) == (0.0001234, 7, 200)


def test_block_sources_keep_their_style_and_indent() -> None:
    traffic = ("\n      requests_per_second: 5\n      input_tokens: 10\n      output_tokens: 10\n      sources:\n"
               "        - region: aws:us-east-1   # US\n          share: 0.5\n        - {region: aws:eu-west-1, share: 0.5}"
               "  # EU\n    # a comment before slo")
    src = HEAD + DEP.format(name="a", traffic=traffic)
    new = [{"region": "aws:eu-west-1", "share": 0.9}, {"region": "aws:us-east-1", "share": 0.1}]
    out, kept = with_traffic(src.encode(), "x.yaml", {"a": {"sources": new}})
    assert kept and "        - {region: aws:eu-west-1, share: 0.9}\n        - {region: aws:us-east-1, share: 0.1}" in out
    assert "# a comment before slo" in out and "# EU" in out
    assert [(s.region, s.share) for s in _traffic(out, "a").sources] == [("aws:eu-west-1", 0.9), ("aws:us-east-1", 0.1)]


def test_shared_anchor_is_rewritten_from_data_not_edited_for_both() -> None:
    src = (HEAD + DEP.format(name="a", traffic="&t {requests_per_second: 5, input_tokens: 10, output_tokens: 10}")
           + DEP.format(name="b", traffic="*t"))
    out, kept = with_traffic(src.encode(), "x.yaml", {"a": {"requests_per_second": 1.5}})
    assert not kept
    assert _traffic(out, "a").requests_per_second == 1.5 and _traffic(out, "b").requests_per_second == 5


def test_invalid_values_are_refused_with_the_located_problem() -> None:
    src = HEAD + DEP.format(name="a", traffic="{requests_per_second: 5, input_tokens: 10, output_tokens: 10}")
    with pytest.raises(SpecError) as e:
        with_traffic(src.encode(), "x.yaml", {"a": {"input_tokens": -3}})
    assert "x.yaml:" in str(e.value) and "input_tokens" in str(e.value)


@pytest.mark.parametrize(("value", "text"), [(4.0, "4.0"), (1e-06, "0.000001"), (123456.0, "123456.0"), (12, "12")])
def test_numbers_never_use_an_exponent(value: float, text: str) -> None:
    assert scalar(value) == text


def test_checked_as_the_file_it_becomes_relative_paths_included(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples"
    raw = (examples / "local.yaml").read_bytes()  # model: tiny-llama/config.json, relative to the file
    out, kept = with_traffic(raw, str(examples / "local.measured.yaml"), {"tiny": {"requests_per_second": 0.5}})
    assert kept and _traffic_at(out, examples / "x.yaml", "tiny").requests_per_second == 0.5
    with pytest.raises(SpecError) as e:  # elsewhere, the model's config.json is not there
        with_traffic(raw, str(tmp_path / "out.yaml"), {"tiny": {"requests_per_second": 0.5}})
    assert f"{tmp_path / 'out.yaml'}:" in str(e.value) and "model config file not found" in str(e.value)


def _traffic_at(text: str, path, name: str):  # type: ignore[no-untyped-def]
    return next(d for d in load_spec_text(text, path).spec.deployments if d.name == name).traffic
