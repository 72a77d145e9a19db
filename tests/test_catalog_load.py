"""load_catalog: spec overrides (providers, regions, discount, custom prices, quotas, on-prem, local) and the cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.load import LOCAL_REGION_ID, QuotaRule, load_catalog
from orchestrator.catalog.offerings import GPU_CLOUDS, cached_offerings, effective_offerings, snapshot_offerings, write_cache
from orchestrator.errors import UserError
from orchestrator.spec.models import DeploymentFile


def spec(providers: dict[str, Any] | None, sources: list[dict[str, Any]] | None = None) -> DeploymentFile:
    body: dict[str, Any] = {
        "project": "p",
        "deployments": [
            {
                "name": "chat",
                "model": "llama-3.1-8b",
                "traffic": {"requests_per_second": 1, "input_tokens": 100, "output_tokens": 50, "sources": sources or []},
                "slo": {"ttft_p95_ms": 1000, "tpot_p95_ms": 100},
            }
        ],
    }
    if providers is not None:
        body["providers"] = providers
    return DeploymentFile.model_validate(body)


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_without_spec_everything_at_list_price() -> None:
    cat = load_catalog()
    assert len(cat.offerings) == len(snapshot_offerings())
    assert {"aws", "gcp", "azure", *GPU_CLOUDS} == {o.provider for o in cat.offerings}
    assert all(o.usd_per_hour == o.list_usd_per_hour for o in cat.offerings)
    assert cat.quotas == [] and "H100" in cat.gpus and cat.as_of


def test_omitted_providers_section_keeps_all_clouds() -> None:
    """All of AWS, GCP and Azure; the GPU clouds only when the file names them (they need launch settings)."""
    offerings = load_catalog(spec(None)).offerings
    assert len(offerings) == len([o for o in snapshot_offerings() if o.provider not in GPU_CLOUDS])
    assert {o.provider for o in offerings} == {"aws", "gcp", "azure"}


def test_a_gpu_cloud_is_offered_when_the_file_names_it() -> None:
    cat = load_catalog(spec({"nebius": {"kind": "kubernetes", "kube_context": "nb"}, "aws": {}}))
    assert {o.provider for o in cat.offerings} == {"aws", "nebius"}
    assert {o.region for o in cat.offerings_for(provider="nebius")} == {"nebius:eu-north1", "nebius:us-central1"}


def test_only_listed_providers_and_regions() -> None:
    cat = load_catalog(spec({"aws": {"regions": ["us-east-1", "aws:eu-west-1"]}}))
    assert {o.region for o in cat.offerings} == {"aws:us-east-1", "aws:eu-west-1"}
    assert cat.offerings_for(provider="gcp") == []
    assert {o.instance_type for o in cat.offerings_for(gpu="a10g", region="us-east-1")} >= {"g5.xlarge", "g5.48xlarge"}


def test_unknown_region_in_spec_is_a_user_error() -> None:
    with pytest.raises(UserError, match='did you mean "us-east-1"'):
        load_catalog(spec({"aws": {"regions": ["us-east1"]}}))


def test_discount_applies_to_on_demand_not_spot() -> None:
    cat = load_catalog(spec({"aws": {"regions": ["us-east-1"], "discount": 0.15}}))
    g5 = next(o for o in cat.offerings if o.instance_type == "g5.xlarge")
    listed = next(o for o in snapshot_offerings() if o.instance_type == "g5.xlarge" and o.region == "aws:us-east-1")
    assert g5.list_usd_per_hour == listed.usd_per_hour
    assert g5.usd_per_hour == pytest.approx(listed.usd_per_hour * 0.85)
    assert g5.spot_usd_per_hour == listed.spot_usd_per_hour


def test_custom_price_by_instance_and_region() -> None:
    cat = load_catalog(
        spec(
            {
                "aws": {
                    "regions": ["us-east-1", "us-west-2"],
                    "discount": 0.1,
                    "prices": [{"instance_type": "p5.48xlarge", "region": "us-west-2", "usd_per_hour": 40.0}],
                }
            }
        )
    )
    p5 = {o.region: o for o in cat.offerings if o.instance_type == "p5.48xlarge"}
    assert p5["aws:us-west-2"].usd_per_hour == 40.0
    assert p5["aws:us-west-2"].list_usd_per_hour == pytest.approx(55.04)
    assert "custom price" in p5["aws:us-west-2"].source
    assert p5["aws:us-east-1"].usd_per_hour == pytest.approx(55.04 * 0.9)  # other region: the discount


def test_custom_price_for_unknown_instance_type() -> None:
    with pytest.raises(UserError, match="p5.48xlarge"):
        load_catalog(spec({"aws": {"prices": [{"instance_type": "p5.48xlarg", "usd_per_hour": 1}]}}))


def test_quotas_become_rules() -> None:
    cat = load_catalog(
        spec({"aws": {"quotas": [{"max_gpus": 16, "region": "us-east-1", "gpu": "H100-SXM"}, {"max_gpus": 64}]}})
    )
    assert cat.quotas == [
        QuotaRule(provider="aws", region="aws:us-east-1", gpu="H100", max_gpus=16),
        QuotaRule(provider="aws", region=None, gpu=None, max_gpus=64),
    ]
    p5 = next(o for o in cat.offerings if o.instance_type == "p5.48xlarge" and o.region == "aws:us-east-1")
    g5 = next(o for o in cat.offerings if o.instance_type == "g5.xlarge" and o.region == "aws:us-east-1")
    assert cat.quotas[0].applies_to(p5) and not cat.quotas[0].applies_to(g5) and cat.quotas[1].applies_to(g5)


def test_onprem_site_offerings_at_marginal_cost() -> None:
    site = {
        "name": "dc-frankfurt",
        "location": "eu-central",
        "gpus": {"H100-SXM": 16, "L4": 2, "A10G": 0},
        "cost": {"amortized_usd_per_gpu_hour": 1.10, "power_usd_per_kwh": 0.21, "pue": 1.3},
        "carbon_g_per_kwh": 120,
    }
    cat = load_catalog(spec({"onprem": {"sites": [site]}}))
    assert {o.provider for o in cat.offerings} == {"onprem"}
    by_gpu = {o.gpu: o for o in cat.offerings}
    h100 = by_gpu["H100"]
    assert (h100.region, h100.instance_type, h100.gpu_count, h100.max_gpus) == (
        "onprem:dc-frankfurt", "dc-frankfurt/H100x8", 8, 16)
    assert h100.usd_per_hour == pytest.approx(8 * (1.10 + 0.700 * 0.21 * 1.3))
    assert by_gpu["L4"].gpu_count == 2 and by_gpu["L4"].instance_type == "dc-frankfurt/L4x2"
    assert "A10G" not in by_gpu  # zero inventory
    region = cat.regions["onprem:dc-frankfurt"]
    assert region.continent == "eu" and region.carbon_g_per_kwh == 120 and round(region.lat) == 50


def test_onprem_carbon_defaults_to_the_location() -> None:
    site = {"name": "dc", "location": "eu-north", "gpus": {"L40S": 4}, "cost": {"power_usd_per_kwh": 0.1}}
    cat = load_catalog(spec({"onprem": {"sites": [site]}}))
    assert cat.regions["onprem:dc"].carbon_g_per_kwh < 20
    o = cat.offerings[0]
    assert o.usd_per_hour == pytest.approx(4 * 0.350 * 0.1 * 1.3)  # owned hardware: power only by default


def test_local_machine_region_and_offering() -> None:
    cat = load_catalog(spec({"local": {}}, sources=[{"region": "aws:eu-west-1", "share": 1}]))
    (o,) = cat.offerings
    assert (o.provider, o.region, o.instance_type, o.gpu, o.gpu_count, o.usd_per_hour) == (
        "local", LOCAL_REGION_ID, "this-machine", "CPU", 1, 0.0)
    region = cat.regions[LOCAL_REGION_ID]
    assert (region.lat, region.lon) == (cat.regions["aws:eu-west-1"].lat, cat.regions["aws:eu-west-1"].lon)
    assert region.carbon_g_per_kwh > 0


def test_cache_round_trip_replaces_the_provider(_empty_cache: Path) -> None:
    assert cached_offerings("aws") is None
    mine = [o for o in snapshot_offerings() if o.provider == "aws"][:3]
    changed = [dataclasses.replace(mine[0], usd_per_hour=0.123, list_usd_per_hour=0.123, source="live"), *mine[1:]]
    path = write_cache("aws", changed)
    assert path == _empty_cache / "catalog" / "aws.csv"
    assert [p.name for p in path.parent.iterdir()] == ["aws.csv"]  # no temp file left behind
    back = cached_offerings("aws")
    assert back is not None and [(o.region, o.instance_type) for o in back] == [(o.region, o.instance_type) for o in mine]
    assert back[0].usd_per_hour == 0.123 and back[0].source == "live"
    eff = effective_offerings()
    assert [o for o in eff if o.provider == "aws"] == back
    assert len([o for o in eff if o.provider == "gcp"]) == len([o for o in snapshot_offerings() if o.provider == "gcp"])
    assert len([o for o in load_catalog().offerings if o.provider == "aws"]) == 3


def test_write_cache_rejects_other_providers() -> None:
    with pytest.raises(ValueError):
        write_cache("gcp", [o for o in snapshot_offerings() if o.provider == "aws"][:1])
