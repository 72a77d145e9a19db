"""What vLLM can launch: the rules of orchestrator/data/vllm_compat.yaml (sources there), read here only.

The candidate builder (orchestrator/placement/candidates.py) offers only what passes them, and the vLLM container builder
(containers/vllm.py) renders its flags from them, so a plan never names what its container cannot start, and a
candidate is priced as it runs. Each rule is a rejection category the plan's explanation counts per provider:

- ``dtype``: bf16 needs compute capability >= 8.0 (NVIDIA); below it the option is planned, priced and launched
  as fp16 (counted, with the GPU, so the plan says so).
- ``hardware``: fp8 computes W8A8 from 8.9 (Ada, Hopper, Blackwell) and on MI300 (CDNA3); Ampere runs it weight-only
  (FP8 Marlin; the performance model prices it at the bf16 rate: orchestrator/perf/quant.py); not below 8.0, not on the
  CPU. int8 (W8A8) from 7.5 to below 10.0, and the CPU; int4 (AWQ/GPTQ/W4A16, Marlin) from 8.0; neither on AMD.
- ``checkpoint``: int8 and int4 need a pre-quantized checkpoint (models.yaml ``checkpoints``, or the model's own
  weights). vLLM 0.32 has no in-flight INT8 or 4-bit (bitsandbytes is not one of its quantization methods), so an
  in-flight int4 option is never offered rather than offered at a speed it would not reach.
- ``parallelism``: the tensor-parallel degree divides the attention heads, and divides the KV heads or is a multiple
  of them; pipeline parallelism only across nodes (a replica larger than one instance).
- ``context``: max_model_len within the model's context, and the KV cache holds one sequence that long (else vLLM
  refuses to start).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from orchestrator.catalog.types import GPU
from orchestrator.errors import UserError

DTYPE, HARDWARE, CHECKPOINT, PARALLEL, CONTEXT = "dtype", "hardware", "checkpoint", "parallelism", "context"
REASON_TEXT = {
    DTYPE: "bf16 needs compute capability >= 8.0: planned and launched as fp16 instead",
    HARDWARE: "quantization not supported by vLLM on this GPU",
    CHECKPOINT: "no pre-quantized checkpoint, and vLLM cannot quantize to it in flight",
    PARALLEL: "tensor parallel degree does not divide the attention (or KV) heads",
    CONTEXT: "KV cache cannot hold one max_model_len sequence (vLLM would not start)",
}
DTYPE_FLAG = {"bf16": "bfloat16", "fp16": "float16"}
# checkpoint formats whose weights are fp16 by convention (AutoAWQ / AutoGPTQ): launched with --dtype float16
_FP16_FORMATS = ("awq", "gptq")


@cache
def table() -> dict[str, Any]:
    import yaml

    text = resources.files("orchestrator.data").joinpath("vllm_compat.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _quant(q: str) -> dict[str, Any]:
    return table()["quantizations"].get(q, {})


def _cc(gpu: GPU) -> float:
    return float(gpu.compute_capability or 0.0)


def _gpu(name: str | None) -> GPU | None:
    if not name:
        return None
    from orchestrator.catalog.gpus import get_gpu

    try:
        return get_gpu(name)
    except UserError:
        return None


# --- dtype -------------------------------------------------------------------------------------------------------

def backend(gpu: GPU | None) -> dict[str, Any] | None:
    """The vLLM backend of an accelerator that is not a GPU (TPU, Neuron): vllm_compat.yaml ``backends``; None for GPUs."""
    return table().get("backends", {}).get(gpu.vendor) if gpu is not None else None


def opt_in(gpu: GPU) -> bool:
    """Offered only to deployments whose hardware policy names it (TPUs, Trainium: their own image and kernels)."""
    return bool((backend(gpu) or {}).get("opt_in"))


def single_node(gpu: GPU) -> bool:
    """A replica stays inside one instance (one TPU VM, one trn2 instance): no pipeline parallelism across nodes."""
    return bool((backend(gpu) or {}).get("single_node"))


def backend_reason(gpu: GPU) -> str | None:
    """Why vLLM's backend for this vendor serves nothing on this chip (a family it does not run), or None."""
    b = backend(gpu)
    if b is None or gpu.family in b.get("families", ()):
        return None
    return f"vLLM's {b['name']} backend does not serve {gpu.name} (it runs {', '.join(b.get('families', ())) or 'none'})"


