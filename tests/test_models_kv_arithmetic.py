"""Hand arithmetic for four current architectures, checked against `orch estimate --json`.

For DeepSeek-R1 (MoE + MLA), Llama 4 Maverick (MoE, interleaved), gpt-oss-120b (MoE, MXFP4, sliding window) and
Gemma 3 27B (sliding window 5:1), the parameters are counted here from the config.json figures written out below,
giving the weight memory at the checkpoint's precision, and the KV cache of one 8,192-token sequence is worked out
per attention type. orch's figures must agree within 5 %:

- weights: `weights_gb` of `orch estimate`;
- KV: with input + output = 8,192 tokens, `kv_capacity_tokens` counts tokens of 8,192-token sequences, so one
  sequence's KV bytes on one GPU = (memory_available_gb - memory_needed_gb) / GPUs / kv_capacity_tokens x 8,192.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.model_registry import lookup_model
from orchestrator.perf import clear_caches

SEQ = 8192
BF16, FP8, MXFP4 = 2.0, 1.0, 4.25 / 8  # bytes per weight; MXFP4: 4-bit values + an 8-bit scale per 32


@pytest.fixture(autouse=True)
def _no_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_PROFILE_DIR", str(tmp_path))
    clear_caches()


def estimate(model: str, gpu: str, gpus: int, quantization: str) -> dict:
    result = CliRunner().invoke(app, ["estimate", "--model", model, "--gpu", gpu, "--gpus", str(gpus),
                                      "--quantization", quantization, "--input-tokens", str(SEQ - 1000),
                                      "--output-tokens", "1000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fits"], data
    return data


def kv_bytes_per_sequence_per_gpu(data: dict) -> float:
    free_per_gpu = (data["memory_available_gb"] - data["memory_needed_gb"]) * 1e9 / data["gpus"]
    return free_per_gpu / data["kv_capacity_tokens"] * SEQ


def gated_mlp(hidden: int, inter: int) -> int:
    return 3 * hidden * inter  # gate, up, down


def gqa_attention(hidden: int, heads: int, kv_heads: int, head_dim: int) -> int:
    return hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden  # q, k, v, o


def test_deepseek_r1_mla_moe_fp8():
    # config.json: hidden 7168, 61 layers (first_k_dense_replace 3 dense, 58 MoE), 128 heads, q_lora_rank 1536,
    # kv_lora_rank 512, qk_nope_head_dim 128, qk_rope_head_dim 64, v_head_dim 128, intermediate_size 18432,
    # moe_intermediate_size 2048, n_routed_experts 256 (top-8) + n_shared_experts 1, vocab 129280, untied.
    h, layers, dense, moe = 7168, 61, 3, 58
    mla = (h * 1536                      # q_a: hidden -> q_lora_rank
           + 1536 * 128 * (128 + 64)     # q_b: -> 128 heads x (nope + rope)
           + h * (512 + 64)              # kv_a: hidden -> latent + rope key
           + 512 * 128 * (128 + 128)     # kv_b: latent -> 128 heads x (k_nope + v)
           + 128 * 128 * h)              # o
    expert = gated_mlp(h, 2048)
    total = (layers * mla + dense * gated_mlp(h, 18432) + moe * (257 * expert + h * 256)  # 256 routed + 1 shared
             + 2 * 129280 * h)
    assert total / 1e9 == pytest.approx(671.0, rel=0.002)
    weights_gb = total * FP8 / 1e9  # published in FP8 (block scales and bf16 embeddings: +0.3 %)
    # MLA: one latent of kv_lora_rank + qk_rope_head_dim per layer and token, no K/V factor 2, not per head
    kv = layers * (512 + 64) * 2 * SEQ  # bf16 KV
    assert kv == 575_668_224

    arch = lookup_model("deepseek-r1")
    assert arch is not None and arch.weight_format == "fp8"
    assert arch.kv_bytes(SEQ) == kv
    data = estimate("deepseek-r1", "H200", 8, "fp8")
    assert data["weights_gb"] == pytest.approx(weights_gb, rel=0.05)
    # tensor parallelism does not split the latent: each of the 8 GPUs holds all of it
    assert kv_bytes_per_sequence_per_gpu(data) == pytest.approx(kv, rel=0.05)


def test_llama4_maverick_interleaved_moe_bf16():
    # text_config: hidden 5120, 48 layers, 40 heads, 8 KV heads, head_dim 128, interleave_moe_layer_step 2
    # (24 MoE layers of 128 routed experts of intermediate_size 8192, top-1, + 1 shared expert; 24 dense layers
    # of intermediate_size_mlp 16384), vocab 202048, untied. vision_config: 34 layers, hidden 1408, MLP 5632.
    h, layers = 5120, 48
    attn = gqa_attention(h, 40, 8, 128)
    expert = gated_mlp(h, 8192)
    text = layers * attn + 24 * (129 * expert + h * 128) + 24 * gated_mlp(h, 16384) + 2 * 202048 * h
    assert text / 1e9 == pytest.approx(400.7, rel=0.001)
    vision = 34 * (4 * 1408**2 + 2 * 1408 * 5632)  # ViT blocks; + adapter and projector, ~0.06B more
    weights_gb = (text + vision) * BF16 / 1e9  # ~803 GB
    kv = 2 * layers * 8 * 128 * 2 * SEQ  # GQA: K and V, 8 KV heads of 128, bf16, every layer (chunked attention
    assert kv == 1_610_612_736           # is not windowed: vLLM's default caches the whole sequence)

    arch = lookup_model("llama-4-maverick")
    assert arch is not None and arch.is_moe and arch.active_params_b == pytest.approx(17.2, rel=0.01)
    assert arch.kv_bytes(SEQ) == kv
    data = estimate("llama-4-maverick", "H200", 8, "bf16")
    assert data["weights_gb"] == pytest.approx(weights_gb, rel=0.05)
    # 8 KV heads over 8 GPUs: one head, an eighth of the KV, per GPU
    assert kv_bytes_per_sequence_per_gpu(data) == pytest.approx(kv / 8, rel=0.05)


def test_gpt_oss_120b_mxfp4_and_sliding_window():
    # config.json: hidden 2880, 36 layers, 64 heads x head_dim 64, 8 KV heads, attention with biases and sinks,
    # 128 experts (intermediate_size 2880, fused gate_up + down with biases), top-4, vocab 201088, untied;
    # layer_types alternate sliding_attention (sliding_window 128) and full_attention; quant_method mxfp4 on the
    # experts (attention, router and embeddings stay bf16).
    h, layers, inter, n = 2880, 36, 2880, 128
    experts = layers * n * (3 * h * inter + 2 * inter + h)
    attn = layers * (gqa_attention(h, 64, 8, 64) + 64 * 64 + 2 * 8 * 64 + h + 64)  # + biases, sinks
    rest = attn + layers * (h * n + n + 2 * h) + 2 * 201088 * h + h  # routers, norms, embeddings
    assert (experts + rest) / 1e9 == pytest.approx(116.83, rel=0.001)
    native_gb = (experts * MXFP4 + rest * BF16) / 1e9  # ~65.2 GB, what vLLM loads
    bf16_gb = (experts + rest) * BF16 / 1e9
    per_layer = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, bf16
    kv = 18 * per_layer * SEQ + 18 * per_layer * min(SEQ, 128)  # 18 full + 18 sliding layers
    assert kv == 306_708_480

    arch = lookup_model("gpt-oss-120b")
    assert arch is not None and arch.weight_format == "mxfp4"
    assert arch.native_weights_gb == pytest.approx(native_gb, rel=0.01)
    assert arch.kv_bytes(SEQ) == kv
    # orch has no mxfp4 quantization: its 4-bit class (int4, 0.55 B/param) is the stand-in for the native weights
    data = estimate("gpt-oss-120b", "H100", 1, "int4")
    assert data["weights_gb"] == pytest.approx(native_gb, rel=0.05)
    assert kv_bytes_per_sequence_per_gpu(data) == pytest.approx(kv, rel=0.05)
    assert estimate("gpt-oss-120b", "H100", 4, "bf16")["weights_gb"] == pytest.approx(bf16_gb, rel=0.05)


def test_gemma3_27b_sliding_window_5_to_1_bf16():
    # text_config: hidden 5376, 62 layers, 32 heads, 16 KV heads, head_dim 128, intermediate_size 21504,
    # sliding_window 1024; defaults the file leaves out: vocab 262208 (tied), sliding_window_pattern 6 (layer i is
    # global when (i + 1) % 6 == 0: 10 global, 52 local). vision_config: SigLIP, 27 layers, hidden 1152, MLP 4304.
    h, layers = 5376, 62
    text = layers * (gqa_attention(h, 32, 16, 128) + gated_mlp(h, 21504)) + 262208 * h
    assert text / 1e9 == pytest.approx(27.0, rel=0.002)
    vision = 27 * (4 * 1152**2 + 2 * 1152 * 4304) + 4096 * 1152 + 1152 * h  # blocks, positions, projector
    weights_gb = (text + vision) * BF16 / 1e9  # ~54.9 GB
    per_layer = 2 * 16 * 128 * 2  # K and V, 16 KV heads of 128, bf16
    global_layers, local_layers = layers // 6, layers - layers // 6
    kv = global_layers * per_layer * SEQ + local_layers * per_layer * min(SEQ, 1024)
    assert (global_layers, local_layers, kv) == (10, 52, 1_107_296_256)  # vs 4,160,749,568 if all were global

    arch = lookup_model("gemma-3-27b")
    assert arch is not None
    assert arch.kv_bytes(SEQ) == kv
    data = estimate("gemma-3-27b", "H100", 1, "bf16")
    assert data["weights_gb"] == pytest.approx(weights_gb, rel=0.05)
    assert kv_bytes_per_sequence_per_gpu(data) == pytest.approx(kv, rel=0.05)
