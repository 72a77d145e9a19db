"""What one running replica sustains at its SLO: output tokens/s and requests in flight.

A matching measured profile (`orch bench`) gives the figures, else the performance model; reports size
utilization with them and the autoscaler its decisions. The model is found by the name apply recorded (a
registry name, or the config.json's directory name, as bench names its profiles) and, off the registry, by the
config.json it was served from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Capacity:
    output_tokens_per_s: float  # one replica, at the TPOT SLO
    concurrency: float  # requests it runs at once there (the batch size the SLO allows)
    source: str  # "measured" (a profile) or "model"


def replica_arch(model: str, hf_id: str | None) -> Any:
    """The replica's architecture: a registry model, else the local config.json it was served from."""
    from orchestrator.model_registry import lookup_model

    arch = lookup_model(model)
    if arch is None and hf_id and Path(hf_id).exists():
        from orchestrator.hf_config import load_hf_config

        arch = load_hf_config(Path(hf_id))
    return arch


@lru_cache(maxsize=256)
def replica_capacity(
    model: str, gpu: str, gpus: int, quantization: str, input_tokens: int = 1000, output_tokens: int = 250,
    tpot_slo_ms: float | None = None, hf_id: str | None = None,
) -> Capacity | None:
    """None when it cannot be said (unknown model or GPU, or the configuration does not fit)."""
    try:
        from orchestrator.catalog.gpus import get_gpu
        from orchestrator.perf import Workload, estimate

        arch = replica_arch(model, hf_id)
        if arch is None:
            return None
        est = estimate(arch, get_gpu(gpu), gpus, quantization or "bf16", Workload(input_tokens, output_tokens),
                       tpot_slo_ms=tpot_slo_ms)
    except Exception:  # noqa: BLE001 - unknown GPU, unreadable profile or config: no figure
        return None
    if not est.fits or est.max_output_tokens_per_s <= 0:
        return None
    return Capacity(float(est.max_output_tokens_per_s), float(max(est.max_batch, 1)), est.source)
