"""What serving LoRA adapters costs a replica: GPU memory vLLM reserves for them, and time per engine step.

Memory (read from vLLM 0.32's source, vllm/lora/layers/*.py ``create_lora_weights``): with ``--enable-lora`` vLLM
allocates, at start, stacked A and B buffers for ``max_loras`` adapters at ``max_lora_rank`` r in every layer it
applies LoRA to (every linear layer; dtype: the model's, 2 bytes). Per layer and adapter slot, on each GPU at tensor
parallelism t (h hidden, H heads, K KV heads, d head dim, I the MLP width, E experts or 1):

- qkv_proj (merged column-parallel, 3 slices): A 3 x r x h, B r x (H + 2K) d / t
- o_proj (row-parallel): A r x H d / t, B h x r
- gate_up_proj (2 slices) and down_proj: A 2 x r x h and r x I / t, B 2 x r x I / t and h x r; a MoE layer holds
  these per expert (FusedMoEWithLoRA): E x 3 r h + 3 r I_total / t

  slot bytes per layer = 2 x r x [4h + 3h E + ((2H + 2K) d + 3 I) / t]

  reserved = max_loras x layers x slot bytes per layer   (per GPU, before the KV cache is sized)

I is not in the registry: it is derived from the parameter count, I = (params / layers - h d (2H + 2K)) / 3h. That
leaves the embeddings in I, which makes 3 r I over-count the MLP buffers by about 2 r vocab per adapter (untied
embeddings) -- what vLLM reserves for the embedding and lm_head LoRA buffers (A vocab x r, B h x r each), so the sum
holds them too (within a few percent; exactly for untied embeddings at t = 1). MLA attention is counted as GQA of
the same heads: an approximation.

Time: with LoRA enabled every engine step runs the Punica/SGMV kernels in every layer, for base-model requests too.
Punica (Chen et al., "Punica: Multi-Tenant LoRA Serving", MLSys 2024, arXiv:2310.18547, abstract: "only adding 2ms
latency per token", Llama-2 7B, 32 layers, A100) is the figure used: 2 ms per decode step for 32 layers, i.e.
62.5 us per layer per step, added to every decode step and to every prefill. It is a published figure for other
kernels and GPUs than a given deployment's: measure the real cost with `orch bench` against a LoRA deployment, whose
profile then replaces the model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from orchestrator.model_registry import ModelArch

VLLM_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py MaxLoRARanks, 0.32
LORA_DTYPE_BYTES = 2.0  # --lora-dtype auto: the model's dtype (bf16/fp16; an FP8 model computes in bf16)
PUNICA_STEP_S = 2e-3  # per decode step, Llama-2 7B on A100 (Punica, arXiv:2310.18547)
PUNICA_LAYERS = 32
STEP_S_PER_LAYER = PUNICA_STEP_S / PUNICA_LAYERS
SOURCE = "Punica (arXiv:2310.18547): +2 ms per token, Llama-2 7B (32 layers), A100; calibrate with orch bench"


def vllm_rank(rank: int) -> int:
    """The smallest rank vLLM 0.32 accepts for --max-lora-rank that holds ``rank``."""
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")


@dataclass(frozen=True)
class LoraLoad:
    """What the replica is started with: --max-loras and --max-lora-rank (a vLLM rank)."""

    max_loras: int
    max_rank: int
    adapters: int = 1


@dataclass(frozen=True)
class LoraArch(ModelArch):
    """A model served with LoRA adapters: the performance model adds their memory and step time."""

    lora: LoraLoad | None = None


def with_lora(model: ModelArch, load: LoraLoad | None) -> ModelArch:
    """``model`` carrying ``load`` (the same model when None)."""
    if load is None:
        return model
    base = {f.name: getattr(model, f.name) for f in fields(ModelArch)}
    return LoraArch(**base, lora=load)


def mlp_width(model: ModelArch) -> float:
    """I of the module docstring: the per-layer MLP width (all experts) left when attention is taken out."""
    h, d = model.hidden, model.head_dim
    attention = h * d * (2 * model.heads + 2 * model.kv_heads)
    return max(model.params_b * 1e9 / model.layers - attention, 0.0) / (3.0 * h)


def slot_params_per_layer(model: ModelArch, rank: int, tp: Any = 1) -> Any:
    """LoRA buffer elements of one adapter slot in one layer, on one GPU at tensor parallelism ``tp`` (a number or
    a numpy array)."""
    h, d = model.hidden, model.head_dim
    experts = model.experts or 1
    whole = 4 * h + 3 * h * experts
    split = (2 * model.heads + 2 * model.kv_heads) * d + 3 * mlp_width(model)
    return rank * (whole + split / tp)


def reserved_bytes_per_gpu(model: ModelArch, load: LoraLoad, tp: Any = 1) -> Any:
    """GPU memory vLLM reserves for ``max_loras`` adapters at ``max_rank`` (per GPU)."""
    return load.max_loras * model.layers * slot_params_per_layer(model, load.max_rank, tp) * LORA_DTYPE_BYTES


def adapter_gb(model: ModelArch, rank: int) -> float:
    """Size of one adapter's weights (LoRA on every linear layer, 2 bytes): an upper bound for its files."""
    return float(model.layers * slot_params_per_layer(model, rank) * LORA_DTYPE_BYTES / 1e9)


def step_overhead_s(model: ModelArch) -> float:
    """Time LoRA adds to every engine step (decode step or prefill): Punica's figure, per layer."""
    return STEP_S_PER_LAYER * model.layers


def describe(model: ModelArch, load: LoraLoad, tp: int = 1) -> str:
    gb = reserved_bytes_per_gpu(model, load, tp) / 1e9
    return (f"LoRA: {load.max_loras} slot(s) at rank {load.max_rank} reserve {gb:.2f} GB per GPU at tp={tp}; "
            f"+{step_overhead_s(model) * 1e3:.2f} ms per step ({SOURCE})")