def dtype_ok(gpu: GPU, dtype: str) -> bool:
    rule = table()["dtypes"][dtype]
    if gpu.vendor == "nvidia":
        return _cc(gpu) >= rule["nvidia_min_cc"]
    if backend_reason(gpu) is not None:
        return False
    return bool(rule.get(gpu.vendor, False))


def planned_quantization(gpu: GPU, q: str) -> str:
    """What a requested quantization is planned and launched as on this GPU: bf16 becomes fp16 where bf16 is not
    (NVIDIA below compute capability 8.0; other vendors serve what they serve or nothing)."""
    if q == "bf16" and gpu.vendor == "nvidia" and not dtype_ok(gpu, "bf16"):
        return table()["dtypes"]["bf16"]["instead"]
    return q


def activation_dtype(gpu: GPU | None) -> str:
    """The --dtype of quantized models' activations on this GPU (unknown GPU: bf16)."""
    return "bfloat16" if gpu is None or dtype_ok(gpu, "bf16") else "float16"


# --- hardware ----------------------------------------------------------------------------------------------------

def fp8_mode(gpu: GPU) -> str | None:
    """How vLLM runs fp8 here: 'w8a8' (FP8 compute), 'weight_only' (W8A16, FP8 Marlin), or None (not offered)."""
    rule = _quant("fp8")
    if gpu.vendor == "nvidia":
        if _cc(gpu) >= rule["w8a8_min_cc"]:
            return "w8a8"
        return "weight_only" if _cc(gpu) >= rule["weight_only_min_cc"] else None
    if gpu.vendor == "amd":
        return "w8a8" if gpu.family in rule["amd_families"] else None
    return "w8a8" if rule.get(gpu.vendor) else None


def hardware_reason(gpu: GPU, q: str) -> str | None:
    """Why vLLM cannot run quantization q on this GPU (after planned_quantization), or None."""
    if (why := backend_reason(gpu)) is not None:
        return why
    if q in table()["dtypes"]:
        if dtype_ok(gpu, q):
            return None
        if gpu.vendor != "nvidia":
            b = backend(gpu)
            return f"vLLM's {b['name'] if b else gpu.vendor} backend does not serve {q} on {gpu.name}"
        return f"{q} needs compute capability >= {table()['dtypes'][q]['nvidia_min_cc']:g}; {gpu.name} has {_cc(gpu):g}"
    rule = _quant(q)
    if not rule:
        return f"unknown quantization {q!r}"
    if q == "fp8":
        if fp8_mode(gpu) is not None:
            return None
        if gpu.vendor == "nvidia":
            return (f"fp8 needs compute capability >= {rule['weight_only_min_cc']:g} (weight-only FP8 Marlin; FP8 compute "
                    f">= {rule['w8a8_min_cc']:g}); {gpu.name} has {_cc(gpu):g}")
        return f"vLLM has no fp8 on {gpu.name} ({gpu.family})"
    if gpu.vendor == "nvidia":
        low, high = rule["nvidia_min_cc"], rule.get("nvidia_below_cc", math.inf)
        if low <= _cc(gpu) < high:
            return None
        if _cc(gpu) < low:
            return f"{q} ({rule['what']}) needs compute capability >= {low:g}; {gpu.name} has {_cc(gpu):g}"
        return f"vLLM {table()['vllm']} has no {rule['what']} kernel for compute capability {_cc(gpu):g} ({gpu.name})"
    if gpu.vendor == "amd":
        if gpu.family in rule["amd_families"]:
            return None
        return f"vLLM (ROCm) does not run {q} ({rule['what']}) on {gpu.name}"
    return None if rule.get(gpu.vendor) else f"vLLM's {gpu.vendor} backend does not run {q} ({rule['what']}) at the priced speed"


# --- checkpoints -------------------------------------------------------------------------------------------------

