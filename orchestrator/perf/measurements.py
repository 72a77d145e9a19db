"""Public measurements (orchestrator/data/measurements.csv) and the model's prediction for each."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from importlib import resources

from orchestrator.catalog.gpus import get_gpu
from orchestrator.model_registry import lookup_model
from orchestrator.perf.calibration import (
    Calibration,
    Factors,
    from_raw,
    load_calibration,
)
from orchestrator.perf.explain import throughput_at
from orchestrator.perf.types import Workload

# Metric groups: the accuracy report and the fit judge throughput, batch-1 TPOT and TTFT separately.
GROUPS: dict[str, tuple[str, ...]] = {
    "throughput": ("max_output_tokens_per_s", "output_tokens_per_s", "static_batch_output_tokens_per_s"),
    "tpot_batch1": ("tpot_ms_batch1",),
    "ttft": ("ttft_ms",),
}
METRICS = tuple(metric for metrics in GROUPS.values() for metric in metrics)


@dataclass(frozen=True)
class Measurement:
    model: str
    gpu: str
    gpus: int
    quantization: str
    input_tokens: int
    output_tokens: int
    concurrency: int | None
    metric: str
    value: float
    engine: str
    source: str
    date: str
    holdout: bool
    note: str
    engine_version: str = ""

    @property
    def bucket(self) -> str:
        return seq_bucket(self.input_tokens, self.output_tokens)

    @property
    def group(self) -> str:
        return next(g for g, metrics in GROUPS.items() if self.metric in metrics)

    @property
    def family(self) -> str:
        return get_gpu(self.gpu).family

    def label(self) -> str:
        c = f" c={self.concurrency}" if self.concurrency else ""
        return f"{self.model} {self.gpus}x{self.gpu} {self.quantization} {self.input_tokens}/{self.output_tokens}{c} [{self.engine}]"


def seq_bucket(input_tokens: int, output_tokens: int) -> str:
    """The sequence-length neighbourhood of a request shape: short (I + O <= 512), medium (<= 4,096), long."""
    total = input_tokens + output_tokens
    return "short" if total <= 512 else "medium" if total <= 4096 else "long"


def load_measurements() -> list[Measurement]:
    text = resources.files("orchestrator.data").joinpath("measurements.csv").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for r in csv.DictReader(lines):
        out.append(
            Measurement(
                model=r["model"],
                gpu=r["gpu"],
                gpus=int(r["gpus"]),
                quantization=r["quantization"],
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                concurrency=int(r["concurrency"]) if r["concurrency"] else None,
                metric=r["metric"],
                value=float(r["value"]),
                engine=r["engine"],
                source=r["source"],
                date=r["date"],
                holdout=r["holdout"].strip().lower() == "true",
                note=r["note"],
                engine_version=(r.get("engine_version") or "").strip(),
            )
        )
    return out


def predict(m: Measurement, cal: Calibration | None = None) -> float:
    """The model's figure for the measurement's setup and metric."""
    model = lookup_model(m.model)
    if model is None:
        raise ValueError(f"measurement names unknown model {m.model!r}")
    gpu = get_gpu(m.gpu)
    cal = cal or load_calibration(m.engine)
    concurrency = 1 if m.metric in ("tpot_ms_batch1", "ttft_ms") else m.concurrency
    workload = Workload(m.input_tokens, m.output_tokens, engine=m.engine)
    r = throughput_at(model, gpu, m.gpus, m.quantization, workload, concurrency, cal=cal)
    if m.metric in ("max_output_tokens_per_s", "output_tokens_per_s"):
        return r["output_tokens_per_s"]
    if m.metric == "static_batch_output_tokens_per_s":
        return r["static_batch_output_tokens_per_s"]
    if m.metric == "tpot_ms_batch1":
        return r["step_ms_batch1"]
    if m.metric == "ttft_ms":
        return r["ttft_ms_unloaded"]
    raise ValueError(f"unknown metric {m.metric!r}")


def with_factors(cal: Calibration, family: str, factors: Factors) -> Calibration:
    """A copy of `cal` with one family's factors replaced (for fitting)."""
    return dataclasses.replace(cal, families={**cal.families, family: factors})


