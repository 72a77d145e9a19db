"""What a prediction rests on: the roofline terms and factors (orch estimate --explain, orch place --json), and the
figures at a given concurrency that the calibration compares with public measurements."""

from __future__ import annotations

from typing import Any

from orchestrator.catalog.types import GPU
from orchestrator.model_registry import ModelArch
from orchestrator.perf.calibration import Calibration, load_calibration
from orchestrator.perf.roofline import _Batch
from orchestrator.perf.types import Workload


def throughput_at(
    model: ModelArch,
    gpu: GPU,
    gpus: int,
    quantization: str,
    workload: Workload,
    concurrency: int | None,
    *,
    cal: Calibration | None = None,
) -> dict[str, float]:
    """Predicted figures at a given concurrency (None: the engine/KV limit), for calibration."""
    cal = cal or load_calibration(workload.engine)
    bt = _Batch(model, [(gpu, gpus, quantization)], workload, cal)
    input_tokens, output_tokens = workload.input_tokens, workload.output_tokens
    cap = float(bt.batch_cap()[0])
    b = max(1.0, min(float(concurrency), cap) if concurrency else cap)
    tpot = float(bt.tpot(b)[0])
    # a static batch (vLLM's benchmark_latency.py): B prompts prefilled together, then O - 1 decode steps at batch B
    # (the first token comes out of the prefill) over the mean context I + O/2 -- no prefill overlaps a decode step
    bs = float(concurrency or b)
    static_s = float(bt.terms(0.0, bs * input_tokens)["step_s"][0]) + (output_tokens - 1) * float(bt.step(bs)[0])
    return {
        "batch": b,
        "static_batch_output_tokens_per_s": bs * output_tokens / static_s,
        "step_ms_batch1": float(bt.step(1.0)[0]) * 1e3,
        "tpot_ms": tpot * 1e3,
        "output_tokens_per_s": b / tpot,
        "ttft_ms_unloaded": float(bt.prefill[0] + bt.step(1.0)[0]) * 1e3,
        "prefill_ms": float(bt.prefill[0]) * 1e3,
    }


def explain(model: ModelArch, gpu: GPU, gpus: int, quantization: str, workload: Workload, batch: int) -> dict[str, Any]:
    """The terms of a batch-1 decode step and of a loaded step at `batch` (with its B x I/O prefill tokens), the
    factors used and where they come from, and the band: JSON-able."""
    from orchestrator.perf.band import band_for
    from orchestrator.perf.measurements import seq_bucket
    from orchestrator.perf.quant import kv_bytes_per_value

    engine, input_tokens, output_tokens = workload.engine, workload.input_tokens, workload.output_tokens
    cal = load_calibration(engine)
    bt = _Batch(model, [(gpu, gpus, quantization)], workload, cal)
    b = max(int(batch), 1)

    def terms(tb: int, prefill: float) -> dict[str, float]:
        t = bt.terms(float(tb), prefill)
        out = {k: float(v[0]) for k, v in t.items()}
        bound = "memory" if out["t_memory_s"] >= out["t_compute_s"] else "compute"
        res: dict[str, Any] = {"batch": tb, "prefill_tokens": round(prefill, 1), "bound": bound}
        for k, v in out.items():
            res[k.replace("_s", "_ms") if k.endswith("_s") else k] = round(v * 1e3, 4) if k.endswith("_s") else round(v)
        return res

    f = cal.factors(gpu)
    kvb = kv_bytes_per_value(workload.kv_cache_dtype)
    band = band_for(engine, gpu.family, seq_bucket(input_tokens, output_tokens))
    return {
        "engine": engine,
        "gpu_family": gpu.family,
        "peak": {"bandwidth_tbps": gpu.bandwidth_tbps, "tflops": float(bt.rate[0]) / 1e12},
        "factors": {"eff_bw": round(f.eff_bw, 4), "eff_flops": round(f.eff_flops, 4),
                    "engine_kernel_efficiency": f.kernel_efficiency, "step_overhead_ms": f.step_overhead_ms,
                    "per_seq_us": f.per_seq_us, "source": f.source},
        "model": {"params_b": model.params_b, "active_params_b": model.active_params_b,
                  "flops_params_b": model.active_params_b, "memory_params_b": model.params_b,
                  "attention": model.attention, "kv_bytes_per_token": model.kv_bytes_per_token(kvb),
                  "kv_bytes_per_token_per_gpu": float(bt.kv_tok_gpu[0]), "kv_split_by_tp": model.kv_split_by_tp},
        "mean_decode_context": bt.ctx,
        "kv_capacity_tokens": int(bt.kv_cap[0]),
        "batch_cap": int(bt.batch_cap()[0]),
        "prefill_ms": round(float(bt.prefill[0]) * 1e3, 3),
        "decode_batch1": terms(1, 0.0),
        "loaded_step": terms(b, b * input_tokens / output_tokens),
        "band": band.to_json(),
    }
