"""The roofline performance model, vectorized over candidate configurations with numpy.

One configuration = (GPU type, GPU count = tensor-parallel degree, quantization). For a model and a
request shape (input tokens I, output tokens O) it computes:

- Memory per GPU: weights / tp + runtime overhead must fit within memory x gpu_memory_utilization;
  the rest holds KV. KV bytes per token per GPU = total KV bytes x max(1/tp, 1/kv_heads): with tp
  above the KV-head count vLLM replicates KV heads so every GPU holds at least one. MLA (DeepSeek)
  caches one latent per layer that tensor parallelism does not split: every GPU holds all of it.
  Sliding-window layers hold at most `window` tokens (ModelArch.kv_bytes): KV capacity counts tokens
  of sequences of the request's length I + O, and a decode step reads the KV of the mean context.
- A step of the engine at batch B with P prefill tokens mixed in (chunked prefill / in-flight batching:
  prompts are processed in the same forward passes as the running decodes):
    bytes  = weights read / tp + B x ctx x KV/token/GPU + P x KV/token/GPU  (ctx = I + O/2, the mean
             decode context: doubling the context doubles the per-token KV reads)
    FLOPs  = (B + P) x 2 x active params / tp + (B x ctx + P x I/2) x 4 x layers x heads x head_dim / tp
    time   = max(bytes / (bw x eff_bw), FLOPs / (peak x eff_flops)) + TP all-reduces (2 per layer of
             (B + P) x hidden x 2 bytes: latency + ring 2(t-1)/t x bytes / link) + the engine's overhead
             (step_overhead_ms + per_seq_us x B: the scheduler/CPU work that dominates small models).
  MoE: FLOPs from the active parameters, memory from the total; weights read = dense part + experts x
  (1 - (1 - k/E)^(B + P)) -- only the top-k experts at one token, all of them at many. Expert parallelism
  holds the same expert bytes per GPU as tensor parallelism, so the per-GPU figures are the same.
  MLA: the cached latent (kv_lora_rank + rope dims per layer) is read whole by every GPU.
- Steady state with continuous batching at B running sequences: each step finishes B/O requests, so it
  carries P = B x I / O prefill tokens. TPOT (what a user sees) = step(B, B x I/O); output tokens/s = B / TPOT;
  requests/s = B / (O x TPOT). Batch-1 TPOT = step(1, 0).
- Prefill of one request alone (TTFT): max(FLOPs / (tp x peak x eff_flops), weights / tp / (bw x eff_bw)) + TP
  all-reduces of I x hidden x 2 bytes. FLOPs = 2 x active x I + 2 x layers x I^2 x heads x head_dim.
- KV capacity bounds the batch by the mean footprint of a running sequence, I + O/2 tokens (paged KV grows
  as tokens are generated), and one request must fit whole (I + O).
- max batch = the largest B <= min(KV capacity / (I + O), engine max-num-seqs) whose tpot(B) meets
  the SLO (binary search, vectorized).
- TTFT p95 at utilization rho = P + tpot(B) + f x mean queueing wait, an M/D/c queue with c = B
  slots: wait = 0.5 x rho^(sqrt(2(c+1)) - 1) / (1 - rho) x (1 / requests/s) (Sakasegawa's M/M/c
  approximation halved for deterministic service; c = 1 gives the M/D/1 rho S / (2 (1 - rho))),
  f = queueing.ttft_p95_factor (3.0 = ln 20, an exponential tail's p95/mean).
- LoRA (a model from orchestrator.perf.lora.with_lora): its reserved buffers join the memory need, and its
  kernels' time (Punica's figure) every decode step and prefill; formulas and source in orchestrator/perf/lora.py.
- More than 8 GPUs spans nodes: modelled as tensor parallelism over the inter-node link (a
  pessimistic stand-in for vLLM's TP-per-node x PP-across-nodes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.catalog.types import GPU
from orchestrator.model_registry import ModelArch
from orchestrator.perf import quant
from orchestrator.perf.calibration import Calibration, load_calibration
from orchestrator.perf.types import Estimate, Workload

GIB = 2**30
HBM_USABLE = 0.995  # "80 GB" H100 reports 81,559 MiB = 79.6 GiB: ~0.5% below the nominal GiB figure


def _moe_split(model: ModelArch) -> tuple[float, float, float]:
    """(dense params, all expert params, k/E) in billions; experts 0 for dense models."""
    if not model.is_moe or not model.experts or not model.experts_per_token:
        return model.params_b, 0.0, 1.0
    share = model.experts_per_token / model.experts
    experts = (model.params_b - model.active_params_b) / (1.0 - share)
    return model.params_b - experts, experts, share


class _Batch:
    """Per-configuration arrays for one model and workload: the hardware, memory, KV, FLOP and all-reduce terms of
    the module docstring, each a numpy array over the configurations."""

    def __init__(self, model: ModelArch, configs: Sequence[tuple[GPU, int, str]], workload: Workload, cal: Calibration) -> None:
        import numpy as np

        self.np = np
        self.model = model
        self.cal = cal
        self.I = float(workload.input_tokens)
        self.O = float(workload.output_tokens)
        self.ctx = self.I + self.O / 2.0
        self._hardware(configs)
        self._memory(workload.gpu_memory_utilization)
        self._kv(quant.kv_bytes_per_value(workload.kv_cache_dtype))
        self._flops_and_comm()
        self.prefill = self._prefill()

    def _hardware(self, configs: Sequence[tuple[GPU, int, str]]) -> None:
        """Columns per configuration: tp, peak bandwidth and compute, calibrated efficiencies and overheads, usable
        memory, runtime overhead, the engine's batch limit, the all-reduce link; and why one cannot run."""
        cal = self.cal
        gpu_rows: dict[str, tuple[float, ...]] = {}  # looked up once per distinct GPU type and quantization
        q_bytes: dict[str, float] = {}
        cols = self.np.empty((len(configs), 13), dtype=float)
        self.reasons: list[str | None] = [None] * len(configs)
        for i, (gpu, tp, q) in enumerate(configs):
            if gpu.name not in gpu_rows:
                gpu_rows[gpu.name] = self._gpu_row(gpu)
            if q not in q_bytes:
                q_bytes[q] = quant.bytes_per_param(q)
            bw, ebw, efl, ovh, mem, rt, blim, link, lat, per_seq = gpu_rows[gpu.name]
            if tp > 8:  # across nodes
                link = (cal.internode.link_gbps or 50.0) * 1e9
                lat = cal.internode.allreduce_latency_us / 1e6
            rate = quant.compute_tflops(gpu, q) * 1e12
            cols[i] = (tp, bw, ebw, efl, ovh, mem, rt, blim, link, lat, rate, q_bytes[q], per_seq)
            self.reasons[i] = self._unsupported(gpu, tp, q)
        (
            self.tp, self.bw, self.eff_bw, self.eff_flops, self.overhead_s, self.mem, self.runtime,
            self.blimit, self.link, self.lat, self.rate, self.bpp, self.per_seq_s,
        ) = cols.T

    def _gpu_row(self, gpu: GPU) -> tuple[float, ...]:
        """One GPU type's columns (within a node): bandwidth, eff_bw, eff_flops, step overhead, usable memory, runtime
        overhead, batch limit, link, all-reduce latency, per-sequence overhead."""
        cal, f = self.cal, self.cal.factors(gpu)
        if gpu.vendor == "cpu":
            overhead = cal.cpu_runtime_overhead_gb
        else:
            overhead = cal.runtime_overhead_gb + cal.activation_gb_per_khidden * self.model.hidden / 1024
        link = gpu.link_gbps if gpu.link_gbps > 0 else 16.0
        return (
            gpu.bandwidth_tbps * 1e12,
            f.eff_bw,
            f.eff_flops,
            f.step_overhead_ms / 1e3,
            gpu.memory_gb * GIB * (HBM_USABLE if gpu.vendor != "cpu" else 1.0),
            overhead * 1e9,
            float(cal.batch_limit(gpu)),
            link * 1e9,
            cal.nvlink.allreduce_latency_us / 1e6 if gpu.nvlink else cal.pcie.allreduce_latency_us / 1e6,
            f.per_seq_us / 1e6,
        )

    def _unsupported(self, gpu: GPU, tp: int, q: str) -> str | None:
        """Why the configuration cannot run at all (quantization the GPU lacks, heads tp does not divide), or None."""
        reason = quant.unsupported_reason(gpu, q)
        if reason is None and tp > 1 and tp <= 8 and self.model.heads % tp != 0:
            reason = f"{self.model.heads} attention heads do not split over tensor parallelism {tp}"
        return reason

    def _memory(self, gpu_memory_utilization: float) -> None:
        """Weights (MoE: the dense part and the experts apart), memory available and needed per GPU, LoRA's share."""
        model = self.model
        dense_b, experts_b, self.share = _moe_split(model)
        self.dense_bytes = dense_b * 1e9 * self.bpp
        self.expert_bytes = experts_b * 1e9 * self.bpp
        self.weights = model.params_b * 1e9 * self.bpp
        self.avail = self.mem * gpu_memory_utilization
        self.need = self.weights / self.tp + self.runtime
        lora = getattr(model, "lora", None)  # orchestrator.perf.lora.LoraArch: adapters' buffers and kernel time
        self.lora_s = 0.0
        if lora is not None:
            from orchestrator.perf import lora as lora_cost

            self.need = self.need + lora_cost.reserved_bytes_per_gpu(model, lora, self.tp)
            self.lora_s = lora_cost.step_overhead_s(model)

    def _kv(self, kv_bytes_per_value: float) -> None:
        """KV bytes per token per GPU, the memory left for KV and its capacity in tokens and running sequences."""
        np, model = self.np, self.model
        # KV bytes per token per GPU with every layer holding the token: GQA/MHA split by KV head, MLA whole
        kv_total = model.kv_bytes_per_token(kv_bytes_per_value)
        if model.kv_split_by_tp:
            self.kv_tok_gpu = kv_total * np.maximum(1.0 / self.tp, 1.0 / max(model.kv_heads, 1))
        else:
            self.kv_tok_gpu = kv_total * np.ones_like(self.tp)
        self.kv_free = np.maximum(self.avail - self.need, 0.0)
        if model.has_sliding_window:  # per token, averaged over a sequence of I + O / the mean decode context
            self.kv_seq_tok_gpu = self.kv_tok_gpu * model.kv_fraction(self.I + self.O)
            self.kv_ctx_tok_gpu = self.kv_tok_gpu * model.kv_fraction(self.ctx)
        else:
            self.kv_seq_tok_gpu = self.kv_ctx_tok_gpu = self.kv_tok_gpu
        self.kv_cap = np.floor(self.kv_free / self.kv_seq_tok_gpu)  # tokens, in sequences of I + O
        self.mean_seq = self.I + self.O / 2.0  # KV footprint of a running sequence, on average

    def _flops_and_comm(self) -> None:
        """FLOPs per token (matmuls over the active parameters, attention per context token) and the all-reduces."""
        np, model = self.np, self.model
        self.flops_param_tok = 2.0 * model.active_params_b * 1e9  # per token through the matmuls
        self.attn_flops_ctx = 4.0 * model.layers * model.heads * model.head_dim  # per token per context token
        self.flops_tok = self.flops_param_tok + self.attn_flops_ctx * self.ctx
        self.ring = np.where(self.tp > 1, 2.0 * (self.tp - 1.0) / self.tp, 0.0)
        self.n_ar = np.where(self.tp > 1, 2.0 * model.layers, 0.0)

    def _prefill(self) -> Any:
        np, m = self.np, self.model
        flops = 2.0 * m.active_params_b * 1e9 * self.I + 2.0 * m.layers * self.I**2 * m.heads * m.head_dim
        t_cmp = flops / (self.tp * self.rate * self.eff_flops)
        t_mem = self.weights / self.tp / (self.bw * self.eff_bw)
        comm = self.n_ar * (self.lat + self.ring * self.I * m.hidden * 2.0 / self.link)
        return np.maximum(t_cmp, t_mem) + comm + self.lora_s

    def terms(self, batch: Any, prefill_tokens: Any = 0.0) -> dict[str, Any]:
        """The roofline terms of one step at batch B with P prefill tokens mixed in (arrays over configs)."""
        np, m = self.np, self.model
        b = np.maximum(np.asarray(batch, dtype=float), 0.0)  # 0: a prefill-only step (step() and tpot() clamp at 1)
        p = np.maximum(np.asarray(prefill_tokens, dtype=float), 0.0)
        tokens = b + p
        if self.share < 1.0:
            touched = 1.0 - (1.0 - self.share) ** tokens
            w_read = self.dense_bytes + self.expert_bytes * touched
        else:
            w_read = self.weights + 0.0 * tokens
        # decode reads each sequence's whole context; a prefill chunk writes its tokens' KV and reads the prompt
        # so far once per chunk (shared by the chunk's tokens), so its traffic is ~ its own tokens' KV
        kv_read = b * self.ctx * self.kv_ctx_tok_gpu + p * self.kv_tok_gpu
        flops = (tokens * self.flops_param_tok + (b * self.ctx + p * self.I / 2.0) * self.attn_flops_ctx) / self.tp
        t_mem = (w_read / self.tp + kv_read) / (self.bw * self.eff_bw)
        t_cmp = flops / (self.rate * self.eff_flops)
        comm = self.n_ar * (self.lat + self.ring * tokens * m.hidden * 2.0 / self.link)
        overhead = self.overhead_s + self.per_seq_s * b + self.lora_s
        return {"weights_read_bytes_per_gpu": w_read / self.tp, "kv_read_bytes_per_gpu": kv_read, "flops_per_gpu": flops,
                "t_memory_s": t_mem, "t_compute_s": t_cmp, "t_comm_s": comm, "t_overhead_s": overhead,
                "step_s": np.maximum(t_mem, t_cmp) + comm + overhead}

    def step(self, batch: Any, prefill_tokens: Any = 0.0) -> Any:
        """Step time (s) at batch size(s) `batch` (scalar or per-config array, at least 1), `prefill_tokens` mixed in."""
        return self.terms(self.np.maximum(batch, 1.0), prefill_tokens)["step_s"]

    def kv_capacity(self, tokens: int) -> Any:
        """KV capacity per configuration in tokens, counted in sequences `tokens` long (== kv_cap unless
        sliding-window layers make the per-token bytes depend on the length)."""
        if not self.model.has_sliding_window or tokens == self.I + self.O:
            return self.kv_cap
        return self.np.floor(self.kv_free / (self.kv_tok_gpu * self.model.kv_fraction(tokens)))

    def tpot(self, batch: Any) -> Any:
        """TPOT (s) a user sees at batch B in steady state: each step also carries B x I/O prefill tokens."""
        b = self.np.maximum(self.np.asarray(batch, dtype=float), 1.0)
        return self.step(b, b * self.I / self.O)

    def batch_cap(self) -> Any:
        """Running sequences the KV cache holds at their mean footprint, within the engine's cap."""
        return self.np.minimum(self.np.floor(self.kv_cap / self.mean_seq), self.blimit)


