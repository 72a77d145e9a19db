"""Read a SkyPilot catalog directory (skypilot-org/skypilot-catalog ``catalogs/v7/<cloud>/vms.csv``, or a local
``~/.sky/catalogs/v7``) into orch offerings.

SkyPilot's vms.csv columns (order differs by cloud, so they are read by name): InstanceType, AcceleratorName,
AcceleratorCount, vCPUs, MemoryGiB, GpuInfo, Price, SpotPrice, Region, AvailabilityZone. One row per zone: the
on-demand price is the region's lowest, spot the median across zones. AWS and Azure rows name their GPUs; GCP lists
the machine type (VM part only) and the accelerator (GPU part, InstanceType empty) on separate rows, so a GCP machine
is priced VM + GPUs, for the machine types orch's snapshot knows the GPUs of.
"""

from __future__ import annotations

import ast
import csv
import statistics
from collections import defaultdict
from datetime import date
from pathlib import Path

from orchestrator.catalog.offerings import split_gcp_instance_type
from orchestrator.catalog.types import Offering
from orchestrator.errors import UserError

CLOUDS = ("aws", "gcp", "azure")
REQUIRED = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "SpotPrice", "Region")
# SkyPilot's accelerator names for orch's GPUs where they differ from canonical_gpu_name's reading ("A100" is 40 GB).
SKY_TO_ORCH = {"A100": "A100-40GB", "A100-80GB": "A100-80GB"}
ORCH_TO_SKY = {"A100-40GB": "A100", "A100-80GB": "A100-80GB"}


