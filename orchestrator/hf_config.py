"""Read a Hugging Face config.json into a ModelArch, counting parameters from the tensor shapes.

Covers decoder-only transformers with gated MLPs:
- dense: Llama, Mistral, Qwen2/Qwen3, Gemma 2/3, Phi-3/Phi-4;
- MoE: Mixtral and gpt-oss (num_local_experts / num_experts_per_tok), Llama 4 (num_local_experts with a shared
  expert, MoE every interleave_moe_layer_step-th layer or on the listed moe_layers, dense layers of
  intermediate_size_mlp), Qwen2/Qwen3-MoE (num_experts, moe_intermediate_size, shared_expert_intermediate_size,
  mlp_only_layers / decoder_sparse_step), DeepSeek-V2/V3/R1 (n_routed_experts + n_shared_experts,
  first_k_dense_replace dense layers);
- attention: GQA/MHA; DeepSeek multi-head latent attention (kv_lora_rank set), whose KV cache holds
  kv_lora_rank + qk_rope_head_dim values per layer and token; sliding-window layers from layer_types,
  sliding_window_pattern (Gemma 3: 1 global layer in 6), Gemma 2's alternation, or a window on every layer
  (Mistral-7B-v0.1, Phi-3-mini-4k); use_sliding_window false (Qwen) switches the window off;
- multimodal checkpoints (Llama 4, Gemma 3, Mistral 3): the text_config, with the defaults transformers fills in
  for fields the file leaves out (Gemma 3), plus an approximate count of the vision encoder (vision_config), which
  vLLM loads too;
- the native weight format: quantization_config (mxfp4, fp8, awq/gptq) else torch_dtype.

Norm weights are counted; rotary tables and multi-token-prediction heads are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.model_arch import ModelArch

# transformers' config defaults for fields published config.json files leave out (Gemma3TextConfig: the
# google/gemma-3-{4b,12b,27b}-it text_config omits vocab_size and max_position_embeddings, the 4b one the heads too)
_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262_208,
        "max_position_embeddings": 131_072,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 4096,
    },
}
_GEMMA3_PATTERN = 6  # Gemma3TextConfig.sliding_window_pattern default: layer i is global when (i + 1) % 6 == 0


@dataclass(frozen=True)
class _Counts:
    total: int
    active: int


class _Config:
    """config.json fields with errors that name the file and the missing field."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data, self.path = data, path

    def req(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise UserError(f"{self.path}: missing field {key!r} in the Hugging Face config")
        return self._num(key, self.data[key])

    def opt(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        return default if value is None else self._num(key, value)

    def _num(self, key: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{self.path}: field {key!r} must be a number, found {value!r}")
        return int(value)


def load_hf_config(path: Path) -> ModelArch:
    """A ModelArch from a Hugging Face config.json (or a directory holding one).

    name is the model directory's name lowercased (the file's stem for a file not named config.json);
    hf_id is that directory's absolute path, which vLLM serves.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a Hugging Face config.json)")
    try:
        top = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(top, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(top).__name__}")
    data = top
    nested = "hidden_size" not in top and isinstance(top.get("text_config"), dict)
    if nested:
        data = {**top["text_config"], **{k: v for k, v in top.items() if k == "tie_word_embeddings"}}
    defaults = _TEXT_DEFAULTS.get(str(data.get("model_type", "")), {})
    data = {**defaults, **{k: v for k, v in data.items() if v is not None}}
    cfg = _Config(data, path)
    model_type = str(data.get("model_type", ""))

    hidden = cfg.req("hidden_size")
    layers = cfg.req("num_hidden_layers")
    heads = cfg.req("num_attention_heads")
    kv_heads = cfg.opt("num_key_value_heads", heads)
    head_dim = cfg.opt("head_dim", hidden // heads)
    vocab = cfg.req("vocab_size")
    # transformers' per-architecture default when the key is absent: Gemma ties, the others do not
    tied = bool(data.get("tie_word_embeddings", model_type.startswith("gemma")))
    max_context = cfg.opt("max_position_embeddings", 4096)

    mla = data.get("kv_lora_rank") is not None
    attn = _mla_params(cfg, hidden, heads) if mla else _attn_params(data, hidden, heads, kv_heads, head_dim)
    counts = _layer_params(cfg, data, hidden, layers, attn, head_dim)
    embed = vocab * hidden * (1 if tied else 2) + hidden  # embeddings (+ untied lm_head) + final norm
    vision = _vision_params(top, hidden) if nested else 0

    kv_lora_rank = qk_rope = None
    if mla:
        kv_lora_rank, qk_rope = cfg.req("kv_lora_rank"), cfg.req("qk_rope_head_dim")
        kv_heads, head_dim = 1, kv_lora_rank + qk_rope  # one latent shared by all heads
    window, sliding_layers = (None, 0) if mla else _sliding(cfg, data, layers, max_context)
    experts, experts_per_token = _experts(cfg, data)

    return ModelArch(
        name=(path.parent.resolve().name if path.name == "config.json" else path.stem).lower(),
        hf_id=str(path.parent.resolve()),
        params_b=(counts.total + embed + vision) / 1e9,
        active_params_b=(counts.active + embed) / 1e9,  # the vision encoder runs on images only
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_context=max_context,
        experts=experts,
        experts_per_token=experts_per_token,
        source=f"{path} (parameters counted from the config's shapes)",
        family=str(top.get("model_type", model_type)),
        kv_lora_rank=kv_lora_rank,
        qk_rope_head_dim=qk_rope,
        sliding_window=window,
        sliding_layers=sliding_layers,
        weight_format=_weight_format(top, data),
    )


def _sliding(cfg: _Config, data: dict[str, Any], layers: int, max_context: int) -> tuple[int | None, int]:
    """(window, number of sliding-window layers), or (None, 0) when no layer's window binds."""
    window = data.get("sliding_window")
    if data.get("use_sliding_window") is False:  # Qwen2/Qwen3 publish a sliding_window they do not use
        return None, 0
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        return None, 0
    if window >= max_context:  # e.g. Phi-3.5-mini's 262144 over a 131072 context
        return None, 0
    model_type = str(data.get("model_type", ""))
    types = data.get("layer_types")
    if isinstance(types, list) and types:
        n = sum(1 for t in types[:layers] if t == "sliding_attention")
    elif data.get("sliding_window_pattern") is not None or model_type == "gemma3_text":
        pattern = cfg.opt("sliding_window_pattern", _GEMMA3_PATTERN)
        n = layers - layers // pattern if pattern > 0 else layers
    elif model_type == "gemma2":
        n = (layers + 1) // 2  # layers 0, 2, 4, ... slide
    elif model_type.startswith(("qwen2", "qwen3")) and data.get("max_window_layers") is not None:
        n = max(layers - cfg.opt("max_window_layers", 0), 0)  # layers from max_window_layers on slide
    else:
        n = layers  # one window for every layer (Mistral-7B-v0.1, Phi-3-mini-4k)
    return (window, n) if n > 0 else (None, 0)


def _experts(cfg: _Config, data: dict[str, Any]) -> tuple[int | None, int | None]:
    for key in ("num_local_experts", "n_routed_experts", "num_experts"):
        if data.get(key):
            top_k = "num_experts_per_tok" if "num_experts_per_tok" in data else "experts_per_token"  # gpt-oss has both
            return cfg.req(key), cfg.req(top_k)
    return None, None


def _weight_format(top: dict[str, Any], data: dict[str, Any]) -> str:
    quant = top.get("quantization_config") or data.get("quantization_config")
    if isinstance(quant, dict):
        method = str(quant.get("quant_method", "")).lower()
        if method in ("mxfp4", "fp8"):
            return method
        if method in ("awq", "gptq"):
            return "int4" if quant.get("bits", 4) == 4 else "int8"
    dtype = str(top.get("torch_dtype") or top.get("dtype") or data.get("torch_dtype") or "").lower()
    return "fp16" if dtype in ("float16", "fp16") else "bf16"


def _attn_params(data: dict[str, Any], hidden: int, heads: int, kv_heads: int, head_dim: int) -> int:
    q, kv = heads * head_dim, kv_heads * head_dim
    weights = hidden * q + 2 * hidden * kv + q * hidden
    has_bias = data.get("attention_bias", data.get("model_type") in ("qwen2", "qwen2_moe"))
    extra = 0
    if data.get("model_type") == "gpt_oss":
        extra = hidden + heads  # o_proj bias and the per-head attention sinks
    return weights + ((q + 2 * kv) if has_bias else 0) + extra


def _mla_params(cfg: _Config, hidden: int, heads: int) -> int:
    """DeepSeek multi-head latent attention: low-rank Q (optional) and a shared compressed KV latent."""
    nope, rope = cfg.req("qk_nope_head_dim"), cfg.req("qk_rope_head_dim")
    v_dim, kv_rank = cfg.req("v_head_dim"), cfg.req("kv_lora_rank")
    q_rank = cfg.opt("q_lora_rank", 0)
    q_out = heads * (nope + rope)
    q = hidden * q_rank + q_rank + q_rank * q_out if q_rank else hidden * q_out
    kv = hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
    return q + kv + heads * v_dim * hidden


def _layer_params(cfg: _Config, data: dict[str, Any], hidden: int, layers: int, attn: int, head_dim: int) -> _Counts:
    model_type = str(data.get("model_type", ""))
    norms = 2 * hidden
    if model_type in ("gemma2", "gemma3_text"):
        norms += 2 * hidden  # pre- and post-feedforward norms
    if model_type in ("gemma3_text", "qwen3", "qwen3_moe"):
        norms += 2 * head_dim  # q_norm, k_norm
    fixed = layers * (attn + norms)

    moe = _moe_layout(cfg, data, hidden, layers)
    if moe is None:
        mlp = 3 * hidden * cfg.req("intermediate_size")  # gated: gate, up, down
        return _Counts(fixed + layers * mlp, fixed + layers * mlp)
    n, k, expert, shared, moe_layers, dense_mlp, router = moe
    fixed += (layers - moe_layers) * dense_mlp + moe_layers * (router + shared)
    return _Counts(fixed + moe_layers * n * expert, fixed + moe_layers * k * expert)


def _moe_layout(cfg: _Config, data: dict[str, Any], hidden: int, layers: int) -> tuple[int, ...] | None:
    """(experts, top-k, params per expert, shared-expert params per MoE layer, MoE layers, params of a dense
    layer's MLP, router params per MoE layer), or None for a dense model."""
    model_type = str(data.get("model_type", ""))
    if data.get("num_local_experts"):
        n = cfg.req("num_local_experts")
        k = cfg.req("num_experts_per_tok") if "num_experts_per_tok" in data else cfg.req("experts_per_token")
        inter = cfg.req("intermediate_size")
        expert = 3 * hidden * inter
        if model_type == "gpt_oss":  # fused gate_up (2 x inter) and down projections, both with biases
            return n, k, expert + 2 * inter + hidden, 0, layers, 0, hidden * n + n
        if model_type.startswith("llama4"):  # one shared expert per MoE layer; the other layers dense
            moe_layers = data.get("moe_layers")
            if isinstance(moe_layers, list):
                count = sum(1 for i in moe_layers if isinstance(i, int) and 0 <= i < layers)
            else:
                step = cfg.opt("interleave_moe_layer_step", 1) or 1
                count = layers // step
            dense = 3 * hidden * cfg.opt("intermediate_size_mlp", inter)
            return n, k, expert, expert, count, dense, hidden * n
        return n, k, expert, 0, layers, 0, hidden * n  # Mixtral: every layer MoE
    if data.get("n_routed_experts"):  # DeepSeek-V2/V3
        n, k = cfg.req("n_routed_experts"), cfg.req("num_experts_per_tok")
        expert = 3 * hidden * cfg.req("moe_intermediate_size")
        shared = cfg.opt("n_shared_experts", 0) * expert
        dense_layers = min(cfg.opt("first_k_dense_replace", 0), layers)
        dense = 3 * hidden * cfg.req("intermediate_size")
        router = hidden * n + (n if data.get("topk_method") == "noaux_tc" else 0)  # + correction bias
        return n, k, expert, shared, layers - dense_layers, dense, router
    if data.get("num_experts"):  # Qwen2-MoE / Qwen3-MoE
        n, k = cfg.req("num_experts"), cfg.req("num_experts_per_tok")
        expert = 3 * hidden * cfg.req("moe_intermediate_size")
        shared_inter = cfg.opt("shared_expert_intermediate_size", 0)
        shared = 3 * hidden * shared_inter + (hidden if shared_inter else 0)  # + the shared expert's gate
        step = cfg.opt("decoder_sparse_step", 1) or 1
        dense_only = set(data.get("mlp_only_layers") or [])
        count = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
        dense = 3 * hidden * cfg.opt("intermediate_size", 0)
        return n, k, expert, shared, count, dense, hidden * n
    return None


def _vision_params(top: dict[str, Any], text_hidden: int) -> int:
    """Approximate parameters of a multimodal checkpoint's vision encoder (ViT blocks, patch and position
    embeddings, a linear projector into the text model): ~0.4B for Gemma 3 / Mistral 3, ~0.9B for Llama 4."""
    vc = top.get("vision_config")
    if not isinstance(vc, dict):
        return 0
    try:
        h = int(vc.get("hidden_size") or 0)
        i = int(vc.get("intermediate_size") or 0)
        n = int(vc.get("num_hidden_layers") or vc.get("depth") or 0)
        patch = int(vc.get("patch_size") or 14)
        image = int(vc.get("image_size") or 0)
        channels = int(vc.get("num_channels") or 3)
    except (TypeError, ValueError):
        return 0
    if not (h and i and n):
        return 0
    gated = str(vc.get("hidden_act", "")).lower() in ("silu", "swiglu")
    mlp = (3 if gated else 2) * h * i
    block = 4 * h * h + mlp + 4 * h  # attention, MLP, two norms
    positions = (image // patch) ** 2 * h if image else 0
    return n * block + channels * patch * patch * h + positions + h * text_hidden
