"""Read a Hugging Face config.json into a ModelArch, counting parameters from the tensor shapes.

Covers decoder-only transformers with gated MLPs: dense (Llama, Mistral, Qwen2, Gemma2, Phi3) and MoE
(Mixtral: num_local_experts / num_experts_per_tok; DeepSeek-V3: routed + shared experts, first_k_dense_replace
dense layers, and multi-head latent attention, whose KV cache holds kv_lora_rank + qk_rope_head_dim values
per layer and token). Norm weights are counted; rotary tables and multi-token-prediction heads are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.model_registry import ModelArch


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
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    if "hidden_size" not in data and isinstance(data.get("text_config"), dict):
        data = {**data["text_config"], **{k: v for k, v in data.items() if k == "tie_word_embeddings"}}
    cfg = _Config(data, path)

    hidden = cfg.req("hidden_size")
    layers = cfg.req("num_hidden_layers")
    heads = cfg.req("num_attention_heads")
    kv_heads = cfg.opt("num_key_value_heads", heads)
    head_dim = cfg.opt("head_dim", hidden // heads)
    vocab = cfg.req("vocab_size")
    # transformers' per-architecture default when the key is absent: Gemma ties, the others do not
    tied = bool(data.get("tie_word_embeddings", str(data.get("model_type", "")).startswith("gemma")))
    max_context = cfg.opt("max_position_embeddings", 4096)

    mla = "kv_lora_rank" in data and data["kv_lora_rank"] is not None
    attn = _mla_params(cfg, hidden, heads) if mla else _attn_params(data, hidden, heads, kv_heads, head_dim)
    counts = _layer_params(cfg, data, hidden, layers, attn)
    embed = vocab * hidden * (1 if tied else 2) + hidden  # embeddings (+ untied lm_head) + final norm

    kv_override: float | None = None
    experts = experts_per_token = None
    if mla:
        latent = cfg.req("kv_lora_rank") + cfg.req("qk_rope_head_dim")
        kv_override = float(latent * layers * 2)  # one compressed latent per layer, BF16
        kv_heads, head_dim = 1, latent
    if "num_local_experts" in data:
        experts, experts_per_token = cfg.req("num_local_experts"), cfg.req("num_experts_per_tok")
    elif "n_routed_experts" in data:
        experts, experts_per_token = cfg.req("n_routed_experts"), cfg.req("num_experts_per_tok")

    return ModelArch(
        name=(path.parent.resolve().name if path.name == "config.json" else path.stem).lower(),
        hf_id=str(path.parent.resolve()),
        params_b=(counts.total + embed) / 1e9,
        active_params_b=(counts.active + embed) / 1e9,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_context=max_context,
        kv_bytes_per_token_bf16=kv_override,
        experts=experts,
        experts_per_token=experts_per_token,
        source=f"{path} (parameters counted from the config's shapes)",
    )


def _attn_params(data: dict[str, Any], hidden: int, heads: int, kv_heads: int, head_dim: int) -> int:
    q, kv = heads * head_dim, kv_heads * head_dim
    weights = hidden * q + 2 * hidden * kv + q * hidden
    has_bias = data.get("attention_bias", data.get("model_type") in ("qwen2", "qwen2_moe"))
    return weights + ((q + 2 * kv) if has_bias else 0)


def _mla_params(cfg: _Config, hidden: int, heads: int) -> int:
    """DeepSeek multi-head latent attention: low-rank Q (optional) and a shared compressed KV latent."""
    nope, rope = cfg.req("qk_nope_head_dim"), cfg.req("qk_rope_head_dim")
    v_dim, kv_rank = cfg.req("v_head_dim"), cfg.req("kv_lora_rank")
    q_rank = cfg.opt("q_lora_rank", 0)
    q_out = heads * (nope + rope)
    q = hidden * q_rank + q_rank + q_rank * q_out if q_rank else hidden * q_out
    kv = hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
    return q + kv + heads * v_dim * hidden


def _layer_params(cfg: _Config, data: dict[str, Any], hidden: int, layers: int, attn: int) -> _Counts:
    norms = 2 * hidden
    if "num_local_experts" in data:  # Mixtral: every layer is MoE, experts of intermediate_size
        n, k = cfg.req("num_local_experts"), cfg.req("num_experts_per_tok")
        expert = 3 * hidden * cfg.req("intermediate_size")
        router = hidden * n
        base = attn + norms + router
        return _Counts(layers * (base + n * expert), layers * (base + k * expert))
    if "n_routed_experts" in data:  # DeepSeek-V2/V3
        n, k = cfg.req("n_routed_experts"), cfg.req("num_experts_per_tok")
        shared = cfg.opt("n_shared_experts", 0)
        expert = 3 * hidden * cfg.req("moe_intermediate_size")
        dense_layers = min(cfg.opt("first_k_dense_replace", 0), layers)
        dense_mlp = 3 * hidden * cfg.req("intermediate_size")
        router = hidden * n + (n if data.get("topk_method") == "noaux_tc" else 0)  # + correction bias
        moe_layers = layers - dense_layers
        fixed = layers * (attn + norms) + dense_layers * dense_mlp + moe_layers * (router + shared * expert)
        return _Counts(fixed + moe_layers * n * expert, fixed + moe_layers * k * expert)
    mlp = 3 * hidden * cfg.req("intermediate_size")  # gated: gate, up, down
    extra_norms = 2 * hidden if data.get("model_type") in ("gemma2", "gemma3_text") else 0
    per_layer = attn + mlp + norms + extra_norms
    return _Counts(layers * per_layer, layers * per_layer)
