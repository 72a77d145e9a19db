"""The performance model's public API: estimate, estimate_batch, min_gpus_to_fit, best_achievable."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.catalog.types import GPU
from orchestrator.model_registry import ModelArch
from orchestrator.perf import profiles as _profiles
from orchestrator.perf.roofline import evaluate
from orchestrator.perf.types import Estimate, Workload

GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)  # >8: multi-node
SINGLE_NODE_COUNTS: tuple[int, ...] = (1, 2, 4, 8)


def _validate(input_tokens: int, output_tokens: int) -> None:
    if input_tokens <= 0 or output_tokens <= 0:
        raise ValueError(f"input and output tokens must be positive (got {input_tokens} and {output_tokens})")


def _finish(
    est: Estimate,
    model: ModelArch,
    gpu: GPU,
    gpus: int,
    quantization: str,
    workload: Workload,
    tpot_slo_ms: float | None,
    utilization: float,
) -> Estimate:
    """Min-GPU figures; and a measured profile (orch bench) of this configuration replaces the model's figures
    (measured beats modelled: source="measured", the band is the measurement's own, not the model's)."""
    w = workload
    if not est.fits:
        need = max(w.input_tokens + w.output_tokens, 1)
        n = min_gpus_to_fit(model, gpu, quantization, w.kv_cache_dtype, w.gpu_memory_utilization, need)
        est = dataclasses.replace(est, min_gpus_to_fit=n)
        if n is not None and est.reason and est.reason.startswith(("does not fit", "fits the weights")):
            est = dataclasses.replace(est, reason=f"{est.reason}; the smallest count that fits is {n}x{gpu.name}")
        return est
    est = dataclasses.replace(est, min_gpus_to_fit=min_gpus_to_fit(model, gpu, quantization, w.kv_cache_dtype,
                                                                   w.gpu_memory_utilization, w.input_tokens + w.output_tokens))
    profile = _profiles.find_profile(model.name, gpu.name, gpus, quantization)
    if profile is not None and profile.kv_cache_dtype == w.kv_cache_dtype and profile.engine == est.engine:
        est = _profiles.apply_profile(est, profile, w.input_tokens, w.output_tokens, tpot_slo_ms, utilization)
        if est.source == "measured":
            est = dataclasses.replace(est, edge="central", band_lo=1.0, band_hi=1.0,
                                      band_basis=f"measured profile ({profile.measured_at:%Y-%m-%d}, orch bench)")
    return est


@lru_cache(maxsize=65536)
def estimate(
    model: ModelArch,
    gpu: GPU,
    gpus: int,
    quantization: str,
    workload: Workload,
    *,
    tpot_slo_ms: float | None = None,
    utilization: float = 0.7,
    edge: str = "central",
) -> Estimate:
    """Figures for one configuration: fits?, KV capacity, max batch at the SLO, TPOT, TTFT, req/s; with the error
    band, and at its pessimistic edge when ``edge="pessimistic"``."""
    _validate(workload.input_tokens, workload.output_tokens)
    (est,) = evaluate(model, [(gpu, gpus, quantization)], workload, tpot_slo_ms=tpot_slo_ms, utilization=utilization,
                      edge=edge)
    return _finish(est, model, gpu, gpus, quantization, workload, tpot_slo_ms, utilization)


def estimate_batch(
    model: ModelArch,
    configs: Sequence[tuple[GPU, int, str]],
    input_tokens: int,
    output_tokens: int,
    *,
    tpot_slo_ms: float | None = None,
    kv_cache_dtype: str = "auto",
    utilization: float = 0.7,
    edge: str = "central",
) -> list[Estimate]:
    """estimate() for many (GPU, GPU count, quantization) configurations, vectorized with numpy."""
    _validate(input_tokens, output_tokens)
    workload = Workload(input_tokens, output_tokens, kv_cache_dtype=kv_cache_dtype)
    raw = evaluate(model, list(configs), workload, tpot_slo_ms=tpot_slo_ms, utilization=utilization, edge=edge)
    return [_finish(est, model, gpu, n, q, workload, tpot_slo_ms, utilization) for est, (gpu, n, q) in zip(raw, configs)]


@lru_cache(maxsize=16384)
def min_gpus_to_fit(
    model: ModelArch,
    gpu: GPU,
    quantization: str,
    kv_cache_dtype: str = "auto",
    gpu_memory_utilization: float = 0.9,
    min_kv_tokens: int = 0,
) -> int | None:
    """The smallest GPU count in 1, 2, 4, 8, 16, 24 ... 64 whose memory holds the model plus
    `min_kv_tokens` of KV cache (at least one token), or None if none does (or it is unsupported)."""
    tokens = max(int(min_kv_tokens), 2)
    workload = Workload(tokens - 1, 1, kv_cache_dtype=kv_cache_dtype, gpu_memory_utilization=gpu_memory_utilization)
    results = evaluate(model, [(gpu, n, quantization) for n in GPU_COUNTS], workload)
    for n, est in zip(GPU_COUNTS, results):
        if est.fits:
            return n
    return None


@dataclass(frozen=True)
class Achievable:
    tpot_ms: float  # lowest batch-1 TPOT any known GPU reaches
    ttft_ms: float  # lowest unloaded TTFT any known GPU reaches
    gpu: str  # where the lowest TPOT is reached
    gpus: int
    quantization: str
    ttft_gpu: str = ""
    ttft_gpus: int = 0
    ttft_quantization: str = ""

    def describe(self) -> str:
        return f"{self.tpot_ms:.1f} ms on {self.gpus}\u00d7{self.gpu} ({self.quantization})"

    def describe_ttft(self) -> str:
        return f"{self.ttft_ms:.0f} ms on {self.ttft_gpus}\u00d7{self.ttft_gpu} ({self.ttft_quantization})"


@lru_cache(maxsize=4096)
def _best(model: ModelArch, quantizations: tuple[str, ...], input_tokens: int, output_tokens: int) -> Achievable | None:
    from orchestrator.catalog.gpus import all_gpus

    configs = [(g, n, q) for g in all_gpus() if g.vendor != "cpu" for n in GPU_COUNTS for q in quantizations]
    best_tpot: Estimate | None = None
    best_ttft: Estimate | None = None
    for est in evaluate(model, configs, Workload(input_tokens, output_tokens)):
        if not est.fits:
            continue
        if best_tpot is None or est.tpot_ms_batch1 < best_tpot.tpot_ms_batch1:
            best_tpot = est
        if best_ttft is None or est.ttft_ms_unloaded < best_ttft.ttft_ms_unloaded:
            best_ttft = est
    if best_tpot is None or best_ttft is None:
        return None
    return Achievable(
        tpot_ms=best_tpot.tpot_ms_batch1,
        ttft_ms=best_ttft.ttft_ms_unloaded,
        gpu=best_tpot.gpu,
        gpus=best_tpot.gpus,
        quantization=best_tpot.quantization,
        ttft_gpu=best_ttft.gpu,
        ttft_gpus=best_ttft.gpus,
        ttft_quantization=best_ttft.quantization,
    )


def best_achievable(model: ModelArch, quantizations: list[str], input_tokens: int, output_tokens: int) -> Achievable:
    """The lowest batch-1 TPOT and unloaded TTFT any known GPU type (not the CPU row) reaches, at
    any GPU count, with any of `quantizations`. Used to reject SLOs no hardware could meet.
    Raises ValueError when the model fits nowhere."""
    _validate(input_tokens, output_tokens)
    best = _best(model, tuple(sorted(set(quantizations))), input_tokens, output_tokens)
    if best is None:
        raise ValueError(f"{model.name} fits on no known GPU with up to {GPU_COUNTS[-1]} GPUs and {quantizations}")
    return best


def clear_caches(profiles: bool = True) -> None:
    """Drop memoized estimates (after calibration or profiles change)."""
    from orchestrator.perf.capacity import replica_capacity

    estimate.cache_clear()
    min_gpus_to_fit.cache_clear()
    _best.cache_clear()
    replica_capacity.cache_clear()
    if profiles:
        _profiles._index.cache_clear()
    from orchestrator.perf import band

    band.clear()


_profiles.on_clear(lambda: clear_caches(profiles=False))
