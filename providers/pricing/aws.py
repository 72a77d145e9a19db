"""AWS live catalog: GPU instance types (EC2 DescribeInstanceTypes), on-demand list prices (Price List API,
pricing:GetProducts) and current spot prices (EC2 DescribeSpotPriceHistory).

Takes ready boto3 clients, so the provider owns credentials, endpoints and error mapping.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from orchestrator.catalog.gpus import canonical_gpu_name
from orchestrator.catalog.types import Offering
from providers.pricing import today

SOURCE = "AWS Price List API (GetProducts, AmazonEC2) + EC2 DescribeInstanceTypes/DescribeSpotPriceHistory, live"

# Instance families that carry GPUs; narrows DescribeInstanceTypes (the rest are dropped by GpuInfo anyway).
GPU_FAMILY_PATTERNS = ["p*", "g*"]


def gpu_name(aws_name: str, memory_mib: int) -> str | None:
    """Canonical GPU name for EC2's GpuInfo name (A100 comes in 40 and 80 GB: told apart by memory)."""
    if aws_name.upper() == "A100":
        return "A100-40GB" if memory_mib <= 48 * 1024 else "A100-80GB"
    return canonical_gpu_name(aws_name)


def gpu_instance_types(ec2: Any) -> dict[str, dict[str, Any]]:
    """instance type -> {gpu, gpu_count, vcpus, memory_gb} for every whole-GPU type orch knows the GPU of."""
    out: dict[str, dict[str, Any]] = {}
    pages = ec2.get_paginator("describe_instance_types").paginate(
        Filters=[{"Name": "instance-type", "Values": GPU_FAMILY_PATTERNS}]
    )
    for page in pages:
        for it in page["InstanceTypes"]:
            gpus = (it.get("GpuInfo") or {}).get("Gpus") or []
            if not gpus:
                continue
            g = gpus[0]
            count = sum(int(x.get("Count", 0)) for x in gpus)
            name = gpu_name(g.get("Name", ""), int(g.get("MemoryInfo", {}).get("SizeInMiB", 0)))
            if count < 1 or name is None:  # fractional GPUs (g6f) or GPUs orch has no specs for
                continue
            out[it["InstanceType"]] = {
                "gpu": name,
                "gpu_count": count,
                "vcpus": int(it["VCpuInfo"]["DefaultVCpus"]),
                "memory_gb": round(int(it["MemoryInfo"]["SizeInMiB"]) / 1024, 1),
            }
    return out


def price_filters(region: str) -> list[dict[str, str]]:
    """Linux, shared tenancy, no pre-installed software, capacity actually used: the plain on-demand rate."""
    terms = {
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def parse_price_list(items: Iterable[str]) -> dict[str, float]:
    """instance type -> on-demand USD/hour from GetProducts' PriceList (one JSON document per product)."""
    prices: dict[str, float] = {}
    for raw in items:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        itype = doc.get("product", {}).get("attributes", {}).get("instanceType")
        if not itype:
            continue
        for term in doc.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                if dim.get("unit") != "Hrs":
                    continue
                usd = float(dim.get("pricePerUnit", {}).get("USD", "0"))
                if usd > 0:
                    prices[itype] = usd
    return prices


def on_demand_prices(pricing: Any, region: str) -> dict[str, float]:
    prices: dict[str, float] = {}
    pages = pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", Filters=price_filters(region), FormatVersion="aws_v1"
    )
    for page in pages:
        prices.update(parse_price_list(page.get("PriceList", [])))
    return prices


def spot_prices(ec2: Any, instance_types: list[str], now: datetime | None = None) -> dict[str, float]:
    """instance type -> median across zones of each zone's latest Linux spot price."""
    if not instance_types:
        return {}
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=instance_types,
        ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        StartTime=now or datetime.now(timezone.utc),
    )
    for page in pages:
        for rec in page.get("SpotPriceHistory", []):
            key = (rec["InstanceType"], rec["AvailabilityZone"])
            ts = rec["Timestamp"]
            if key not in latest or ts > latest[key][0]:
                latest[key] = (ts, float(rec["SpotPrice"]))
    by_type: dict[str, list[float]] = {}
    for (itype, _zone), (_ts, price) in latest.items():
        by_type.setdefault(itype, []).append(price)
    return {t: statistics.median(v) for t, v in by_type.items()}


def region_offerings(ec2: Any, pricing: Any, region: str) -> list[Offering]:
    """Every GPU instance type in ``region`` that has a Linux on-demand list price."""
    types = gpu_instance_types(ec2)
    od = on_demand_prices(pricing, region)
    priced = sorted(t for t in types if t in od)
    spot = spot_prices(ec2, priced)
    as_of = today()
    return [
        Offering(
            provider="aws",
            region=f"aws:{region}",
            instance_type=t,
            gpu=types[t]["gpu"],
            gpu_count=types[t]["gpu_count"],
            vcpus=types[t]["vcpus"],
            memory_gb=types[t]["memory_gb"],
            usd_per_hour=od[t],
            spot_usd_per_hour=spot.get(t),
            source=SOURCE,
            as_of=as_of,
            list_usd_per_hour=od[t],
        )
        for t in priced
    ]