def find_files(directory: Path, providers: list[str] | None = None) -> dict[str, Path]:
    """provider -> vms.csv under ``directory`` (``<dir>/<cloud>/vms.csv``; ``<dir>/vms.csv`` needs one --provider)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (expected a SkyPilot catalog such as catalogs/v7 or ~/.sky/catalogs/v7)")
    wanted = providers or list(CLOUDS)
    found = {p: directory / p / "vms.csv" for p in wanted if (directory / p / "vms.csv").is_file()}
    if not found and (directory / "vms.csv").is_file():
        if providers is None or len(providers) != 1:
            raise UserError(f"{directory}/vms.csv: say which cloud it is with --provider aws|gcp|azure")
        found = {providers[0]: directory / "vms.csv"}
    if not found:
        raise UserError(f"{directory}: no SkyPilot vms.csv found (looked for {', '.join(f'{p}/vms.csv' for p in wanted)})")
    return found


def _num(value: str, where: str, field: str) -> float | None:
    v = (value or "").strip()
    if not v or v.lower() == "nan":
        return None
    try:
        return float(v)
    except ValueError:
        raise UserError(f"{where}: {field} must be a number, found {v!r}") from None


def _gpu_name(sky: str, gpu_info: str) -> str | None:
    from orchestrator.catalog.gpus import canonical_gpu_name

    if sky == "A100":  # 40 GB unless GpuInfo says 80 GB per GPU
        try:
            info = ast.literal_eval(gpu_info) if gpu_info.strip().startswith("{") else {}
            mib = int(info.get("Gpus", [{}])[0].get("MemoryInfo", {}).get("SizeInMiB", 0))
        except (ValueError, SyntaxError, TypeError, IndexError, AttributeError):
            mib = 0
        return "A100-80GB" if mib > 48 * 1024 else "A100-40GB"
    return SKY_TO_ORCH.get(sky) or canonical_gpu_name(sky)


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every row; one located error when a required column is missing."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}:1: not a SkyPilot vms.csv: missing column(s) {', '.join(missing)} "
                            f"(expected {', '.join(REQUIRED)}, AvailabilityZone, GpuInfo)")
        return [(reader.line_num, row) for row in reader]


class _Prices:
    """Zone prices of one (instance or accelerator, region): on-demand = min, spot = median."""

    def __init__(self) -> None:
        self.od: list[float] = []
        self.spot: list[float] = []

    def add(self, od: float | None, spot: float | None) -> None:
        if od is not None and od > 0:
            self.od.append(od)
        if spot is not None and spot > 0:
            self.spot.append(spot)

    def on_demand(self) -> float | None:
        return min(self.od) if self.od else None

    def spot_median(self) -> float | None:
        return statistics.median(self.spot) if self.spot else None


def parse(provider: str, path: Path, known_regions: set[str], snapshot: list[Offering]) -> tuple[list[Offering], int]:
    """(offerings, rows skipped: GPU or region orch does not know, no price) for one cloud's vms.csv."""
    as_of = date.fromtimestamp(path.stat().st_mtime).isoformat()
    source = f"SkyPilot catalog {path} (file dated {as_of})"
    rows = read_rows(path)
    machines: dict[tuple[str, str], _Prices] = defaultdict(_Prices)
    accels: dict[tuple[str, int, str], _Prices] = defaultdict(_Prices)
    shapes: dict[str, tuple[str, int, int, float]] = {}
    skipped = 0
    for line, r in rows:
        where = f"{path}:{line}"
        itype, accel, region = r["InstanceType"].strip(), r["AcceleratorName"].strip(), r["Region"].strip()
        od, spot = _num(r["Price"], where, "Price"), _num(r["SpotPrice"], where, "SpotPrice")
        count = _num(r["AcceleratorCount"], where, "AcceleratorCount")
        if not itype and accel and count:  # GCP: the GPU part alone
            accels[(accel, int(count), region)].add(od, spot)
            continue
        if not itype:
            skipped += 1
            continue
        machines[(itype, region)].add(od, spot)
        if accel and count:
            gpu = _gpu_name(accel, r.get("GpuInfo") or "")
            if gpu is None:  # a GPU orch has no specs for (V100, TPUs)
                skipped += 1
                continue
            vcpus, mem = _num(r["vCPUs"], where, "vCPUs"), _num(r["MemoryGiB"], where, "MemoryGiB")
            shapes[itype] = (gpu, int(count), int(vcpus or 0), float(mem or 0))
    if provider == "gcp":  # machine types whose GPUs are priced on accelerator rows: orch knows their GPUs
        for o in snapshot:
            if o.provider == "gcp" and o.instance_type not in shapes:
                shapes[o.instance_type] = (o.gpu, o.gpu_count, o.vcpus, o.memory_gb)
    whole = {r["InstanceType"].strip() for _, r in rows if r["InstanceType"].strip() and r["AcceleratorName"].strip()}
    by_machine: dict[str, list[tuple[str, _Prices]]] = defaultdict(list)
    for (m, region), p in machines.items():
        by_machine[m].append((region, p))
    out: list[Offering] = []
    for itype, (gpu, count, vcpus, mem) in sorted(shapes.items()):
        machine = split_gcp_instance_type(itype)[0] if provider == "gcp" else itype
        for region, p in by_machine.get(machine, []):
            if f"{provider}:{region}" not in known_regions:
                skipped += 1
                continue
            od, spot = p.on_demand(), p.spot_median()
            if provider == "gcp" and itype not in whole:  # VM part here, GPU part on the accelerator row
                g = accels.get((ORCH_TO_SKY.get(gpu, gpu), count, region))
                if g is None or g.on_demand() is None or od is None:
                    skipped += 1
                    continue
                gs = g.spot_median()
                od, spot = od + g.on_demand(), (spot + gs if spot is not None and gs is not None else None)  # type: ignore[operator]
            if od is None:
                skipped += 1
                continue
            if spot is not None and spot >= od:
                spot = None  # a spot price above on-demand is a data error, not a market
            out.append(Offering(provider=provider, region=f"{provider}:{region}", instance_type=itype, gpu=gpu,
                                gpu_count=count, vcpus=vcpus, memory_gb=mem, usd_per_hour=round(od, 5),
                                spot_usd_per_hour=None if spot is None else round(spot, 5), source=source,
                                as_of=as_of, list_usd_per_hour=round(od, 5)))
    return out, skipped

