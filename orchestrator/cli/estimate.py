"""`orch estimate`: the performance model's figures for a model on one GPU configuration, or on
every GPU type side by side with $ per 1M output tokens."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from orchestrator.fmt import wrap_cells

if TYPE_CHECKING:
    from orchestrator.catalog.types import GPU
    from orchestrator.model_arch import ModelArch

QUANT_HELP = "bf16 | fp16 | fp8 | int8 | int4"


def _cheapest_gpu_hour() -> dict[tuple[str, int], float]:
    """Cheapest on-demand $ per GPU-hour in the shipped catalog snapshot, per (GPU type, GPU count of a
    replica): an instance with k GPUs serves replicas of n GPUs when n divides k (k/n replicas share it), or,
    beyond one node (n > 8), when n/k instances of at least 8 GPUs form one multi-node replica."""
    from orchestrator.catalog.offerings import snapshot_offerings
    from orchestrator.perf import GPU_COUNTS

    best: dict[tuple[str, int], float] = {}
    for o in snapshot_offerings():
        if o.provider in ("onprem", "local") or o.gpu_count <= 0 or o.usd_per_hour <= 0:
            continue
        for n in GPU_COUNTS:
            if o.gpu_count % n == 0 or (n > 8 and o.gpu_count >= 8 and n % o.gpu_count == 0):
                key = (o.gpu, n)
                best[key] = min(best.get(key, math.inf), o.usd_per_gpu_hour)
    return best


def _usd_per_1m(price: float | None, gpus: int, tokens_per_s: float) -> float | None:
    if price is None or tokens_per_s <= 0:
        return None
    return price * gpus / (tokens_per_s * 3600.0) * 1e6


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _check(input_tokens: int, output_tokens: int, quantization: str, kv_cache_dtype: str, tpot_slo_ms: float | None) -> None:
    from orchestrator.errors import UserError
    from orchestrator.perf import KV_DTYPES, QUANTIZATIONS
    from orchestrator.suggest import did_you_mean

    if input_tokens <= 0:
        raise UserError(f"--input-tokens must be a positive number of tokens, got {input_tokens}")
    if output_tokens <= 0:
        raise UserError(f"--output-tokens must be a positive number of tokens, got {output_tokens}")
    if quantization not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantization!r}{did_you_mean(quantization, list(QUANTIZATIONS))}; expected {QUANT_HELP}")
    if kv_cache_dtype not in KV_DTYPES:
        raise UserError(f"unknown KV cache dtype {kv_cache_dtype!r}; expected {' | '.join(KV_DTYPES)}")
    if tpot_slo_ms is not None and tpot_slo_ms <= 0:
        raise UserError(f"--tpot-slo-ms must be positive, got {tpot_slo_ms}")


@dataclass(frozen=True)
class _Query:
    """What `orch estimate` asks of the performance model, whatever the GPU: the model, how it is served, the
    request shape, and whether to explain the figures."""

    arch: ModelArch
    quantization: str
    kv_cache_dtype: str
    input_tokens: int
    output_tokens: int
    tpot_slo_ms: float | None
    explain: bool


def _one_gpu(q: _Query, gpu: str, gpus: int | None, json_out: bool) -> None:
    """The figures on one GPU type (``gpus``, else the smallest count that fits), printed or as JSON."""
    from orchestrator.catalog.gpus import get_gpu
    from orchestrator.perf import Workload, estimate, min_gpus_to_fit

    g = get_gpu(gpu)
    n = gpus or min_gpus_to_fit(q.arch, g, q.quantization, q.kv_cache_dtype, 0.9, q.input_tokens + q.output_tokens) or 1
    est = estimate(q.arch, g, n, q.quantization, Workload(q.input_tokens, q.output_tokens, kv_cache_dtype=q.kv_cache_dtype),
                   tpot_slo_ms=q.tpot_slo_ms)
    data = {"model": q.arch.name, "input_tokens": q.input_tokens, "output_tokens": q.output_tokens,
            "tpot_slo_ms": q.tpot_slo_ms, "kv_cache_dtype": q.kv_cache_dtype, **est.to_json()}
    if q.explain and est.fits:
        data["explain"] = _explain(q.arch, g, n, q.quantization, q.input_tokens, q.output_tokens, est, q.kv_cache_dtype)
    if json_out:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_one(data)
        if "explain" in data:
            _print_explain(data["explain"])
    if est.reason:
        typer.echo(f"note: {est.reason}" if est.fits else est.reason, err=True)


def _gpu_row(q: _Query, g: GPU, gpus: int | None, prices: dict[tuple[str, int], float]) -> dict[str, Any]:
    """One GPU type's row: at ``gpus``, else at the most cost-effective of the single-node counts that fit (else
    the smallest that fits); why not, where it does not fit at all."""
    from orchestrator.perf import (
        SINGLE_NODE_COUNTS,
        Workload,
        estimate,
        min_gpus_to_fit,
    )

    smallest = min_gpus_to_fit(q.arch, g, q.quantization, q.kv_cache_dtype, 0.9, q.input_tokens + q.output_tokens)
    if smallest is None:
        from orchestrator.perf import unsupported_reason

        reason = unsupported_reason(g, q.quantization) or "does not fit on up to 64 GPUs"
        return {"gpu": g.name, "gpus": None, "fits": False, "reason": reason,
                "usd_per_gpu_hour": None, "usd_per_1m_output_tokens": None}
    counts = [gpus] if gpus else [n for n in SINGLE_NODE_COUNTS if n >= smallest] or [smallest]
    best: dict[str, Any] | None = None
    for n in counts:
        est = estimate(q.arch, g, n, q.quantization, Workload(q.input_tokens, q.output_tokens, kv_cache_dtype=q.kv_cache_dtype),
                       tpot_slo_ms=q.tpot_slo_ms)
        price = prices.get((g.name, n))
        per_m = _usd_per_1m(price, n, est.max_output_tokens_per_s) if est.fits else None
        # with no price, tokens/s per GPU ranks the counts the same way $ per token would
        rank = per_m if per_m is not None else (n / est.max_output_tokens_per_s if est.max_output_tokens_per_s > 0 else math.inf)
        row = {**est.to_json(), "usd_per_gpu_hour": price, "usd_per_1m_output_tokens": per_m, "_rank": (per_m is None, rank)}
        if q.explain and est.fits:
            row["explain"] = _explain(q.arch, g, n, q.quantization, q.input_tokens, q.output_tokens, est, q.kv_cache_dtype)
        if best is None or row["_rank"] < best["_rank"]:
            best = row
    assert best is not None
    del best["_rank"]
    return best


def _compare(q: _Query, gpus: int | None, json_out: bool) -> None:
    """Every GPU type side by side, cheapest $ per 1M output tokens first, printed or as JSON."""
    from orchestrator.catalog.gpus import all_gpus

    prices = _cheapest_gpu_hour()
    rows = [_gpu_row(q, g, gpus, prices) for g in all_gpus() if g.vendor != "cpu"]
    rows.sort(key=lambda r: (r["usd_per_1m_output_tokens"] is None, r["usd_per_1m_output_tokens"] or 0.0,
                             not r["fits"], -(r.get("max_output_tokens_per_s") or 0.0)))
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_table(q.arch.name, q.quantization, q.input_tokens, q.output_tokens, q.tpot_slo_ms, rows)


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        model: str = typer.Option(..., "--model", help="registry name/alias, or a path to a Hugging Face config.json"),
        gpu: str | None = typer.Option(None, "--gpu", help="GPU type (omit to compare every GPU type)"),
        gpus: int | None = typer.Option(None, "--gpus", help="GPU count = tensor parallelism (default: with --gpu the smallest that fits; without, the most cost-effective of 1, 2, 4, 8)"),
        quantization: str = typer.Option("bf16", "--quantization", help=QUANT_HELP),
        kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto | fp8"),
        input_tokens: int = typer.Option(1000, "--input-tokens", help="mean input tokens per request"),
        output_tokens: int = typer.Option(1000, "--output-tokens", help="mean output tokens per request"),
        tpot_slo_ms: float | None = typer.Option(None, "--tpot-slo-ms", help="TPOT p95 target; sets the max batch"),
        json_out: bool = typer.Option(False, "--json", help="print JSON on stdout"),
        explain: bool = typer.Option(False, "--explain", help="print the roofline terms, factors and error band behind the figures"),
    ) -> None:
        """Predict memory fit, KV capacity, TPOT, TTFT and throughput per replica (performance model)."""
        from orchestrator.errors import UserError
        from orchestrator.model_registry import resolve_model

        quantization = quantization.lower()
        _check(input_tokens, output_tokens, quantization, kv_cache_dtype, tpot_slo_ms)
        if gpus is not None and gpus <= 0:
            raise UserError(f"--gpus must be a positive GPU count, got {gpus}")
        q = _Query(resolve_model(model), quantization, kv_cache_dtype, input_tokens, output_tokens, tpot_slo_ms, explain)
        if gpu is not None:
            _one_gpu(q, gpu, gpus, json_out)
        else:
            _compare(q, gpus, json_out)


def _explain(arch: Any, gpu: Any, n: int, q: str, i: int, o: int, est: Any, kv_cache_dtype: str) -> dict[str, Any]:
    from orchestrator.perf import Workload
    from orchestrator.perf.explain import explain

    data = explain(arch, gpu, n, q, Workload(i, o, kv_cache_dtype=kv_cache_dtype, engine=est.engine), est.max_batch)
    data["source"] = est.source  # "measured": an orch bench profile replaced the model's figures
    return data


def _print_explain(e: dict[str, Any]) -> None:
    from orchestrator.cli.console import out

    f, m, b = e["factors"], e["model"], e["band"]
    lines = [
        f"source: {e['source']}" + ("  (an orch bench profile replaced the model's figures below)" if e["source"] == "measured" else ""),
        f"engine {e['engine']}, GPU family {e['gpu_family']}: peak {e['peak']['bandwidth_tbps']} TB/s, {e['peak']['tflops']:,.0f} TFLOPS",
        f"factors: eff_bw {f['eff_bw']} x peak bandwidth, eff_flops {f['eff_flops']} x peak FLOPS (engine factor "
        f"{f['engine_kernel_efficiency']}), step overhead {f['step_overhead_ms']} ms + {f['per_seq_us']} us per running sequence",
        f"  from: {f['source']}",
        f"model: {m['params_b']}B parameters in memory, {m['active_params_b']}B active per token (FLOPs); {m['attention']}; "
        f"KV {m['kv_bytes_per_token']:,.0f} B/token, {m['kv_bytes_per_token_per_gpu']:,.0f} B/token per GPU",
        f"KV capacity {e['kv_capacity_tokens']:,} tokens -> at most {e['batch_cap']} running sequences of mean "
        f"context {e['mean_decode_context']:,.0f}; prefill alone {e['prefill_ms']:.1f} ms",
    ]
    for key, title in (("decode_batch1", "decode step, batch 1"), ("loaded_step", "loaded step")):
        t = e[key]
        lines.append(
            f"{title} (B={t['batch']}, {t['prefill_tokens']:,.0f} prefill tokens mixed in): {t['step_ms']:.2f} ms = "
            f"max(memory {t['t_memory_ms']:.2f}, compute {t['t_compute_ms']:.2f}) [{t['bound']} bound] + all-reduce "
            f"{t['t_comm_ms']:.2f} + overhead {t['t_overhead_ms']:.2f}; reads {t['weights_read_bytes_per_gpu'] / 1e9:.2f} GB "
            f"weights + {t['kv_read_bytes_per_gpu'] / 1e9:.2f} GB KV per GPU, {t['flops_per_gpu'] / 1e12:.2f} TFLOP per GPU")
    lines.append(f"error band (measured / predicted throughput): x{b['lo']}..x{b['hi']} from {b['n']} calibration "
                 f"residuals of {b['basis']}")
    for ln in lines:
        out().print(ln, highlight=False, markup=False)


def _print_one(data: dict[str, Any]) -> None:
    from rich.table import Table

    from orchestrator.cli.console import out

    labels = [
        ("model", "model", None), ("gpu", "GPU", None), ("gpus", "GPUs (tensor parallel)", None),
        ("quantization", "quantization", None), ("kv_cache_dtype", "KV cache dtype", None),
        ("input_tokens", "input / request", None), ("output_tokens", "output / request", None),
        ("fits", "fits", None), ("weights_gb", "weights (GB)", 1), ("memory_needed_gb", "memory needed (GB)", 1),
        ("memory_available_gb", "memory available (GB)", 1), ("kv_capacity_tokens", "KV capacity (tokens)", None),
        ("min_gpus_to_fit", "smallest GPU count that fits", None), ("tpot_slo_ms", "TPOT SLO (ms)", 1),
        ("max_batch", "max batch", None), ("tpot_ms_batch1", "TPOT batch 1 (ms)", 2),
        ("tpot_ms", "TPOT at max batch (ms)", 2), ("max_output_tokens_per_s", "max output tokens/s", 0),
        ("requests_per_s", "requests/s per replica", 2), ("ttft_ms_unloaded", "TTFT unloaded (ms)", 1),
        ("ttft_ms", "TTFT p95 at 70% load (ms)", 1), ("source", "source", None), ("engine", "engine", None),
    ]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, label, digits in labels:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and digits is None:
            text = f"{value:,}"
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and digits is not None:
            text = _fmt(float(value), digits)
        else:
            text = _fmt(value)
        table.add_row(label, text)
    if data.get("fits") and data.get("band_basis"):
        table.add_row("error band (throughput)", f"x{data['band_lo']:.2f}..x{data['band_hi']:.2f} ({data['band_basis']})")
    out().print(wrap_cells(table))


def _print_table(model: str, q: str, i: int, o: int, slo: float | None, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from orchestrator.cli.console import out

    title = f"{model} ({q}), {i} in / {o} out tokens" + (f", TPOT SLO {slo:g} ms" if slo else "")
    table = Table(title=title, caption="each GPU type at its most cost-effective GPU count (of 1, 2, 4, 8 that fit); "
                  "$ at the cheapest on-demand list price in the catalog")
    for col in ("GPU", "GPUs", "fits", "max batch", "max out tok/s", "band", "TPOT b1 ms", "TPOT@max ms", "$/GPU-h", "$/1M out"):
        table.add_column(col, justify="left" if col in ("GPU", "fits") else "right", no_wrap=col == "GPU")
    for r in rows:
        table.add_row(
            r["gpu"], _fmt(r.get("gpus")), "yes" if r["fits"] else "no", _fmt(r.get("max_batch")),
            _fmt(r.get("max_output_tokens_per_s"), 0),
            f"{(r['band_lo'] - 1) * 100:+.0f}..{(r['band_hi'] - 1) * 100:+.0f}%" if r["fits"] and r.get("band_basis") else "-",
            _fmt(r.get("tpot_ms_batch1"), 1), _fmt(r.get("tpot_ms"), 1),
            _fmt(r.get("usd_per_gpu_hour"), 2), _fmt(r.get("usd_per_1m_output_tokens"), 3),
        )
    out().print(wrap_cells(table))
