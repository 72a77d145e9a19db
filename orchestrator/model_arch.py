"""Model architectures: what the performance model needs to know about an LLM.

KV cache per attention type (what vLLM allocates; `kv_bytes(tokens)` for a sequence, `kv_bytes_per_token()`
for one token held by every layer):

- GQA / MHA: per layer and token 2 (K and V) x kv_heads x head_dim x bytes; tensor parallelism splits
  the KV heads (each GPU holds at least one).
- MLA (DeepSeek-V2/V3/R1: kv_lora_rank set): vLLM caches the compressed latent, kv_lora_rank +
  qk_rope_head_dim values per layer and token -- no factor 2, not per head -- and every tensor-parallel
  GPU holds the whole latent.
- Sliding-window layers (Gemma 2/3, gpt-oss, Phi-3-mini-4k, Mistral-7B-v0.1): `sliding_layers` of the
  `layers` hold at most `sliding_window` tokens, so a sequence of L tokens takes
  per_layer x (global_layers x L + sliding_layers x min(L, window)) bytes (vLLM's hybrid KV cache manager).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# bytes per parameter of a checkpoint's native weight format. mxfp4 (OCP microscaling FP4, gpt-oss):
# 4-bit values plus one 8-bit scale per block of 32 = 4.25 bits, applied to the MoE experts only. int4 (AWQ/GPTQ
# checkpoints): 0.55 with group scales, as orchestrator/perf/quant.py counts it.
WEIGHT_FORMATS: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.55, "mxfp4": 4.25 / 8}
# A published pre-quantized checkpoint's format: awq / gptq (W4A16, Marlin kernels), w4a16 / w8a8 (compressed-tensors,
# as llm-compressor writes them), fp8 (any FP8 serialization: vLLM reads its quantization_config). orchestrator/compat.py
# says what each is launched with.
CHECKPOINT_FORMATS: dict[str, str] = {"awq": "int4", "gptq": "int4", "w4a16": "int4", "w8a8": "int8", "fp8": "fp8"}


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint of a model at one quantization (models.yaml ``checkpoints:``)."""

    quantization: str  # fp8 | int8 | int4
    hf_id: str
    format: str  # a CHECKPOINT_FORMATS key
    source: str = ""