@dataclass(frozen=True)
class _Figures:
    """evaluate's arrays over the configurations: the fit, the max batch at the SLO and the latencies there (at the
    band's edge)."""

    fits_mem: Any
    fits_kv: Any
    need_tokens: int  # one request must fit whole: I + O, or max_model_len when longer
    kv_need: Any  # KV capacity in sequences of need_tokens
    batch: Any
    step1: Any
    tpot: Any
    prefill: Any
    rps: Any
    ttft0: Any  # unloaded
    ttft: Any  # p95 at the planned utilization


def evaluate(
    model: ModelArch,
    configs: Sequence[tuple[GPU, int, str]],
    workload: Workload,
    *,
    tpot_slo_ms: float | None = None,
    utilization: float = 0.7,
    edge: str = "central",
) -> list[Estimate]:
    """Model figures for many configurations at once (no profiles, no min-GPU search). ``edge="pessimistic"``:
    throughput x the band's lo, latencies / lo, and the TPOT SLO checked on the pessimistic TPOT."""
    if not configs:
        return []
    if workload.input_tokens <= 0 or workload.output_tokens <= 0:
        raise ValueError("input and output tokens must be positive")
    import numpy as np

    from orchestrator.perf.band import band_for
    from orchestrator.perf.measurements import seq_bucket

    if edge not in ("central", "pessimistic"):
        raise ValueError(f"edge must be central or pessimistic, got {edge!r}")
    bt = _Batch(model, configs, workload, load_calibration(workload.engine))
    bucket = seq_bucket(workload.input_tokens, workload.output_tokens)
    bands = [band_for(workload.engine, gpu.family, bucket) for gpu, _, _ in configs]
    scale = np.array([b.lo if edge == "pessimistic" else 1.0 for b in bands])  # latency / scale, throughput x scale
    fig = _figures(bt, workload, scale, tpot_slo_ms, utilization)
    out: list[Estimate] = []
    for i, (gpu, tp, q) in enumerate(configs):
        serves = fig.fits_mem[i] and fig.fits_kv[i] and bt.reasons[i] is None
        out.append(Estimate(
            reason=_reason(bt, fig, i, (gpu, tp, q), workload, tpot_slo_ms), weights_gb=float(bt.weights[i]) / 1e9,
            memory_needed_gb=float(bt.need[i]) * tp / 1e9, memory_available_gb=float(bt.avail[i]) * tp / 1e9,
            kv_capacity_tokens=int(bt.kv_cap[i]) if fig.fits_mem[i] else 0, min_gpus_to_fit=None, source="model",
            gpu=gpu.name, gpus=tp, quantization=q, engine=workload.engine, edge=edge,
            **(_at_max_batch(fig, i, workload, bands[i]) if serves else _CANNOT_SERVE),
        ))
    return out