def needs_checkpoint(q: str) -> bool:
    return _quant(q).get("checkpoint") == "required"


def checkpoint(model: Any, q: str) -> Any:
    """The checkpoint vLLM serves for quantization q: the registry's published one, else the model's own weights
    when they are in that format (a model_registry.Checkpoint, format 'native'), else None."""
    from orchestrator.model_registry import Checkpoint

    getter = getattr(model, "checkpoint", None)
    found = getter(q) if callable(getter) else None
    if found is not None:
        return found
    if q in table()["quantizations"] and getattr(model, "weight_format", "bf16") == q:
        return Checkpoint(quantization=q, hf_id=model.hf_id, format="native", source="the model's own weights")
    return None


def checkpoint_reason(model: Any, q: str) -> str | None:
    """Why quantization q cannot be served for this model (no checkpoint, none in flight), or None."""
    if not needs_checkpoint(q) or checkpoint(model, q) is not None:
        return None
    have = ", ".join(f"{c.quantization} {c.hf_id}" for c in getattr(model, "checkpoints", ())) or "none"
    return (f"{q} needs a pre-quantized {_quant(q)['what']} checkpoint and vLLM cannot quantize to {q} in flight; "
            f"the registry has none for {model.name} (its published checkpoints: {have})")


@dataclass(frozen=True)
class Verdict:
    """A requested quantization on one GPU: what is planned (None: not offered), and the rule that changed it."""

    requested: str
    quantization: str | None
    reason: str | None = None  # DTYPE (planned as another), HARDWARE or CHECKPOINT (not offered)
    message: str = ""


def resolve(model: Any, gpu: GPU, q: str) -> Verdict:
    planned = planned_quantization(gpu, q)
    if (msg := checkpoint_reason(model, planned)) is not None:
        return Verdict(q, None, CHECKPOINT, msg)
    if (msg := hardware_reason(gpu, planned)) is not None:
        return Verdict(q, None, HARDWARE, msg)
    if planned != q:
        return Verdict(q, planned, DTYPE, f"{gpu.name} has compute capability {_cc(gpu):g} < 8.0: {q} planned as {planned}")
    return Verdict(q, planned)


# --- parallelism and context -------------------------------------------------------------------------------------

def parallel_reason(model: Any, tp: int, pp: int = 1, gpus_per_replica: int | None = None,
                    gpus_per_instance: int | None = None) -> str | None:
    heads, kv = getattr(model, "heads", 0) or 0, getattr(model, "kv_heads", 0) or 0
    if heads and heads % tp:
        return f"tensor parallel {tp} does not divide {heads} attention heads"
    if kv and (kv % tp if tp <= kv else tp % kv):
        return f"tensor parallel {tp} neither divides nor is a multiple of {kv} KV heads"
    if gpus_per_replica is not None and tp * pp != gpus_per_replica:
        return f"tensor parallel {tp} x pipeline parallel {pp} is not the replica's {gpus_per_replica} GPUs"
    if gpus_per_instance is not None and gpus_per_replica is not None and pp > 1 and gpus_per_replica <= gpus_per_instance:
        return f"pipeline parallel {pp} inside one {gpus_per_instance}-GPU instance (multi-node only past one instance)"
    return None


def max_model_len(deployment: Any, model: Any) -> int:
    """The --max-model-len a plan gives vLLM (as orchestrator.placement: the deployment's, else twice a request)."""
    from orchestrator.placement import MODEL_LEN_MARGIN

    if getattr(deployment, "max_model_len", None):
        return int(deployment.max_model_len)
    t = deployment.traffic
    want = (t.input_tokens + t.output_tokens) * MODEL_LEN_MARGIN
    return int(min(model.max_context, math.ceil(want / 1024) * 1024))


