"""The shipped catalog data: offerings.csv, regions.csv, metros.csv, egress.yaml parse and hold together."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from importlib import resources

import pytest

from orchestrator.catalog.gpus import all_gpus
from orchestrator.catalog.offerings import GPU_CLOUDS, COLUMNS, snapshot_offerings
from orchestrator.catalog.regions import all_regions, metros

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _raw(name: str) -> list[dict[str, str]]:
    text = resources.files("orchestrator.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")))


def test_offerings_csv_has_the_documented_columns() -> None:
    rows = _raw("offerings.csv")
    assert list(rows[0]) == COLUMNS
    assert all(None not in r and len(r) == len(COLUMNS) for r in rows)  # no ragged rows


def test_at_least_150_offerings_across_three_clouds() -> None:
    offerings = snapshot_offerings()
    assert len(offerings) >= 150
    assert {o.provider for o in offerings} == {"aws", "gcp", "azure", *GPU_CLOUDS}
    assert len(GPU_CLOUDS) >= 4  # Lambda, RunPod, Nebius, CoreWeave (issue 21 item 4)


@pytest.mark.parametrize(("provider", "minimum"), [("aws", 5), ("gcp", 4), ("azure", 4)])
def test_region_coverage_spans_three_continents(provider: str, minimum: int) -> None:
    regions = all_regions()
    used = {o.region for o in snapshot_offerings() if o.provider == provider}
    assert len(used) >= minimum
    assert {"na", "eu", "asia"} <= {regions[r].continent for r in used}


def test_every_row_has_source_and_date() -> None:
    for o in snapshot_offerings():
        assert o.source.strip(), o
        assert DATE.match(o.as_of), o
    for r in [*all_regions().values(), *metros().values()]:
        assert r.source.strip() and DATE.match(r.as_of), r


def test_every_gpu_is_known_and_no_cpu_rows() -> None:
    names = {g.name for g in all_gpus() if g.vendor != "cpu"}
    assert {o.gpu for o in snapshot_offerings()} <= names


def test_every_offering_region_is_in_regions_csv() -> None:
    regions = all_regions()
    missing = {o.region for o in snapshot_offerings()} - set(regions)
    assert not missing
    assert all(o.region == f"{o.provider}:{regions[o.region].name}" for o in snapshot_offerings())


def test_prices_positive_and_spot_not_above_on_demand() -> None:
    spots = 0
    for o in snapshot_offerings():
        assert o.usd_per_hour > 0 and o.gpu_count >= 1 and o.vcpus > 0 and o.memory_gb > 0, o
        if o.spot_usd_per_hour is not None:
            spots += 1
            assert 0 < o.spot_usd_per_hour <= o.usd_per_hour, o
    assert spots > 50  # spot is sold for most families


def test_no_duplicate_offerings() -> None:
    keys = [(o.region, o.instance_type) for o in snapshot_offerings()]
    assert len(keys) == len(set(keys))


def test_all_canonical_gpu_families_are_offered() -> None:
    offered = {o.gpu for o in snapshot_offerings()}
    assert {"T4", "A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100", "H100-PCIe", "H200", "B200", "MI300X"} <= offered


def test_regional_prices_differ_and_europe_asia_cost_more() -> None:
    by_type: dict[str, dict[str, float]] = defaultdict(dict)
    for o in snapshot_offerings():
        by_type[o.instance_type][o.region] = o.usd_per_hour
    p = by_type["g5.xlarge"]
    assert p["aws:us-east-1"] == pytest.approx(1.006)
    assert p["aws:us-east-1"] < p["aws:eu-central-1"] < p["aws:ap-northeast-1"]


def test_aws_p5_uses_post_june_2025_price() -> None:
    p5 = [o for o in snapshot_offerings() if o.instance_type == "p5.48xlarge" and o.region == "aws:us-east-1"]
    assert len(p5) == 1
    assert p5[0].usd_per_hour < 98.32 * 0.7  # the pre-cut list was 98.32
    assert "June 2025" in p5[0].source


def test_regions_have_sane_coordinates_and_carbon() -> None:
    for r in [*all_regions().values(), *metros().values()]:
        assert -90 <= r.lat <= 90 and -180 <= r.lon <= 180, r
        assert 0 <= r.carbon_g_per_kwh < 1200, r
        assert r.continent in {"na", "sa", "eu", "asia", "oc", "me", "af"}, r
    assert {"us-east", "eu-central", "eu-west", "eu-north", "asia-northeast", "asia-south"} <= set(metros())


# Families whose sizes are the same machine sliced by GPU (vCPUs, memory and GPUs scale together and the
# provider's own list prices them per GPU): every size in one region must cost the same per GPU.
PER_GPU_FAMILIES = re.compile(r"^(a2-highgpu|a2-ultragpu|a3-highgpu)-\d+g$|^p5\.(4|48)xlarge$")


def test_per_gpu_families_cost_the_same_per_gpu_in_every_size() -> None:
    per_gpu: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for o in snapshot_offerings():
        m = PER_GPU_FAMILIES.match(o.instance_type)
        if m:
            family = o.instance_type.rsplit("-", 1)[0] if "-" in o.instance_type else "p5"
            per_gpu[(o.region, family)].append((o.instance_type, o.usd_per_hour / o.gpu_count))
    assert len(per_gpu) >= 10
    for key, sizes in per_gpu.items():
        prices = [p for _, p in sizes]
        assert max(prices) <= min(prices) * 1.01, (key, sizes)


def test_gcp_h100_is_not_priced_below_the_8_gpu_list() -> None:
    """The 1-GPU A3 shape once carried a flex-start/GPU-only figure (5.38/h) that made GCP H100 the cheapest H100
    anywhere; the Cloud Billing list prices the 8-GPU machine at ~88.49/h in us-central1."""
    a3 = {o.instance_type: o for o in snapshot_offerings() if o.region == "gcp:us-central1" and o.gpu == "H100"}
    assert a3["a3-highgpu-8g"].usd_per_hour == pytest.approx(88.49, rel=0.01)
    assert a3["a3-highgpu-1g"].usd_per_hour * 8 == pytest.approx(a3["a3-highgpu-8g"].usd_per_hour, rel=0.01)


def test_every_derived_or_unconfirmed_figure_says_so() -> None:
    """A row's source names where the price came from; figures computed from another row say 'derived'."""
    for o in snapshot_offerings():
        if o.provider in ("gcp", "azure") and "prices.md" not in o.source:
            assert any(w in o.source for w in ("derived", "Cloud Billing", "retail price", "Azure list", "GCP list")), o