def _figures(bt: _Batch, workload: Workload, scale: Any, tpot_slo_ms: float | None, utilization: float) -> _Figures:
    """Fit (memory, and KV for one whole request), max batch at the SLO, TPOT, req/s and TTFT per configuration."""
    np = bt.np
    fits_mem = bt.need <= bt.avail
    need_tokens = max(workload.input_tokens + workload.output_tokens, workload.max_model_len or 0)
    kv_need = bt.kv_capacity(need_tokens)
    fits_kv = kv_need >= need_tokens
    cap = np.where(fits_mem & fits_kv, np.maximum(bt.batch_cap(), 0.0), 0.0)
    batch = cap if tpot_slo_ms is None else _max_batch_at_slo(bt, cap, scale, tpot_slo_ms / 1e3)
    step1 = bt.step(1.0) / scale
    tpot_b = bt.tpot(np.maximum(batch, 1.0)) / scale
    prefill = bt.prefill / scale
    rps = np.where(batch > 0, batch / (bt.O * tpot_b), 0.0)
    ttft = prefill + tpot_b + bt.cal.ttft_p95_factor * _queue_wait(np, batch, rps, utilization)
    return _Figures(fits_mem, fits_kv, need_tokens, kv_need, batch, step1, tpot_b, prefill, rps, prefill + step1, ttft)


