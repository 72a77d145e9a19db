"""orch's performance model: memory fit, KV capacity, TPOT/TTFT and capacity per replica.

Public API (others call these exact names):
    estimate(model, gpu, gpus, quantization, workload, *, tpot_slo_ms=None, utilization=0.7,
             edge="central") -> Estimate
        workload = Workload(input_tokens, output_tokens, kv_cache_dtype="auto", engine="vllm",
                            gpu_memory_utilization=0.9, max_model_len=None)
    estimate_batch(model, configs, input_tokens, output_tokens, *, tpot_slo_ms=None,
                   kv_cache_dtype="auto", utilization=0.7) -> list[Estimate]
    min_gpus_to_fit(model, gpu, quantization, kv_cache_dtype="auto",
                    gpu_memory_utilization=0.9, min_kv_tokens=0) -> int | None
    best_achievable(model, quantizations, input_tokens, output_tokens) -> Achievable
    Profile, ProfilePoint, load_profiles(dir=None), save_profile(profile, dir)
"""

from orchestrator.perf.api import (
    GPU_COUNTS,
    SINGLE_NODE_COUNTS,
    Achievable,
    best_achievable,
    clear_caches,
    estimate,
    estimate_batch,
    min_gpus_to_fit,
)
from orchestrator.perf.profiles import (
    Profile,
    ProfilePoint,
    load_profiles,
    save_profile,
)
from orchestrator.perf.quant import KV_DTYPES, QUANTIZATIONS, unsupported_reason
from orchestrator.perf.types import Estimate, Workload

__all__ = [
    "GPU_COUNTS",
    "KV_DTYPES",
    "QUANTIZATIONS",
    "SINGLE_NODE_COUNTS",
    "Achievable",
    "Estimate",
    "Profile",
    "ProfilePoint",
    "Workload",
    "best_achievable",
    "clear_caches",
    "estimate",
    "estimate_batch",
    "load_profiles",
    "min_gpus_to_fit",
    "save_profile",
    "unsupported_reason",
]