def context_reason(model: Any, max_len: int, kv_capacity_tokens: int, seq: int) -> str | None:
    """Why vLLM would not start with this max_model_len: beyond the model's context, or more KV than the replica
    holds. ``kv_capacity_tokens`` is the performance model's, counted in sequences ``seq`` tokens long."""
    if max_len > model.max_context:
        return f"max_model_len {max_len} exceeds {model.name}'s context of {model.max_context} tokens"
    frac = getattr(model, "kv_fraction", None)
    need = max_len * (frac(max_len) if frac else 1.0)
    have = kv_capacity_tokens * (frac(max(seq, 1)) if frac else 1.0)
    if have + 1e-9 < need:
        return f"KV cache holds {int(have)} tokens; one max_model_len {max_len} sequence needs {math.ceil(need)}"
    return None


# --- launching ---------------------------------------------------------------------------------------------------

def image_for(gpu_name: str | None) -> str:
    """The vLLM image for this accelerator's vendor (vllm/vllm-openai; AMD vllm/vllm-openai-rocm; TPU vllm/vllm-tpu;
    Trainium the Neuron DLC): vllm_compat.yaml ``images``."""
    gpu = _gpu(gpu_name)
    images = table()["images"]
    return images.get(gpu.vendor if gpu else "nvidia", images["nvidia"])


def serving_id(model_name: str, hf_id: str, q: str) -> str:
    """What vLLM loads for a replica group at quantization q: the registry model's checkpoint at q, else its base
    weights; a plan naming something else (a local config path) is served as it is."""
    from orchestrator.model_registry import lookup_model

    arch = lookup_model(model_name)
    if arch is None:
        return hf_id
    known = {arch.hf_id.lower(), *(c.hf_id.lower() for c in arch.checkpoints)}
    if hf_id.lower() not in known:
        return hf_id
    found = checkpoint(arch, q)
    return found.hf_id if found is not None else arch.hf_id


def checkpoint_format(hf_id: str, q: str) -> str | None:
    """The format of the checkpoint ``hf_id`` at quantization q: the registry's word, else told by its name."""
    from orchestrator.model_registry import CHECKPOINT_FORMATS, all_models

    for m in all_models():
        for c in m.checkpoints:
            if c.hf_id.lower() == hf_id.lower() and c.quantization == q:
                return c.format
        if m.hf_id.lower() == hf_id.lower():
            return "native" if m.weight_format == q else None
    name = hf_id.lower()
    for fmt, pattern in (("awq", r"awq"), ("gptq", r"gptq"), ("w4a16", r"w4a16"), ("w8a8", r"w8a8|int8"), ("fp8", r"fp8")):
        if re.search(pattern, name) and CHECKPOINT_FORMATS[fmt] == q:
            return fmt
    return None


def vllm_args(q: str, hf_id: str, gpu_name: str | None = None) -> list[str]:
    """The --dtype / --quantization flags for serving ``hf_id`` at quantization q on this GPU (None: unknown)."""
    gpu = _gpu(gpu_name)
    if q in DTYPE_FLAG:
        planned = planned_quantization(gpu, q) if gpu is not None else q  # a bf16 plan from before this rule
        return ["--dtype", DTYPE_FLAG[planned]]
    if q not in table()["quantizations"]:
        raise UserError(f"unknown quantization {q!r}; known: bf16, fp16, {', '.join(table()['quantizations'])}")
    if gpu is not None and (msg := hardware_reason(gpu, q)) is not None:
        raise UserError(f"cannot launch {q} on {gpu.name}: {msg}")
    fmt = checkpoint_format(hf_id, q)
    act = activation_dtype(gpu)
    if q == "fp8":  # a published FP8 checkpoint carries its quantization_config; else quantized in flight
        return ["--dtype", act] + ([] if fmt else ["--quantization", "fp8"])
    if fmt is None:
        example = {"int8": "a RedHatAI '*-quantized.w8a8' repo", "int4": "an AWQ or GPTQ INT4 repo"}[q]
        raise UserError(
            f"{q} needs a pre-quantized {_quant(q)['what']} checkpoint (e.g. {example}) and vLLM {table()['vllm']} cannot quantize "
            f"to {q} in flight; {hf_id!r} is not one: list the model's checkpoints with `orch catalog models` or drop {q}")
    flag = table()["formats"].get(fmt)
    dtype = "float16" if fmt in _FP16_FORMATS else act
    return ["--dtype", dtype] + (["--quantization", flag] if flag else [])