def _max_batch_at_slo(bt: _Batch, cap: Any, scale: Any, slo_s: float) -> Any:
    """The largest B <= cap whose TPOT (at the band's edge) meets the SLO: a binary search over all configurations."""
    np = bt.np
    lo = np.zeros_like(cap)
    hi = cap.copy()
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        mid = np.floor((lo + hi + 1.0) / 2.0)
        ok = bt.tpot(mid) / scale <= slo_s
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid - 1.0, hi)
    return lo


def _queue_wait(np: Any, batch: Any, rps: Any, utilization: float) -> Any:
    """Mean queueing wait (s) of an M/D/c queue with c = max batch slots (Sakasegawa's M/M/c approximation, halved
    for deterministic service): Wq = 0.5 * rho^(sqrt(2(c+1)) - 1) / (1 - rho) * (1 / requests_per_s)."""
    rho = min(max(utilization, 0.0), 0.99)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slots = np.maximum(batch, 1.0)
        per_request = np.where(rps > 0, 1.0 / rps, np.inf)
        return 0.5 * rho ** (np.sqrt(2.0 * (slots + 1.0)) - 1.0) / (1.0 - rho) * per_request


def _reason(bt: _Batch, fig: _Figures, i: int, config: tuple[GPU, int, str], workload: Workload,
            tpot_slo_ms: float | None) -> str | None:
    """Why configuration i cannot serve (unsupported, memory, KV for one request), or why its batch is 0 (the SLO)."""
    gpu, tp, _ = config
    reason = bt.reasons[i]
    if reason is None and not fig.fits_mem[i]:
        return (
            f"does not fit: needs {bt.need[i] * tp / 1e9:.1f} GB (weights {bt.weights[i] / 1e9:.1f} GB + "
            f"runtime overhead{' + LoRA buffers' if bt.lora_s else ''}) on {tp}x{gpu.name}, which has {bt.avail[i] * tp / 1e9:.1f} GB at "
            f"gpu_memory_utilization {workload.gpu_memory_utilization}"
        )
    if reason is None and not fig.fits_kv[i]:
        return (
            f"fits the weights but leaves KV cache for only {int(fig.kv_need[i])} tokens on {tp}x{gpu.name}; "
            f"one request needs {fig.need_tokens}"
        )
    if reason is None and fig.batch[i] == 0:
        return f"even batch 1 misses the TPOT SLO: {fig.tpot[i] * 1e3:.1f} ms > {tpot_slo_ms} ms"
    return reason


