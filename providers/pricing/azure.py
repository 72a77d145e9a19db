"""Azure live catalog: Linux VM list prices from the Azure Retail Prices REST API (no auth), mapped to GPU types
and counts with the table of GPU VM sizes below (the Retail Prices API does not describe hardware).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from orchestrator.catalog.types import Offering
from providers.pricing import today

PRICES_URL = "https://prices.azure.com"
API_VERSION = "2023-01-01-preview"
SOURCE = "Azure Retail Prices API (prices.azure.com, Virtual Machines, Consumption), live"


class VmSize(NamedTuple):
    gpu: str  # canonical GPU name
    gpu_count: int
    vcpus: int
    memory_gb: float


# Whole-GPU Linux sizes. Source: Azure VM size docs (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated,
# MicrosoftDocs/azure-docs nd-mi300x-v5-series.md) cross-checked with microsoft/aspire AksNodeVmSizes.cs; as of 2026-11-23.
# ND H200 v5 from the Azure docs only (not cross-checked). NC A100 v4 carries A100 80GB PCIe (mapped to A100-80GB);
# NV A10 v5's A10 maps to orch's A10G row (same GA102 part, 24 GB). NC H100 v5 (H100 NVL 94 GB) is left out: orch has no spec row for it.
GPU_VM_SIZES: dict[str, VmSize] = {
    "Standard_NC4as_T4_v3": VmSize("T4", 1, 4, 28),
    "Standard_NC8as_T4_v3": VmSize("T4", 1, 8, 56),
    "Standard_NC16as_T4_v3": VmSize("T4", 1, 16, 110),
    "Standard_NC64as_T4_v3": VmSize("T4", 4, 64, 440),
    "Standard_NV36ads_A10_v5": VmSize("A10G", 1, 36, 440),
    "Standard_NV72ads_A10_v5": VmSize("A10G", 2, 72, 880),
    "Standard_NC24ads_A100_v4": VmSize("A100-80GB", 1, 24, 220),
    "Standard_NC48ads_A100_v4": VmSize("A100-80GB", 2, 48, 440),
    "Standard_NC96ads_A100_v4": VmSize("A100-80GB", 4, 96, 880),
    "Standard_ND96asr_v4": VmSize("A100-40GB", 8, 96, 900),
    "Standard_ND96amsr_A100_v4": VmSize("A100-80GB", 8, 96, 1800),
    "Standard_ND96isr_H100_v5": VmSize("H100", 8, 96, 1900),
    "Standard_ND96isr_H200_v5": VmSize("H200", 8, 96, 1850),
    "Standard_ND96isr_MI300X_v5": VmSize("MI300X", 8, 96, 1850),
}


def price_filter(region: str) -> str:
    return f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and priceType eq 'Consumption'"


def fetch_items(http: Any, region: str, base_url: str = PRICES_URL, max_pages: int = 200) -> Iterator[dict[str, Any]]:
    """Every retail price item of the region, following NextPageLink."""
    url: str | None = f"{base_url.rstrip('/')}/api/retail/prices"
    params: dict[str, str] | None = {"api-version": API_VERSION, "$filter": price_filter(region)}
    for _ in range(max_pages):
        if not url:
            return
        resp = http.get(url, params=params)
        resp.raise_for_status()
        body = resp.json()
        yield from body.get("Items", [])
        url, params = body.get("NextPageLink"), None  # the link carries the query
    raise RuntimeError(f"azure retail prices: more than {max_pages} pages for {region}")


def parse_items(items: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """armSkuName -> {"on_demand": USD/h, "spot": USD/h} for Linux hourly prices; Windows and Low Priority skipped."""
    out: dict[str, dict[str, float]] = {}
    for it in items:
        sku = it.get("armSkuName", "")
        if sku not in GPU_VM_SIZES or it.get("unitOfMeasure") != "1 Hour" or it.get("currencyCode", "USD") != "USD":
            continue
        name = it.get("skuName", "")
        if "Windows" in it.get("productName", "") or "Low Priority" in name:
            continue
        if it.get("type", "Consumption") != "Consumption" or float(it.get("tierMinimumUnits", 0) or 0) > 0:
            continue
        kind = "spot" if "Spot" in name else "on_demand"
        price = float(it.get("retailPrice", 0))
        if price > 0:
            out.setdefault(sku, {})[kind] = price
    return out


def region_offerings(region: str, prices: dict[str, dict[str, float]]) -> list[Offering]:
    as_of = today()
    out = []
    for sku in sorted(prices):
        p = prices[sku]
        if "on_demand" not in p:
            continue
        size = GPU_VM_SIZES[sku]
        out.append(
            Offering(
                provider="azure",
                region=f"azure:{region}",
                instance_type=sku,
                gpu=size.gpu,
                gpu_count=size.gpu_count,
                vcpus=size.vcpus,
                memory_gb=size.memory_gb,
                usd_per_hour=p["on_demand"],
                spot_usd_per_hour=p.get("spot"),
                source=SOURCE,
                as_of=as_of,
                list_usd_per_hour=p["on_demand"],
            )
        )
    return out


def live_offerings(regions: list[str], prices_url: str | None, sleep: Callable[[float], None]) -> list[Offering]:
    """Offerings of these regions from the Retail Prices API, each region retried on throttling and 5xx."""
    import httpx

    from orchestrator.errors import ProviderError, TransientError
    from providers.retry import with_retries

    out: list[Offering] = []
    with httpx.Client(timeout=60, follow_redirects=True) as http:
        for region in regions:

            def fetch(region: str = region) -> list[Offering]:
                try:
                    prices = parse_items(fetch_items(http, region, prices_url or PRICES_URL))
                except httpx.HTTPStatusError as exc:
                    code = exc.response.status_code
                    err = f"azure: retail prices for {region}: HTTP {code}"
                    raise (TransientError(err) if code == 429 or code >= 500 else ProviderError(err)) from None
                except httpx.TransportError as exc:
                    raise TransientError(f"azure: retail prices for {region}: {exc}") from None
                return region_offerings(region, prices)

            out += with_retries(fetch, sleep=sleep)
    return out
