"""The performance model's records: what it is asked about (a Workload) and what it answers (an Estimate)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Workload:
    """What a configuration serves and how: the request shape (mean input and output tokens, I and O of the
    roofline) and the engine with the settings its memory fit depends on (vLLM's --kv-cache-dtype,
    --gpu-memory-utilization and --max-model-len; None: one request of I + O tokens must fit)."""

    input_tokens: int
    output_tokens: int
    kv_cache_dtype: str = "auto"
    engine: str = "vllm"
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None


@dataclass(frozen=True)
class Estimate:
    fits: bool
    reason: str | None
    weights_gb: float  # all GPUs
    memory_needed_gb: float  # weights + runtime overhead, all GPUs
    memory_available_gb: float  # memory x gpu_memory_utilization, all GPUs
    kv_capacity_tokens: int
    max_batch: int
    tpot_ms_batch1: float
    tpot_ms: float  # at max_batch, with interleaved prefills
    max_output_tokens_per_s: float
    ttft_ms: float  # p95 at the planned utilization
    ttft_ms_unloaded: float
    requests_per_s: float  # per replica at the SLO
    min_gpus_to_fit: int | None
    source: str  # "model" | "measured"
    gpu: str = ""
    gpus: int = 0
    quantization: str = ""
    prefill_ms: float = 0.0
    engine: str = "vllm"
    edge: str = "central"  # which edge of the band the figures are: central | pessimistic (orchestrator/perf/band.py)
    band_lo: float = 1.0  # measured / predicted throughput at the band's pessimistic edge
    band_hi: float = 1.0
    band_basis: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                value = None if not math.isfinite(value) else round(value, 4)
            out[key] = value
        return out
