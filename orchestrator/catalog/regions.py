"""Regions, metro labels, distances and network round trips (orchestrator/data/regions.csv, metros.csv)."""

from __future__ import annotations

import math
from functools import cache

from orchestrator.catalog.gpus import _rows
from orchestrator.catalog.types import Region
from orchestrator.errors import UserError
from orchestrator.suggest import did_you_mean

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
# Light in fiber travels at ~c/1.47, i.e. about 200 km per ms one way.
FIBER_KM_PER_MS = 200.0
# Real fiber routes are longer than the great circle; 1.5x is a common planning factor (cf. Bozkurt et al.,
# "Why Is the Internet so Slow?!", PAM 2017, on path inflation over the geodesic). With these constants
# aws:us-east-1 <-> aws:eu-west-1 comes out at ~84 ms against ~70-75 ms seen on public inter-region ping tables
# (e.g. cloudping.co): slightly conservative, which is the safe side for a TTFT SLO.
ROUTE_FACTOR = 1.5
# Fixed cost per round trip for switching, serialization and load balancers between regions.
RTT_OVERHEAD_MS = 2.0
# Round trip between two hosts of one region (cross-AZ, typical measured 0.5-2 ms).
SAME_REGION_RTT_MS = 1.0


def _region(r: dict[str, str], id: str, provider: str, name: str) -> Region:
    return Region(
        id=id,
        provider=provider,
        name=name,
        location=r["location"],
        continent=r["continent"],
        lat=float(r["lat"]),
        lon=float(r["lon"]),
        carbon_g_per_kwh=float(r["carbon_g_per_kwh"]),
        source=r["source"],
        as_of=r["as_of"],
    )


@cache
def all_regions() -> dict[str, Region]:
    """Every catalog region, keyed by its provider-qualified id ("aws:us-east-1")."""
    return {r["id"]: _region(r, r["id"], r["provider"], r["name"]) for r in _rows("regions.csv")}


@cache
def metros() -> dict[str, Region]:
    """Metro labels for on-prem sites ("eu-central"), as Regions with provider "metro"."""
    return {r["label"]: _region(r, f"metro:{r['label']}", "metro", r["label"]) for r in _rows("metros.csv")}


def get_region(region_id: str) -> Region:
    """A catalog region by provider-qualified id; UserError with a suggestion when unknown."""
    regions = all_regions()
    found = regions.get(region_id.strip())
    if found is not None:
        return found
    hint = did_you_mean(region_id, regions)
    if ":" not in region_id:
        qualified = [rid for rid in regions if rid.split(":", 1)[1] == region_id]
        if qualified:
            hint = " (did you mean " + " or ".join(f'"{q}"' for q in qualified) + "?)"
    raise UserError(f"unknown region {region_id!r}{hint}; regions are provider-qualified, e.g. aws:us-east-1")


def resolve_location(label_or_region_id: str) -> tuple[float, float, str, float]:
    """(lat, lon, continent, carbon gCO2e/kWh) for an on-prem site location: a metro label or a region id."""
    key = label_or_region_id.strip()
    metro = metros().get(key)
    region = metro or all_regions().get(key)
    if region is None:
        known = [*metros(), *all_regions()]
        raise UserError(
            f"unknown location {label_or_region_id!r}{did_you_mean(key, known)}; "
            f"use a metro label ({', '.join(metros())}) or a catalog region id such as aws:eu-central-1"
        )
    return region.lat, region.lon, region.continent, region.carbon_g_per_kwh


def distance_km(a: Region, b: Region) -> float:
    """Great-circle distance (haversine) between two regions' metros."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rtt_ms(a: Region, b: Region) -> float:
    """Estimated network round trip: 2 x distance x ROUTE_FACTOR / FIBER_KM_PER_MS + RTT_OVERHEAD_MS.

    The same region (or two regions in one metro) costs SAME_REGION_RTT_MS.
    """
    if a.id == b.id:
        return SAME_REGION_RTT_MS
    d = distance_km(a, b)
    return max(SAME_REGION_RTT_MS, 2.0 * d * ROUTE_FACTOR / FIBER_KM_PER_MS + RTT_OVERHEAD_MS)
