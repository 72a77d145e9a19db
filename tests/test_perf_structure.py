"""Each structural term of the roofline model (orchestrator/perf/roofline.py) against hand arithmetic from the
models' config.json numbers (issue 17): KV reads that grow with context, MoE active vs total parameters, MLA's
unsplit latent, the mixed prefill + decode step, the per-sequence overhead and the tensor-parallel all-reduces."""

from __future__ import annotations

import pytest

from orchestrator.catalog.gpus import get_gpu
from orchestrator.model_registry import lookup_model
from orchestrator.perf import Workload, estimate
from orchestrator.perf.calibration import load_calibration
from orchestrator.perf.explain import explain
from orchestrator.perf.roofline import _Batch


def _batch(model: str, gpu: str, tp: int, q: str, i: int, o: int, engine: str = "vllm") -> _Batch:
    return _Batch(lookup_model(model), [(get_gpu(gpu), tp, q)], Workload(i, o, engine=engine), load_calibration(engine))


def _terms(bt: _Batch, batch: float, prefill: float = 0.0) -> dict[str, float]:
    return {k: float(v[0]) for k, v in bt.terms(batch, prefill).items()}


# Llama 3.1 8B config.json: num_hidden_layers 32, num_key_value_heads 8, head_dim 128 (4096 / 32 heads); bf16 = 2 bytes.
LLAMA8B_KV = 32 * 8 * 128 * 2 * 2  # layers x kv_heads x head_dim x bytes x (K and V) = 131,072 B/token


def test_kv_bytes_per_token_is_the_config_arithmetic() -> None:
    assert lookup_model("llama-3.1-8b").kv_bytes_per_token(2.0) == LLAMA8B_KV
    assert lookup_model("llama-3.1-8b").kv_bytes_per_token(1.0) == LLAMA8B_KV / 2  # fp8 KV cache
    # Llama 3.1 405B: 126 layers, 8 KV heads, head_dim 128
    assert lookup_model("llama-3.1-405b").kv_bytes_per_token(2.0) == 126 * 8 * 128 * 2 * 2


@pytest.mark.parametrize("batch", [1, 16, 128])
def test_doubling_context_doubles_per_token_kv_reads_exactly(batch: int) -> None:
    # mean decode context = I + O/2: 800 + 400/2 = 1,000 and 1,600 + 800/2 = 2,000
    short, long = _batch("llama-3.1-8b", "H100", 1, "bf16", 800, 400), _batch("llama-3.1-8b", "H100", 1, "bf16", 1600, 800)
    assert short.ctx == 1000 and long.ctx == 2000
    ks, kl = _terms(short, batch)["kv_read_bytes_per_gpu"], _terms(long, batch)["kv_read_bytes_per_gpu"]
    assert ks == pytest.approx(batch * 1000 * LLAMA8B_KV, rel=1e-12)
    assert kl == pytest.approx(batch * 2000 * LLAMA8B_KV, rel=1e-12)
    assert kl - ks == pytest.approx(batch * 1000 * LLAMA8B_KV, rel=1e-12)
    # the weights read do not depend on context, and the memory time grows by exactly the extra KV bytes
    ts, tl = _terms(short, batch), _terms(long, batch)
    assert ts["weights_read_bytes_per_gpu"] == tl["weights_read_bytes_per_gpu"]
    bw = float(short.bw[0] * short.eff_bw[0])
    assert tl["t_memory_s"] - ts["t_memory_s"] == pytest.approx(batch * 1000 * LLAMA8B_KV / bw, rel=1e-9)


def test_tensor_parallel_splits_kv_by_head_and_replicates_past_the_kv_head_count() -> None:
    for tp in (1, 2, 4, 8):
        bt = _batch("llama-3.1-8b", "H100", tp, "bf16", 800, 400)
        assert float(bt.kv_tok_gpu[0]) == LLAMA8B_KV / tp  # 8 KV heads: tp <= 8 splits them
    # Qwen3-30B-A3B: 48 layers, 4 KV heads, head_dim 128; at tp 8 each KV head is held by two GPUs
    qwen = 48 * 4 * 128 * 2 * 2
    assert float(_batch("qwen3-30b-a3b", "H100", 8, "bf16", 800, 400).kv_tok_gpu[0]) == qwen / 4