@dataclass(frozen=True)
class ModelArch:
    name: str  # canonical lowercase registry name, e.g. llama-3.1-8b
    hf_id: str  # Hugging Face repo id vLLM serves, e.g. meta-llama/Llama-3.1-8B-Instruct
    params_b: float  # total parameters, billions: what GPU memory holds (every expert, any vision encoder)
    active_params_b: float  # per text token: total minus unrouted experts and any vision encoder (== params_b if dense)
    layers: int
    hidden: int
    heads: int
    kv_heads: int  # 1 for MLA (all heads share one latent)
    head_dim: int  # for MLA: kv_lora_rank + qk_rope_head_dim, the width decode attention runs over
    max_context: int
    kv_bytes_per_token_bf16: float | None = None  # explicit override of the per-token KV bytes (all layers)
    experts: int | None = None
    experts_per_token: int | None = None
    source: str = ""
    family: str = ""  # architecture family, e.g. llama, qwen3_moe, gemma3, deepseek_v3, gpt_oss
    kv_lora_rank: int | None = None  # MLA: width of the compressed KV latent
    qk_rope_head_dim: int | None = None  # MLA: the decoupled RoPE key, cached beside the latent
    sliding_window: int | None = None  # tokens a sliding-window (local) layer attends to and caches
    sliding_layers: int = 0  # how many of `layers` are sliding-window layers; the rest attend globally
    weight_format: str = "bf16"  # the published checkpoint's weights: bf16 | fp16 | fp8 | int8 | int4 | mxfp4
    checkpoints: tuple[Checkpoint, ...] = ()  # published pre-quantized checkpoints, one per quantization at most

    def __post_init__(self) -> None:
        if not 0 <= self.sliding_layers <= self.layers:
            raise ValueError(f"{self.name}: sliding_layers {self.sliding_layers} not within 0..{self.layers}")
        if self.sliding_layers and not self.sliding_window:
            raise ValueError(f"{self.name}: sliding_layers without a sliding_window")
        if (self.kv_lora_rank is None) != (self.qk_rope_head_dim is None):
            raise ValueError(f"{self.name}: MLA needs both kv_lora_rank and qk_rope_head_dim")
        if self.weight_format not in WEIGHT_FORMATS:
            known = ", ".join(WEIGHT_FORMATS)
            raise ValueError(f"{self.name}: unknown weight_format {self.weight_format!r}; expected one of {known}")
        for c in self.checkpoints:
            if CHECKPOINT_FORMATS.get(c.format) != c.quantization:
                raise ValueError(f"{self.name}: checkpoint {c.hf_id}: format {c.format!r} is not a {c.quantization} format")
        if len({c.quantization for c in self.checkpoints}) != len(self.checkpoints):
            raise ValueError(f"{self.name}: two checkpoints for one quantization")

    def checkpoint(self, quantization: str) -> Checkpoint | None:
        """The published checkpoint at this quantization, or None."""
        return next((c for c in self.checkpoints if c.quantization == quantization), None)

    @property
    def is_moe(self) -> bool:
        return bool(self.experts)

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def has_sliding_window(self) -> bool:
        return self.sliding_layers > 0

    @property
    def global_layers(self) -> int:
        return self.layers - self.sliding_layers

    @property
    def kv_split_by_tp(self) -> bool:
        """Whether tensor parallelism divides the KV cache over GPUs (by KV head); MLA's latent is not."""
        return not self.is_mla

    @property
    def attention(self) -> str:
        """The attention type in words, e.g. 'GQA', 'MLA', 'GQA + SWA 1024 (52/62 layers)'."""
        if self.is_mla:
            kind = "MLA"
        elif self.kv_heads == 1:
            kind = "MQA"
        elif self.kv_heads == self.heads:
            kind = "MHA"
        else:
            kind = "GQA"
        if self.has_sliding_window:
            kind += f" + SWA {self.sliding_window} ({self.sliding_layers}/{self.layers} layers)"
        return kind

    def kv_bytes_per_layer_token(self, kv_bytes_per_value: float = 2.0) -> float:
        """KV bytes one layer caches for one token."""
        if self.kv_bytes_per_token_bf16 is not None:
            return self.kv_bytes_per_token_bf16 / self.layers * kv_bytes_per_value / 2.0
        if self.kv_lora_rank is not None and self.qk_rope_head_dim is not None:
            return float(self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes_per_value
        return 2.0 * self.kv_heads * self.head_dim * kv_bytes_per_value

    def kv_bytes_per_token(self, kv_bytes_per_value: float = 2.0) -> float:
        """KV bytes of one token held by every layer (a sequence no longer than any sliding window)."""
        if self.kv_bytes_per_token_bf16 is not None:
            return self.kv_bytes_per_token_bf16 * kv_bytes_per_value / 2.0
        if self.kv_lora_rank is not None and self.qk_rope_head_dim is not None:
            return self.layers * float(self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes_per_value
        return 2.0 * self.layers * self.kv_heads * self.head_dim * kv_bytes_per_value

    def kv_bytes(self, tokens: Any, kv_bytes_per_value: float = 2.0) -> Any:
        """KV bytes of one sequence of `tokens` tokens (a number or a numpy array), all GPUs together:
        per_layer x (global_layers x tokens + sliding_layers x min(tokens, sliding_window))."""
        if not self.has_sliding_window:
            return self.kv_bytes_per_token(kv_bytes_per_value) * tokens
        import numpy as np

        t = np.asarray(tokens, dtype=float)
        held = self.global_layers * t + self.sliding_layers * np.minimum(t, float(self.sliding_window or 0))
        out = self.kv_bytes_per_layer_token(kv_bytes_per_value) * held
        return float(out) if out.ndim == 0 else out

    def kv_fraction(self, tokens: Any) -> Any:
        """kv_bytes(tokens) / (tokens x kv_bytes_per_token()): exactly 1.0 without sliding-window layers,
        below 1 once a sequence outgrows the window (a number or a numpy array, as `tokens`)."""
        if not self.has_sliding_window:
            return 1.0
        import numpy as np

        t = np.maximum(np.asarray(tokens, dtype=float), 1.0)
        held = self.global_layers * t + self.sliding_layers * np.minimum(t, float(self.sliding_window or 0))
        frac = held / (self.layers * t)
        return float(frac) if frac.ndim == 0 else frac

    @property
    def expert_params_b(self) -> float:
        """Parameters in the routed experts, billions (0 for dense models), from total, active and k/E."""
        if not self.experts or not self.experts_per_token:
            return 0.0
        share = self.experts_per_token / self.experts
        return (self.params_b - self.active_params_b) / (1.0 - share)

    @property
    def native_weights_gb(self) -> float:
        """Weight memory at the checkpoint's own format, GB: mxfp4 covers the experts only (gpt-oss keeps
        attention, router and embeddings in bf16); fp8 block scales (1 per 128x128) are left out."""
        per = WEIGHT_FORMATS[self.weight_format]
        if self.weight_format == "mxfp4":
            experts = self.expert_params_b
            return experts * per + (self.params_b - experts) * 2.0
        return self.params_b * per
