"""Region lookups, distances, round-trip estimates and egress tariffs."""

from __future__ import annotations

import pytest

from orchestrator.catalog.egress import load_egress
from orchestrator.catalog.regions import (
    SAME_REGION_RTT_MS,
    all_regions,
    distance_km,
    get_region,
    resolve_location,
    rtt_ms,
)
from orchestrator.catalog.types import Region
from orchestrator.errors import UserError


def R(rid: str) -> Region:
    return all_regions()[rid]


def test_get_region_and_did_you_mean() -> None:
    assert get_region("gcp:europe-west4").location.startswith("Netherlands")
    with pytest.raises(UserError, match='did you mean "aws:us-east-1"'):
        get_region("us-east-1")
    with pytest.raises(UserError, match="aws:eu-west-1"):
        get_region("aws:eu-west1")


def test_resolve_location_metro_and_region() -> None:
    lat, lon, continent, carbon = resolve_location("eu-central")
    assert (round(lat), round(lon), continent) == (50, 9, "eu") and carbon > 0
    assert resolve_location("aws:eu-north-1")[2] == "eu"
    with pytest.raises(UserError, match="eu-central"):
        resolve_location("eu-centrl")


def test_distance_is_a_great_circle() -> None:
    # New York-ish (N. Virginia) to Dublin is ~5,450 km; a region to itself is 0.
    assert distance_km(R("aws:us-east-1"), R("aws:eu-west-1")) == pytest.approx(5460, rel=0.02)
    assert distance_km(R("aws:us-east-1"), R("aws:us-east-1")) == 0
    a, b = R("aws:us-west-2"), R("aws:ap-northeast-1")
    assert distance_km(a, b) == pytest.approx(distance_km(b, a))


def test_rtt_grows_with_distance_and_same_region_is_small() -> None:
    use1 = R("aws:us-east-1")
    near, mid, far = R("gcp:us-east4"), R("aws:eu-west-1"), R("aws:ap-south-1")
    assert rtt_ms(use1, use1) == SAME_REGION_RTT_MS
    assert rtt_ms(use1, near) < rtt_ms(use1, mid) < rtt_ms(use1, far)
    # transatlantic round trips are measured at ~70-85 ms
    assert 60 < rtt_ms(use1, mid) < 100


def test_egress_same_region_free_cross_region_priced() -> None:
    e = load_egress()
    use1 = R("aws:us-east-1")
    assert e.transfer_usd_per_gb(use1, use1) == 0
    assert e.transfer_usd_per_gb(use1, R("aws:us-west-2")) == pytest.approx(0.02)
    assert e.transfer_usd_per_gb(R("aws:ap-northeast-1"), use1) == pytest.approx(0.08)
    assert e.transfer_usd_per_gb(R("gcp:us-central1"), R("gcp:europe-west4")) > e.transfer_usd_per_gb(
        R("gcp:us-central1"), R("gcp:us-east4")
    )


def test_cross_cloud_costs_the_source_internet_price() -> None:
    e = load_egress()
    assert e.transfer_usd_per_gb(R("aws:us-east-1"), R("gcp:us-east4")) == e.internet_usd_per_gb("aws") == 0.09
    assert e.transfer_usd_per_gb(R("gcp:us-east4"), R("aws:us-east-1")) == e.internet_usd_per_gb("gcp") == 0.12
    assert e.transfer_usd_per_gb(R("azure:eastus"), R("aws:us-east-1")) == pytest.approx(0.087)


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_internet_tiers_decrease_with_volume(provider: str) -> None:
    e = load_egress()
    prices = [e.internet_usd_per_gb(provider, gb) for gb in (0, 5_000, 20_000, 100_000, 1_000_000)]
    assert prices == sorted(prices, reverse=True)
    assert prices[0] > prices[-1]


def test_onprem_source_is_free_unless_declared() -> None:
    e = load_egress()
    site = Region("onprem:dc", "onprem", "dc", "eu-central", "eu", 50.1, 8.7, 300, "test", "2026-01-01")
    assert e.transfer_usd_per_gb(site, R("aws:eu-central-1")) == 0
    e.site_egress_usd_per_gb["onprem:dc"] = 0.03
    assert e.transfer_usd_per_gb(site, R("aws:eu-central-1")) == 0.03
    assert load_egress().site_egress_usd_per_gb == {}  # a fresh tariff object each time
