"""GCP live catalog: GPU machine shapes (Compute API machine and accelerator types) priced from the Cloud Billing
Catalog (service 6F81-5844-456A, Compute Engine): a VM's hourly price is vCPUs x core SKU + GiB x RAM SKU
(+ GPUs x GPU SKU), per region, on-demand (usageType OnDemand) and spot (usageType Preemptible).

The Billing Catalog is read over REST with httpx (google-cloud-billing is not a dependency).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.catalog.types import Offering
from providers.pricing import today

COMPUTE_ENGINE_SERVICE = "services/6F81-5844-456A"
BILLING_URL = "https://cloudbilling.googleapis.com"
SOURCE = "GCP Cloud Billing Catalog API (services/6F81-5844-456A skus) + Compute Engine machine/accelerator types, live"

# Compute accelerator type -> canonical GPU (orchestrator/data/gpus.csv).
ACCELERATOR_GPU = {
    "nvidia-tesla-t4": "T4",
    "nvidia-l4": "L4",
    "nvidia-tesla-a100": "A100-40GB",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100",
    "nvidia-h200-141gb": "H200",
    "nvidia-b200": "B200",
}
GPU_ACCELERATOR = {"T4": "nvidia-tesla-t4", "L4": "nvidia-l4", "A100-40GB": "nvidia-tesla-a100", "A100-80GB": "nvidia-a100-80gb", "H100": "nvidia-h100-80gb", "H200": "nvidia-h200-141gb", "B200": "nvidia-b200"}
# The model as Billing SKU descriptions name it ("Nvidia Tesla A100 80GB GPU running in Americas"), lowercased,
# "tesla " dropped -> accelerator type.
SKU_MODEL_ACCELERATOR = {
    "t4": "nvidia-tesla-t4",
    "l4": "nvidia-l4",
    "a100": "nvidia-tesla-a100",
    "a100 80gb": "nvidia-a100-80gb",
    "h100 80gb": "nvidia-h100-80gb",
    "h100 80gb mega": "nvidia-h100-mega-80gb",
    "h200 141gb": "nvidia-h200-141gb",
    "b200": "nvidia-b200",
}
# Machine families whose machine types carry their GPUs; N1 takes attached T4s instead (N1_T4 below).
GPU_FAMILIES = ("a2", "a3", "a4", "g2")
# N1 shapes offered with attached T4s: machine type -> T4 count (GCP allows 1, 2 or 4 T4 on N1). Named in the
# catalog as "<machine>+<accelerator>:<count>", as the snapshot does (orchestrator.catalog.offerings.split_gcp_instance_type).
N1_T4 = {"n1-standard-4": 1, "n1-standard-8": 1, "n1-standard-16": 2, "n1-standard-32": 4}
MACHINE_TYPE_FILTER = 'name eq "(a2|a3|a4|g2)-.*|n1-standard-(4|8|16|32)"'

_GPU_SKU = re.compile(r"^(?:spot preemptible )?nvidia (?:tesla )?(?P<model>.+?) gpu\b", re.IGNORECASE)
_CORE_RAM_SKU = re.compile(r"^(?:spot preemptible )?(?P<series>[a-z]\d[a-z]?)(?: predefined| custom)? instance (?P<kind>core|ram)\b", re.IGNORECASE)


@dataclass
class SkuPrices:
    """Per-region unit prices from the Billing Catalog: (region, key, usage) -> USD per unit-hour."""

    core: dict[tuple[str, str, str], float] = field(default_factory=dict)  # key: series (a2, n1)
    ram: dict[tuple[str, str, str], float] = field(default_factory=dict)  # per GiB-hour
    gpu: dict[tuple[str, str, str], float] = field(default_factory=dict)  # key: accelerator type


def unit_price(sku: dict[str, Any]) -> float | None:
    """USD per usage unit: the last tier's unitPrice {units, nanos} of the newest pricing info."""
    infos = sku.get("pricingInfo") or []
    if not infos:
        return None
    rates = infos[0].get("pricingExpression", {}).get("tieredRates") or []
    if not rates:
        return None
    up = rates[-1].get("unitPrice", {})
    return int(up.get("units", 0) or 0) + int(up.get("nanos", 0) or 0) / 1e9


def parse_skus(skus: Iterable[dict[str, Any]]) -> SkuPrices:
    out = SkuPrices()
    for sku in skus:
        cat = sku.get("category", {})
        usage = cat.get("usageType")
        if cat.get("resourceFamily") != "Compute" or usage not in ("OnDemand", "Preemptible"):
            continue
        desc = sku.get("description", "")
        price = unit_price(sku)
        if price is None:
            continue
        target: dict[tuple[str, str, str], float] | None = None
        key = ""
        if m := _GPU_SKU.match(desc):
            key = SKU_MODEL_ACCELERATOR.get(m["model"].lower(), "")
            target = out.gpu if key else None
        elif (m := _CORE_RAM_SKU.match(desc)) and "sole tenancy" not in desc.lower():
            key = m["series"].lower()
            target = out.core if m["kind"].lower() == "core" else out.ram
        if target is None:
            continue
        for region in sku.get("serviceRegions", []):
            target[(region, key, usage)] = price
    return out


