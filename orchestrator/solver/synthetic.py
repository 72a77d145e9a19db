"""Synthetic solver inputs for tests and benchmarks: candidates without a catalog or performance model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.candidates import Candidate
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