# the figures of a configuration that cannot serve (it does not fit, or the engine cannot run it)
_CANNOT_SERVE: dict[str, Any] = {"fits": False, "max_batch": 0, "tpot_ms_batch1": math.inf, "tpot_ms": math.inf,
                                 "max_output_tokens_per_s": 0.0, "ttft_ms": math.inf, "ttft_ms_unloaded": math.inf,
                                 "requests_per_s": 0.0}


def _at_max_batch(fig: _Figures, i: int, workload: Workload, band: Any) -> dict[str, Any]:
    """The figures of a configuration that fits: at its max batch, with the band they carry."""
    batch = fig.batch[i]
    return {
        "fits": True,
        "max_batch": int(batch),
        "tpot_ms_batch1": float(fig.step1[i]) * 1e3,
        "tpot_ms": float(fig.tpot[i]) * 1e3,
        "max_output_tokens_per_s": float(fig.rps[i]) * workload.output_tokens,
        "ttft_ms": float(fig.ttft[i]) * 1e3 if batch > 0 else float(fig.ttft0[i]) * 1e3,
        "ttft_ms_unloaded": float(fig.ttft0[i]) * 1e3,
        "requests_per_s": float(fig.rps[i]),
        "prefill_ms": float(fig.prefill[i]) * 1e3,
        "band_lo": band.lo, "band_hi": band.hi, "band_basis": band.basis,
    }