# Mixtral 8x7B config.json: vocab 32000, hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 KV heads, head_dim 128,
# 8 local experts, 2 per token, untied embeddings.
def _mixtral_params() -> tuple[float, float]:
    h, inter, layers, vocab, kv = 4096, 14336, 32, 32000, 8 * 128
    expert = 3 * h * inter  # gate, up, down
    attn = h * h * 2 + h * kv * 2  # q, o and k, v
    other = 2 * vocab * h + layers * (8 * h + 2 * h) + h  # embed + lm_head, router, norms
    total = layers * (8 * expert + attn) + other
    active = layers * (2 * expert + attn) + other
    return total / 1e9, active / 1e9


def test_moe_registry_numbers_match_the_config() -> None:
    total, active = _mixtral_params()
    m = lookup_model("mixtral-8x7b")
    assert m.params_b == pytest.approx(total, rel=0.005)
    assert m.active_params_b == pytest.approx(active, rel=0.005)


def test_moe_flops_use_active_parameters_and_memory_uses_total() -> None:
    m = lookup_model("mixtral-8x7b")
    bt = _batch("mixtral-8x7b", "H100", 2, "bf16", 800, 400)
    t = _terms(bt, 1)
    attn = 4 * m.layers * m.heads * m.head_dim * 1000  # per token per context token, ctx = 1,000
    assert t["flops_per_gpu"] == pytest.approx((2 * m.active_params_b * 1e9 + attn) / 2, rel=1e-12)
    # memory: every expert is held; one token reads only its top-2 experts (dense part + 2/8 of the experts = active)
    est = estimate(m, get_gpu("H100"), 2, "bf16", Workload(800, 400))
    assert est.weights_gb == pytest.approx(m.params_b * 2, rel=1e-12)
    assert t["weights_read_bytes_per_gpu"] == pytest.approx(m.active_params_b * 1e9 * 2 / 2, rel=1e-9)
    # at many tokens per step every expert is touched: the read approaches the total
    big = _terms(bt, 256, 256)
    assert big["weights_read_bytes_per_gpu"] == pytest.approx(m.params_b * 1e9 * 2 / 2, rel=1e-6)
    # and a dense model of the same total size would do total/active times the matmul FLOPs
    ex = explain(m, get_gpu("H100"), 2, "bf16", Workload(800, 400), 8)
    assert ex["model"]["flops_params_b"] == m.active_params_b and ex["model"]["memory_params_b"] == m.params_b


# DeepSeek-V3 config.json: 61 layers, kv_lora_rank 512, qk_rope_head_dim 64 (MLA: one latent per layer and token).
DSV3_KV = 61 * (512 + 64) * 2  # 70,272 B/token at bf16: no factor 2 for K/V, not per head


def test_mla_kv_bytes_match_the_config_and_are_not_split_by_tp() -> None:
    m = lookup_model("deepseek-v3")
    assert m.kv_bytes_per_token(2.0) == DSV3_KV
    assert m.kv_bytes_per_layer_token(2.0) == (512 + 64) * 2
    for tp in (1, 8):
        bt = _batch("deepseek-v3", "H200", tp, "fp8", 800, 400)
        assert float(bt.kv_tok_gpu[0]) == DSV3_KV  # every GPU holds the whole latent
        assert _terms(bt, 32)["kv_read_bytes_per_gpu"] == pytest.approx(32 * 1000 * DSV3_KV, rel=1e-12)
    ex = explain(m, get_gpu("H200"), 8, "fp8", Workload(800, 400), 32)
    assert ex["model"]["attention"] == "MLA" and ex["model"]["kv_split_by_tp"] is False
    assert ex["model"]["kv_bytes_per_token_per_gpu"] == DSV3_KV


