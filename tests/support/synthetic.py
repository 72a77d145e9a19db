"""Synthetic solver inputs for tests and benchmarks: candidates without a catalog or performance model.

Tests import it as ``support.synthetic`` (pytest puts tests/ on the path); benchmarks put tests/ on sys.path first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.placement.candidates import Candidate
from orchestrator.catalog.types import Offering
from orchestrator.solver.problem import DeploymentInput


def offering(region: str, usd_per_hour: float, gpu: str = "H100", gpu_count: int = 1, *, spot: float | None = None,
             instance_type: str | None = None, max_gpus: int | None = None) -> Offering:
    provider = region.split(":", 1)[0]
    return Offering(provider, region, instance_type or f"{gpu.lower()}-{gpu_count}x", gpu, gpu_count, 8 * gpu_count,
                    64.0 * gpu_count, usd_per_hour, spot, "synthetic", "2026-01-01", max_gpus=max_gpus)


def candidate(deployment: str, o: Offering, rps_per_replica: float, *, ttft_ms: float = 100.0, tpot_ms: float = 30.0,
              gpus_per_replica: int = 1, market: str = "on_demand", grid: float = 300.0, tdp_w: float = 700.0,
              quantization: str = "bf16") -> Candidate:
    price = o.spot_usd_per_hour if market == "spot" and o.spot_usd_per_hour is not None else o.usd_per_hour
    return Candidate(deployment, o, gpus_per_replica, quantization, market, rps_per_replica, ttft_ms, tpot_ms, price,
                     grid_g_per_kwh=grid, gpu_tdp_w=tdp_w)


def deployment(name: str, rps: float, cands: Sequence[Candidate], *, sources: Sequence[tuple[str, float]] = (("*", 1.0),),
               rtt: dict[tuple[str, str], float] | None = None, ttft_slo_ms: float = 1000.0, headroom: float = 0.0,
               data_egress: dict[str, float] | None = None, response_usd: float = 0.0, policies: Sequence[Any] = (),
               spec: Any = None, tokens_per_request: float = 1000.0) -> DeploymentInput:
    """rtt[(source, region)] in ms (missing: 0); response_usd: $/month per req/s served outside its region."""
    rtt = rtt or {}
    rtt_m = [[rtt.get((s, c.region), 0.0) for c in cands] for s, _ in sources]
    resp = [[0.0 if s == c.region else response_usd for c in cands] for s, _ in sources]
    return DeploymentInput(name, rps, headroom, list(sources), ttft_slo_ms, list(cands), rtt_m, resp,
                           dict(data_egress or {}), list(policies), spec, tokens_per_request)


class SpecStub:
    """The few spec fields policy hooks read (name, spot)."""

    def __init__(self, name: str, spot: str = "allow") -> None:
        self.name = name
        self.spot = spot


# ---- seeded random catalogs and deployment files (benchmarks) ------------------------------------------------
# Rough on-demand $/GPU-hour by GPU type, to centre the random prices (shared/facts/prices.md, 2025-2026 list
# prices per GPU: T4 0.53, A10G 1.0, L4 0.7-0.8, L40S 1.86, A100 ~3.7/4.1/8 GPUs, H100 ~6.9, H200 ~10.6, B200 ~14,
# MI300X ~6). Only the relative scale matters for a solver benchmark.
BASE_USD_PER_GPU_HOUR = {"T4": 0.53, "A10G": 1.0, "L4": 0.8, "L40S": 1.86, "A100-40GB": 3.0, "A100-80GB": 4.1,
                         "H100": 6.9, "H100-PCIe": 5.5, "H200": 10.6, "B200": 14.0, "MI300X": 6.0}
CONTINENTS = {"na": (40.0, -95.0), "eu": (50.0, 10.0), "asia": (30.0, 110.0), "oc": (-30.0, 140.0), "sa": (-15.0, -55.0)}


def random_catalog(n_offerings: int, seed: int = 0, *, regions_per_100: float = 2.0) -> Any:
    """A Catalog (orchestrator.catalog.load) of n random offerings over random regions of aws/gcp/azure."""
    import random

    from orchestrator.catalog.egress import load_egress
    from orchestrator.catalog.gpus import all_gpus
    from orchestrator.catalog.load import Catalog, QuotaRule
    from orchestrator.catalog.types import Region

    rng = random.Random(seed)
    gpus = {g.name: g for g in all_gpus() if g.vendor != "cpu"}
    n_regions = max(6, int(n_offerings * regions_per_100 / 100))
    regions: dict[str, Region] = {}
    for i in range(n_regions):
        provider = ("aws", "gcp", "azure")[i % 3]
        cont = rng.choice(list(CONTINENTS))
        lat0, lon0 = CONTINENTS[cont]
        rid = f"{provider}:{cont}-r{i}"
        regions[rid] = Region(rid, provider, f"{cont}-r{i}", f"synthetic {i}", cont, lat0 + rng.uniform(-12, 12),
                              lon0 + rng.uniform(-20, 20), rng.uniform(20, 700), "synthetic", "2026-01-01")
    rids = list(regions)
    offers = []
    for k in range(n_offerings):
        rid = rng.choice(rids)
        gname = rng.choice(list(BASE_USD_PER_GPU_HOUR))
        count = rng.choice([1, 1, 2, 4, 8, 8])
        price = round(BASE_USD_PER_GPU_HOUR[gname] * count * rng.uniform(0.7, 1.5), 4)
        spot = round(price * rng.uniform(0.3, 0.6), 4) if rng.random() < 0.5 else None
        offers.append(offering(rid, price, gname, count, spot=spot, instance_type=f"{gname.lower()}-{count}x-{k}"))
    quotas = [QuotaRule(p, None, g, rng.choice([32, 64, 128])) for p in ("aws", "gcp", "azure") for g in ("H100", "H200", "A100-80GB")]
    return Catalog(gpus=gpus, offerings=offers, regions=regions, egress=load_egress(), quotas=quotas, as_of="2026-01-01")


def random_spec(n_deployments: int, region_ids: Sequence[str], seed: int = 0, *, budget: float | None = None) -> Any:
    """A DeploymentFile with n random deployments (registry models small enough for single nodes mostly)."""
    import random

    from orchestrator.spec.models import DeploymentFile

    rng = random.Random(seed)
    models = ["llama-3.1-8b", "llama-3.1-70b", "mistral-7b", "qwen2.5-7b", "qwen2.5-72b", "gemma-2-9b", "gemma-2-27b",
              "phi-3-mini", "mixtral-8x7b"]
    deps = []
    for i in range(n_deployments):
        srcs = rng.sample(list(region_ids), k=min(len(region_ids), rng.randint(1, 3)))
        shares = [rng.uniform(0.2, 1.0) for _ in srcs]
        tot = sum(shares)
        shares = [round(s / tot, 6) for s in shares]
        shares[-1] = round(1.0 - sum(shares[:-1]), 6)
        deps.append({
            "name": f"d{i}", "model": rng.choice(models), "quantization": rng.choice([["bf16"], ["bf16", "fp8"], ["fp8"]]),
            "traffic": {"requests_per_second": round(rng.uniform(1, 80), 1), "input_tokens": rng.choice([500, 1000, 2000, 4000]),
                        "output_tokens": rng.choice([100, 200, 400]),
                        "sources": [{"region": r, "share": s} for r, s in zip(srcs, shares)]},
            "slo": {"ttft_p95_ms": rng.choice([1500, 3000, 6000]), "tpot_p95_ms": rng.choice([50, 80, 120])},
            "data": [{"region": rng.choice(list(region_ids)), "gb_per_month": rng.choice([0, 100, 2000, 20000])}],
            "spot": rng.choice(["forbid", "forbid", "allow", "prefer"]),
        })
    data: dict[str, Any] = {"version": 1, "project": "bench", "deployments": deps}
    if budget:
        data["budget"] = {"monthly_usd": budget}
    return DeploymentFile.model_validate(data)


class LoadedStub:
    """What placement reads from a LoadedSpec, for generated specs (no file)."""

    def __init__(self, spec: Any) -> None:
        from pathlib import Path

        self.spec = spec
        self.path = Path("<generated>")
        self.base_dir = Path(".")
        self.sha256 = ""

    def problem(self, path: tuple, message: str) -> Any:
        from orchestrator.errors import Problem

        return Problem(message, ".".join(str(p) for p in path))
