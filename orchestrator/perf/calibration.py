"""Efficiency factors that turn datasheet peaks into achievable figures.

Loaded from orchestrator/data/calibration.yaml: per engine (vllm default, trtllm for NVIDIA's
published TensorRT-LLM tables) and per GPU family. The fitted values come from
benchmarks/perf_model_accuracy.py --fit against orchestrator/data/measurements.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from orchestrator.catalog.types import GPU


@dataclass(frozen=True)
class Factors:
    eff_bw: float  # achieved / peak memory bandwidth in decode
    eff_flops: float  # achieved / peak dense FLOPS in prefill and compute-bound decode
    step_overhead_ms: float  # fixed per decode step: scheduler, sampling, kernel launches
    source: str = ""


@dataclass(frozen=True)
class Comm:
    allreduce_latency_us: float  # per all-reduce, on top of bytes / link bandwidth
    link_gbps: float | None = None  # overrides the GPU's own link (inter-node)


@dataclass(frozen=True)
class Calibration:
    engine: str
    families: dict[str, Factors]
    default: Factors
    max_num_seqs: int
    max_num_seqs_large: int  # GPUs with >= large_memory_gib and not excluded (vLLM get_batch_defaults)
    large_memory_gib: float
    large_memory_exclude: tuple[str, ...]
    max_num_seqs_cpu: int
    runtime_overhead_gb: float  # per GPU: CUDA context, CUDA graphs, NCCL buffers
    activation_gb_per_khidden: float  # per GPU per 1024 of hidden size: peak activations of a prefill chunk
    cpu_runtime_overhead_gb: float
    nvlink: Comm
    pcie: Comm
    internode: Comm
    ttft_p95_factor: float  # p95 / mean of the queueing wait

    def factors(self, gpu: GPU) -> Factors:
        return self.families.get(gpu.family, self.default)

    def batch_limit(self, gpu: GPU) -> int:
        """The engine's default cap on running sequences (vLLM --max-num-seqs)."""
        if gpu.vendor == "cpu":
            return self.max_num_seqs_cpu
        name = gpu.name.lower()
        if gpu.memory_gb >= self.large_memory_gib and not any(x in name for x in self.large_memory_exclude):
            return self.max_num_seqs_large
        return self.max_num_seqs


def _factors(row: dict[str, Any], base: Factors | None = None) -> Factors:
    b = base or Factors(0.75, 0.5, 1.0)
    return Factors(
        eff_bw=float(row.get("eff_bw", b.eff_bw)),
        eff_flops=float(row.get("eff_flops", b.eff_flops)),
        step_overhead_ms=float(row.get("step_overhead_ms", b.step_overhead_ms)),
        source=str(row.get("source", "")),
    )


def _comm(row: dict[str, Any]) -> Comm:
    link = row.get("link_gbps")
    return Comm(allreduce_latency_us=float(row["allreduce_latency_us"]), link_gbps=float(link) if link else None)


@cache
def _raw() -> dict[str, Any]:
    import yaml

    text = resources.files("orchestrator.data").joinpath("calibration.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def load_calibration(engine: str = "vllm") -> Calibration:
    raw = _raw()
    engines = raw["engines"]
    if engine not in engines:
        raise ValueError(f"no calibration for engine {engine!r}; known: {', '.join(engines)}")
    e = engines[engine]
    default = _factors(e.get("default", {}), _factors(raw["default"]))
    families = {fam: _factors(row, default) for fam, row in (e.get("families") or {}).items()}
    comm = raw["communication"]
    mem = raw["memory"]
    seqs = e["max_num_seqs"]
    return Calibration(
        engine=engine,
        families=families,
        default=default,
        max_num_seqs=int(seqs["default"]),
        max_num_seqs_large=int(seqs.get("large_memory", seqs["default"])),
        large_memory_gib=float(seqs.get("large_memory_gib", 1e9)),
        large_memory_exclude=tuple(seqs.get("large_memory_exclude", [])),
        max_num_seqs_cpu=int(seqs.get("cpu", seqs["default"])),
        runtime_overhead_gb=float(mem["runtime_overhead_gb"]),
        activation_gb_per_khidden=float(mem["activation_gb_per_khidden"]),
        cpu_runtime_overhead_gb=float(mem["cpu_runtime_overhead_gb"]),
        nvlink=_comm(comm["nvlink"]),
        pcie=_comm(comm["pcie"]),
        internode=_comm(comm["internode"]),
        ttft_p95_factor=float(raw["queueing"]["ttft_p95_factor"]),
    )


def engines() -> list[str]:
    return list(_raw()["engines"])