def test_mixed_step_adds_the_prefill_tokens_work() -> None:
    m = lookup_model("llama-3.1-8b")
    bt = _batch("llama-3.1-8b", "H100", 1, "bf16", 1000, 250)
    b, p = 32.0, 128.0
    decode, mixed = _terms(bt, b), _terms(bt, b, p)
    attn = 4 * m.layers * m.heads * m.head_dim
    # each prefill token: the matmuls once, attention over half the prompt on average, and its own KV written
    assert mixed["flops_per_gpu"] - decode["flops_per_gpu"] == pytest.approx(
        p * (2 * m.params_b * 1e9 + attn * 1000 / 2), rel=1e-12)
    assert mixed["kv_read_bytes_per_gpu"] - decode["kv_read_bytes_per_gpu"] == pytest.approx(p * LLAMA8B_KV, rel=1e-12)
    assert mixed["weights_read_bytes_per_gpu"] == decode["weights_read_bytes_per_gpu"]  # dense: read once per step
    assert mixed["step_s"] > decode["step_s"]
    # steady state: each step carries B x I/O prefill tokens (B/O requests finish, as many start)
    assert float(bt.tpot(b)[0]) == pytest.approx(float(bt.step(b, b * 1000 / 250)[0]), rel=1e-12)
    assert float(bt.tpot(b)[0]) > float(bt.step(b)[0])


def test_per_sequence_overhead_grows_linearly_with_the_batch() -> None:
    for engine in ("vllm", "vllm-v0", "sglang"):
        f = load_calibration(engine).factors(get_gpu("H100"))
        bt = _batch("llama-3.1-8b", "H100", 1, "bf16", 1000, 250, engine)
        o1, o65 = _terms(bt, 1)["t_overhead_s"], _terms(bt, 65)["t_overhead_s"]
        assert o1 == pytest.approx((f.step_overhead_ms * 1e3 + f.per_seq_us) / 1e6, rel=1e-9)
        assert o65 - o1 == pytest.approx(64 * f.per_seq_us / 1e6, rel=1e-9, abs=1e-15)
    v0 = load_calibration("vllm-v0").factors(get_gpu("H100"))
    v1 = load_calibration("vllm").factors(get_gpu("H100"))
    assert v0.per_seq_us > v1.per_seq_us  # V0's Python scheduler costs more per sequence than V1's


def test_tensor_parallel_all_reduce_is_two_per_layer_of_the_steps_tokens() -> None:
    m = lookup_model("llama-3.1-405b")
    cal = load_calibration("vllm")
    bt = _batch("llama-3.1-405b", "H100", 8, "fp8", 230, 203)
    b, p = 64.0, 64.0 * 230 / 203
    link = get_gpu("H100").link_gbps * 1e9
    per = cal.nvlink.allreduce_latency_us / 1e6 + 2 * 7 / 8 * (b + p) * m.hidden * 2 / link
    assert _terms(bt, b, p)["t_comm_s"] == pytest.approx(2 * m.layers * per, rel=1e-9)
    one = _batch("llama-3.1-8b", "H100", 1, "bf16", 230, 203)
    assert _terms(one, b, p)["t_comm_s"] == 0.0  # one GPU: no all-reduce


def test_static_batch_is_one_prefill_of_all_prompts_then_decode_steps() -> None:
    """vLLM's benchmark_latency.py (measurements.csv static_batch_output_tokens_per_s): no prefill overlaps a decode."""
    from orchestrator.perf.explain import throughput_at

    m, gpu = lookup_model("llama-3.1-405b"), get_gpu("MI300X")
    bt = _batch("llama-3.1-405b", "MI300X", 8, "fp8", 128, 128, "vllm-v0")
    for b in (1, 64):
        latency = float(bt.terms(0.0, b * 128)["step_s"][0]) + 127 * float(bt.step(float(b))[0])
        r = throughput_at(m, gpu, 8, "fp8", Workload(128, 128, engine="vllm-v0"), b)
        assert r["static_batch_output_tokens_per_s"] == pytest.approx(b * 128 / latency, rel=1e-9)
    # at batch 64 decode alone is memory bound, so serial prefill + decode is slower than mixing them each step
    r = throughput_at(m, gpu, 8, "fp8", Workload(128, 128, engine="vllm-v0"), 64)
    assert r["static_batch_output_tokens_per_s"] < r["output_tokens_per_s"]
    pre = _terms(bt, 0.0, 64 * 128)
    assert pre["kv_read_bytes_per_gpu"] == pytest.approx(64 * 128 * float(bt.kv_tok_gpu[0]), rel=1e-12)
