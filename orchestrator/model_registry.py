"""Model architectures: what the performance model needs to know about an LLM."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelArch:
    name: str  # canonical lowercase registry name, e.g. llama-3.1-8b
    hf_id: str  # Hugging Face repo id vLLM serves, e.g. meta-llama/Llama-3.1-8B-Instruct
    params_b: float  # total parameters, billions
    active_params_b: float  # per token (== params_b for dense models)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    kv_bytes_per_token_bf16: float | None = None  # override (MLA); else 2*layers*kv_heads*head_dim*2
    experts: int | None = None
    experts_per_token: int | None = None
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return bool(self.experts)

    def kv_bytes_per_token(self, kv_bytes_per_value: float = 2.0) -> float:
        if self.kv_bytes_per_token_bf16 is not None:
            return self.kv_bytes_per_token_bf16 * kv_bytes_per_value / 2.0
        return 2.0 * self.layers * self.kv_heads * self.head_dim * kv_bytes_per_value
