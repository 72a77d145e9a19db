"""Efficiency factors that turn datasheet peaks into achievable figures.

Loaded from orchestrator/data/calibration.yaml. Two layers, so a measurement of one engine still informs the
hardware figures of another while the engine's own behaviour stays its own:

- hardware: per GPU family, the achievable share of peak bandwidth (eff_bw) and FLOPS (eff_flops);
- engine (vllm = vLLM V1, what orch deploys; vllm-v0 = vLLM 0.5-0.7; trtllm; sglang): an engine factor
  (kernel_efficiency, multiplying both hardware shares), a fixed per-step overhead (step_overhead_ms) and a
  per-running-sequence CPU cost per step (per_seq_us: scheduling, sampling, detokenizing in Python).

An ``engines.<engine>.families.<family>`` entry overrides the product for that pair (e.g. the CPU row). The
fitted values come from benchmarks/perf_model_accuracy.py --fit against orchestrator/data/measurements.csv.
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
    per_seq_us: float = 0.0  # per running sequence per step: the engine's CPU work that grows with the batch
    kernel_efficiency: float = 1.0  # the engine factor already folded into eff_bw and eff_flops (for --explain)


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
        per_seq_us=float(row.get("per_seq_us", b.per_seq_us)),
        kernel_efficiency=float(row.get("kernel_efficiency", b.kernel_efficiency)),
    )


def _combine(hw: dict[str, Any], eng: dict[str, Any], engine: str, family: str) -> Factors:
    """Hardware shares x the engine factor, with the engine's overheads."""
    k = float(eng.get("kernel_efficiency", 1.0))
    return Factors(
        eff_bw=min(0.98, float(hw["eff_bw"]) * k),
        eff_flops=min(0.98, float(hw["eff_flops"]) * k),
        step_overhead_ms=float(eng.get("step_overhead_ms", 1.0)),
        per_seq_us=float(eng.get("per_seq_us", 0.0)),
        kernel_efficiency=k,
        source=f"hardware {family}: {hw.get('source', '')}; engine {engine}: {eng.get('source', '')}",
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
    return from_raw(_raw(), engine)


def raw_calibration() -> dict[str, Any]:
    """A deep copy of calibration.yaml as data (the fit changes values in it and rebuilds)."""
    import copy

    return copy.deepcopy(_raw())


def from_raw(raw: dict[str, Any], engine: str) -> Calibration:
    """The calibration of one engine from calibration.yaml's data."""
    engines = raw["engines"]
    if engine not in engines:
        raise ValueError(f"no calibration for engine {engine!r}; known: {', '.join(engines)}")
    e = engines[engine]
    hardware = raw.get("hardware") or {}
    default = _combine(hardware.get("default", raw["default"]), e, engine, "default") if "hardware" in raw \
        else _factors(e.get("default", {}), _factors(raw["default"]))
    families = {fam: _combine(row, e, engine, fam) for fam, row in (hardware.get("families") or {}).items()}
    # an (engine, family) entry overrides the product: a family measured only on this engine, or the CPU row
    families.update({fam: _factors(row, families.get(fam, default)) for fam, row in (e.get("families") or {}).items()})
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
