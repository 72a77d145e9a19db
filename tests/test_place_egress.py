"""Egress accounting end to end: the data source's region pulls the placement only when egress outweighs price."""

from __future__ import annotations

import pytest

from orchestrator.placement import place
from orchestrator.spec.loader import load_spec_text

SPEC = """\
version: 1
project: egress
deployments:
  - name: rag
    model: llama-3.1-8b
    quantization: [fp8]
    traffic: {requests_per_second: 10, input_tokens: 1000, output_tokens: 200, sources: [{region: aws:us-east-1, share: 1.0}]}
    slo: {ttft_p95_ms: 2000, tpot_p95_ms: 60}
    data: [{uri: x://index, region: %(region)s, gb_per_month: %(gb)s}]
providers:
  aws: {regions: [us-east-1]}
  gcp: {regions: [us-central1]}
"""


def _regions(region: str, gb: float) -> tuple[set[str], float]:
    plan = place(load_spec_text(SPEC % {"region": region, "gb": gb}, "e.yaml", check=False), with_fallbacks=False)
    assert plan.status == "optimal"
    d = plan.deployments[0]
    return {g.region for g in d.replicas}, d.egress_usd_per_month


def test_small_data_does_not_move_the_placement() -> None:
    a, _ = _regions("aws:us-east-1", 1)
    b, _ = _regions("gcp:us-central1", 1)
    assert a == b  # price decides


@pytest.mark.parametrize("region", ["aws:us-east-1", "gcp:us-central1"])
def test_large_data_pulls_the_placement_to_its_region(region: str) -> None:
    chosen, egress = _regions(region, 200_000)  # 200 TB/month: ~$18k/month across clouds
    assert chosen == {region}
    assert egress < 100  # only the responses leave the region


def test_data_egress_is_priced_by_the_tariff() -> None:
    chosen, egress = _regions("aws:us-east-1", 1000)
    if chosen == {"gcp:us-central1"}:
        # across clouds: the source cloud's internet price (AWS first tier $0.09/GB) on 1,000 GB
        assert egress == pytest.approx(90, abs=15)
    else:
        assert egress < 15