def fit_family(rows: list[Measurement], cal: Calibration, family: str, rounds: int = 4) -> tuple[Factors, float]:
    """Weighted least squares on log error over `rows` (one engine, one family): coordinate search over
    eff_bw, eff_flops and step_overhead_ms within physical bounds. Each metric group present weighs the
    same, so one batch-1 TPOT row is not outvoted by many throughput rows. Returns (factors, weighted
    rms log error)."""
    import numpy as np

    grids = {
        "eff_bw": np.linspace(0.30, 0.95, 66),
        "eff_flops": np.linspace(0.15, 0.90, 76),
        "step_overhead_ms": np.concatenate([np.linspace(0.1, 5.0, 50), np.linspace(5.5, 30.0, 50)]),
    }
    per_group: dict[str, int] = {}
    for m in rows:
        per_group[m.group] = per_group.get(m.group, 0) + 1
    weights = np.array([1.0 / per_group[m.group] for m in rows])
    weights /= weights.sum()
    best = cal.factors(get_gpu(rows[0].gpu))

    def loss(f: Factors) -> float:
        c = with_factors(cal, family, f)
        errs = np.array([np.log(predict(m, c) / m.value) for m in rows])
        return float(np.sqrt(np.sum(weights * errs**2)))

    best_loss = loss(best)
    for _ in range(rounds):
        for name, grid in grids.items():
            for v in grid:
                trial = dataclasses.replace(best, **{name: float(v)})
                val = loss(trial)
                if val < best_loss - 1e-12:
                    best, best_loss = trial, val
    return best, best_loss


# Fitted parameters: (section, name, key, grid). Hardware shares per family; the engine factor and overheads per
# engine (vllm's kernel_efficiency is the reference, 1.0).
def _grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def fit_joint(rows: list[Measurement], raw: dict, rounds: int = 3) -> tuple[dict, float]:
    """Coordinate search over the hardware layer (eff_bw, eff_flops of each family in `rows`) and the engine layer
    (kernel_efficiency, step_overhead_ms, per_seq_us of each engine in `rows`), minimising the weighted rms log
    error; each metric group weighs the same, so one batch-1 TPOT row is not outvoted by many throughput rows.
    Returns (the fitted raw calibration data, its loss). `raw` is changed in place."""
    import math as _m

    per_group: dict[str, int] = {}
    for m in rows:
        per_group[m.group] = per_group.get(m.group, 0) + 1
    weights = [1.0 / per_group[m.group] for m in rows]
    total = sum(weights)
    weights = [w / total for w in weights]
    params: list[tuple[dict, str, list[float]]] = []
    hw = raw["hardware"]["families"]
    for fam in sorted({m.family for m in rows}):
        row = hw.setdefault(fam, dict(raw["hardware"]["default"]))
        params += [(row, "eff_bw", _grid(0.30, 0.95, 27)), (row, "eff_flops", _grid(0.15, 0.85, 29))]
    for engine in sorted({m.engine for m in rows}):
        e = raw["engines"][engine]
        if engine != "vllm":
            params.append((e, "kernel_efficiency", _grid(0.6, 1.4, 33)))
        params += [(e, "step_overhead_ms", _grid(0.1, 6.0, 60)), (e, "per_seq_us", _grid(0.0, 60.0, 61))]
    used = sorted({m.engine for m in rows})

    def loss() -> float:
        cals = {engine: from_raw(raw, engine) for engine in used}
        err = 0.0
        for m, w in zip(rows, weights):
            err += w * _m.log(predict(m, cals[m.engine]) / m.value) ** 2
        return _m.sqrt(err)

    best = loss()
    for _ in range(rounds):
        for row, key, grid in params:
            keep = row[key]
            for v in grid:
                row[key] = v
                val = loss()
                if val < best - 1e-12:
                    best, keep = val, v
            row[key] = keep
    return raw, best
