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
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.catalog.types import GPU
from orchestrator.model_registry import ModelArch
from orchestrator.perf import quant
from orchestrator.perf.calibration import Calibration, load_calibration

GIB = 2**30
HBM_USABLE = 0.995  # "80 GB" H100 reports 81,559 MiB = 79.6 GiB: ~0.5% below the nominal GiB figure


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


def _moe_split(model: ModelArch) -> tuple[float, float, float]:
    """(dense params, all expert params, k/E) in billions; experts 0 for dense models."""
    if not model.is_moe or not model.experts or not model.experts_per_token:
        return model.params_b, 0.0, 1.0
    share = model.experts_per_token / model.experts
    experts = (model.params_b - model.active_params_b) / (1.0 - share)
    return model.params_b - experts, experts, share


class _Batch:
    """Per-configuration arrays for one model and request shape."""

    def __init__(
        self,
        model: ModelArch,
        configs: Sequence[tuple[GPU, int, str]],
        input_tokens: int,
        output_tokens: int,
        kv_cache_dtype: str,
        gpu_memory_utilization: float,
        cal: Calibration,
    ) -> None:
        import numpy as np

        self.np = np
        self.model = model
        self.cal = cal
        self.I = float(input_tokens)
        self.O = float(output_tokens)
        n = len(configs)
        kvb = quant.kv_bytes_per_value(kv_cache_dtype)
        self.ctx = self.I + self.O / 2.0

        # per-GPU-type and per-quantization attributes, looked up once per distinct value
        gpu_rows: dict[str, tuple[float, ...]] = {}
        q_bytes: dict[str, float] = {}
        cols = np.empty((n, 13), dtype=float)
        self.reasons: list[str | None] = [None] * n
        for i, (gpu, tp, q) in enumerate(configs):
            row = gpu_rows.get(gpu.name)
            if row is None:
                f = cal.factors(gpu)
                if tp > 8:
                    comm = cal.internode
                else:
                    comm = cal.nvlink if gpu.nvlink else cal.pcie
                if gpu.vendor == "cpu":
                    overhead = cal.cpu_runtime_overhead_gb
                else:
                    overhead = cal.runtime_overhead_gb + cal.activation_gb_per_khidden * model.hidden / 1024
                link = gpu.link_gbps if gpu.link_gbps > 0 else 16.0
                row = (
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
                gpu_rows[gpu.name] = row
            if q not in q_bytes:
                q_bytes[q] = quant.bytes_per_param(q)
            bw, ebw, efl, ovh, mem, rt, blim, link, lat, per_seq = row
            if tp > 8:  # across nodes
                link = (cal.internode.link_gbps or 50.0) * 1e9
                lat = cal.internode.allreduce_latency_us / 1e6
            rate = quant.compute_tflops(gpu, q) * 1e12
            cols[i] = (tp, bw, ebw, efl, ovh, mem, rt, blim, link, lat, rate, q_bytes[q], per_seq)
            reason = quant.unsupported_reason(gpu, q)
            if reason is None and tp > 1 and tp <= 8 and model.heads % tp != 0:
                reason = f"{model.heads} attention heads do not split over tensor parallelism {tp}"
            self.reasons[i] = reason
        (
            self.tp, self.bw, self.eff_bw, self.eff_flops, self.overhead_s, self.mem, self.runtime,
            self.blimit, self.link, self.lat, self.rate, self.bpp, self.per_seq_s,
        ) = cols.T

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
        # KV bytes per token per GPU with every layer holding the token: GQA/MHA split by KV head, MLA whole
        kv_total = model.kv_bytes_per_token(kvb)
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
        self.flops_param_tok = 2.0 * model.active_params_b * 1e9  # per token through the matmuls
        self.attn_flops_ctx = 4.0 * model.layers * model.heads * model.head_dim  # per token per context token
        self.flops_tok = self.flops_param_tok + self.attn_flops_ctx * self.ctx
        self.mean_seq = self.I + self.O / 2.0  # KV footprint of a running sequence, on average
        self.ring = np.where(self.tp > 1, 2.0 * (self.tp - 1.0) / self.tp, 0.0)
        self.n_ar = np.where(self.tp > 1, 2.0 * model.layers, 0.0)
        self.prefill = self._prefill()

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


def evaluate(
    model: ModelArch,
    configs: Sequence[tuple[GPU, int, str]],
    input_tokens: int,
    output_tokens: int,
    *,
    tpot_slo_ms: float | None = None,
    kv_cache_dtype: str = "auto",
    gpu_memory_utilization: float = 0.9,
    utilization: float = 0.7,
    max_model_len: int | None = None,
    engine: str = "vllm",
    edge: str = "central",
) -> list[Estimate]:
    """Model figures for many configurations at once (no profiles, no min-GPU search). ``edge="pessimistic"``:
    throughput x the band's lo, latencies / lo, and the TPOT SLO checked on the pessimistic TPOT."""
    if not configs:
        return []
    if input_tokens <= 0 or output_tokens <= 0:
        raise ValueError("input and output tokens must be positive")
    import numpy as np

    from orchestrator.perf.band import band_for
    from orchestrator.perf.measurements import seq_bucket

    if edge not in ("central", "pessimistic"):
        raise ValueError(f"edge must be central or pessimistic, got {edge!r}")
    cal = load_calibration(engine)
    bt = _Batch(model, configs, input_tokens, output_tokens, kv_cache_dtype, gpu_memory_utilization, cal)
    seq = input_tokens + output_tokens
    bucket = seq_bucket(input_tokens, output_tokens)
    bands = [band_for(engine, gpu.family, bucket) for gpu, _, _ in configs]
    scale = np.array([b.lo if edge == "pessimistic" else 1.0 for b in bands])  # latency / scale, throughput x scale
    fits_mem = bt.need <= bt.avail
    need_tokens = max(seq, max_model_len or 0)
    kv_need = bt.kv_capacity(need_tokens)
    fits_kv = kv_need >= need_tokens
    fits = fits_mem & fits_kv
    cap = np.where(fits, np.maximum(bt.batch_cap(), 0.0), 0.0)

    if tpot_slo_ms is None:
        batch = cap
    else:
        slo = tpot_slo_ms / 1e3
        lo = np.zeros_like(cap)
        hi = cap.copy()
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = np.floor((lo + hi + 1.0) / 2.0)
            ok = bt.tpot(mid) / scale <= slo
            lo = np.where(open_ & ok, mid, lo)
            hi = np.where(open_ & ~ok, mid - 1.0, hi)
        batch = lo

    step1 = bt.step(1.0) / scale
    tpot_b = bt.tpot(np.maximum(batch, 1.0)) / scale
    prefill = bt.prefill / scale
    rps = np.where(batch > 0, batch / (bt.O * tpot_b), 0.0)
    ttft0 = prefill + step1
    rho = min(max(utilization, 0.0), 0.99)
    # M/D/c wait with c = max batch slots (Sakasegawa's M/M/c approximation, halved for
    # deterministic service): Wq = 0.5 * rho^(sqrt(2(c+1)) - 1) / (1 - rho) * (1 / requests_per_s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slots = np.maximum(batch, 1.0)
        per_request = np.where(rps > 0, 1.0 / rps, np.inf)
        wait = 0.5 * rho ** (np.sqrt(2.0 * (slots + 1.0)) - 1.0) / (1.0 - rho) * per_request
    ttft = prefill + tpot_b + cal.ttft_p95_factor * wait

    out: list[Estimate] = []
    for i, (gpu, tp, q) in enumerate(configs):
        reason = bt.reasons[i]
        ok = bool(fits[i]) and reason is None
        if reason is None and not fits_mem[i]:
            reason = (
                f"does not fit: needs {bt.need[i] * tp / 1e9:.1f} GB (weights {bt.weights[i] / 1e9:.1f} GB + "
                f"runtime overhead{' + LoRA buffers' if bt.lora_s else ''}) on {tp}x{gpu.name}, which has {bt.avail[i] * tp / 1e9:.1f} GB at "
                f"gpu_memory_utilization {gpu_memory_utilization}"
            )
        elif reason is None and not fits_kv[i]:
            reason = (
                f"fits the weights but leaves KV cache for only {int(kv_need[i])} tokens on {tp}x{gpu.name}; "
                f"one request needs {need_tokens}"
            )
        elif ok and batch[i] == 0:
            reason = f"even batch 1 misses the TPOT SLO: {tpot_b[i] * 1e3:.1f} ms > {tpot_slo_ms} ms"
        if ok:
            out.append(
                Estimate(
                    fits=True,
                    reason=reason,
                    weights_gb=float(bt.weights[i]) / 1e9,
                    memory_needed_gb=float(bt.need[i]) * tp / 1e9,
                    memory_available_gb=float(bt.avail[i]) * tp / 1e9,
                    kv_capacity_tokens=int(bt.kv_cap[i]),
                    max_batch=int(batch[i]),
                    tpot_ms_batch1=float(step1[i]) * 1e3,
                    tpot_ms=float(tpot_b[i]) * 1e3,
                    max_output_tokens_per_s=float(rps[i]) * output_tokens,
                    ttft_ms=float(ttft[i]) * 1e3 if batch[i] > 0 else float(ttft0[i]) * 1e3,
                    ttft_ms_unloaded=float(ttft0[i]) * 1e3,
                    requests_per_s=float(rps[i]),
                    min_gpus_to_fit=None,
                    source="model",
                    gpu=gpu.name,
                    gpus=tp,
                    quantization=q,
                    prefill_ms=float(prefill[i]) * 1e3,
                    engine=engine, edge=edge, band_lo=bands[i].lo, band_hi=bands[i].hi, band_basis=bands[i].basis,
                )
            )
        else:
            out.append(
                Estimate(
                    fits=False,
                    reason=reason,
                    weights_gb=float(bt.weights[i]) / 1e9,
                    memory_needed_gb=float(bt.need[i]) * tp / 1e9,
                    memory_available_gb=float(bt.avail[i]) * tp / 1e9,
                    kv_capacity_tokens=int(bt.kv_cap[i]) if fits_mem[i] else 0,
                    max_batch=0,
                    tpot_ms_batch1=math.inf,
                    tpot_ms=math.inf,
                    max_output_tokens_per_s=0.0,
                    ttft_ms=math.inf,
                    ttft_ms_unloaded=math.inf,
                    requests_per_s=0.0,
                    min_gpus_to_fit=None,
                    source="model",
                    gpu=gpu.name,
                    gpus=tp,
                    quantization=q,
                    engine=engine,
                    edge=edge,
                )
            )
    return out