def fetch_skus(http: Any, headers: dict[str, str], base_url: str = BILLING_URL) -> Iterator[dict[str, Any]]:
    """Every Compute Engine SKU, following nextPageToken."""
    token = ""
    while True:
        params = {"currencyCode": "USD", "pageSize": "5000"}
        if token:
            params["pageToken"] = token
        resp = http.get(f"{base_url.rstrip('/')}/v1/{COMPUTE_ENGINE_SERVICE}/skus", params=params, headers=headers)
        resp.raise_for_status()
        body = resp.json()
        yield from body.get("skus", [])
        token = body.get("nextPageToken", "")
        if not token:
            return


@dataclass(frozen=True)
class Shape:
    machine_type: str  # catalog name: the machine type, plus "+<accelerator>:<count>" when GPUs are attached
    vcpus: int
    memory_gib: float
    accelerator: str  # accelerator type
    gpu_count: int
    attached: bool  # N1: GPUs attached separately (launch adds guest_accelerators)


def shapes_by_region(machine_types: Iterable[Any], accelerators: Iterable[Any]) -> dict[str, dict[str, Shape]]:
    """region -> machine type -> Shape, from Compute MachineType and AcceleratorType resources (any zone of the region)."""
    accel_regions: dict[str, set[str]] = {}
    for a in accelerators:
        accel_regions.setdefault(_region_of(a.zone), set()).add(a.name)
    out: dict[str, dict[str, Shape]] = {}
    for mt in machine_types:
        region = _region_of(mt.zone)
        family = mt.name.split("-", 1)[0]
        mem = round(mt.memory_mb / 1024, 1)
        if family in GPU_FAMILIES and mt.accelerators:
            acc = mt.accelerators[0]
            shape = Shape(mt.name, mt.guest_cpus, mem, acc.guest_accelerator_type, acc.guest_accelerator_count, False)
        elif mt.name in N1_T4 and "nvidia-tesla-t4" in accel_regions.get(region, set()):
            count = N1_T4[mt.name]
            shape = Shape(f"{mt.name}+nvidia-tesla-t4:{count}", mt.guest_cpus, mem, "nvidia-tesla-t4", count, True)
        else:
            continue
        if shape.accelerator in ACCELERATOR_GPU:
            out.setdefault(region, {})[shape.machine_type] = shape
    return out


def _region_of(zone: str) -> str:
    return zone.rsplit("/", 1)[-1].rsplit("-", 1)[0]


def _price(prices: SkuPrices, region: str, shape: Shape, usage: str) -> float | None:
    series = shape.machine_type.split("-", 1)[0]
    parts = [
        prices.core.get((region, series, usage)),
        prices.ram.get((region, series, usage)),
        prices.gpu.get((region, shape.accelerator, usage)),
    ]
    if any(p is None for p in parts):
        return None
    core, ram, gpu = parts
    return round(shape.vcpus * core + shape.memory_gib * ram + shape.gpu_count * gpu, 6)  # type: ignore[operator]


def region_offerings(region: str, shapes: dict[str, Shape], prices: SkuPrices) -> list[Offering]:
    as_of = today()
    out = []
    for name in sorted(shapes):
        shape = shapes[name]
        od = _price(prices, region, shape, "OnDemand")
        if od is None:
            continue
        out.append(
            Offering(
                provider="gcp",
                region=f"gcp:{region}",
                instance_type=name,
                gpu=ACCELERATOR_GPU[shape.accelerator],
                gpu_count=shape.gpu_count,
                vcpus=shape.vcpus,
                memory_gb=shape.memory_gib,
                usd_per_hour=od,
                spot_usd_per_hour=_price(prices, region, shape, "Preemptible"),
                source=SOURCE,
                as_of=as_of,
                list_usd_per_hour=od,
            )
        )
    return out


def live_offerings(provider: Any, names: list[str] | None) -> list[Offering]:
    """Offerings of these regions (bare names; None: every region with GPUs) for a providers.gcp.GcpProvider:
    shapes from its Compute clients, prices from the Billing Catalog with its credentials."""
    import httpx
    from google.cloud import compute_v1

    from orchestrator.errors import AuthError, ProviderError, TransientError

    mt_client = provider._client("MachineTypesClient")
    acc_client = provider._client("AcceleratorTypesClient")
    mt_request = compute_v1.AggregatedListMachineTypesRequest(project=provider.project, filter=MACHINE_TYPE_FILTER)

    def shapes() -> dict[str, dict[str, Shape]]:
        mts = [m for _, sl in mt_client.aggregated_list(request=mt_request) for m in sl.machine_types]
        accs = [a for _, sl in acc_client.aggregated_list(project=provider.project) for a in sl.accelerator_types]
        return shapes_by_region(mts, accs)

    by_region = provider._call("machine/accelerator types", shapes)
    headers = provider._auth_headers()

    def skus() -> SkuPrices:
        try:
            with httpx.Client(timeout=60) as http:
                return parse_skus(fetch_skus(http, headers, provider.billing_url or BILLING_URL))
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            err = f"gcp: Cloud Billing catalog: HTTP {code}"
            if code in (401, 403):
                raise AuthError(err + " (the credentials need the Cloud Billing API enabled)") from None
            raise (TransientError(err) if code == 429 or code >= 500 else ProviderError(err)) from None
        except httpx.TransportError as exc:
            raise TransientError(f"gcp: Cloud Billing catalog: {exc}") from None

    prices = provider._call("billing catalog", skus)
    out: list[Offering] = []
    for region in names or sorted(by_region):
        if not by_region.get(region):
            raise ProviderError(f"gcp: no GPU machine types visible in region {region} (project {provider.project})")
        out += region_offerings(region, by_region[region], prices)
    return out
