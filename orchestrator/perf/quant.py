"""Quantization rules: how many bytes a weight takes and at what rate a GPU computes with it.

Rules and their sources (shared/facts/gpus.md, models.md; vLLM docs "Supported Hardware" for
quantization kernels, 2025-2026):

- Bytes per parameter: bf16/fp16 2, fp8/int8 1, int4 (AWQ/GPTQ) ~0.55 effective including
  group scales and zero points (shared/facts/models.md).
- fp8 on GPUs with FP8 tensor cores (Ada, Hopper, Blackwell, MI300X/CDNA3): W8A8, computed at the
  FP8 rate.
- fp8 on Ampere (A100, A10G; compute capability 8.x) has no FP8 tensor cores: vLLM runs FP8
  checkpoints as weight-only quantization with the Marlin FP8 kernels -> weight memory and
  bandwidth halve, compute stays at the bf16 rate.
- fp8 on Turing (T4, compute capability 7.5) is refused: the FP8 Marlin kernels need compute
  capability >= 8.0, and there are no FP8 tensor cores.
- int8 (W8A8, e.g. SmoothQuant / compressed-tensors) computes at the INT8 TOPS rate where the GPU
  lists one; otherwise at the bf16 rate.
- int4 (AWQ/GPTQ) is weight-only: dequantized in the kernel, so compute is at the bf16/fp16 rate.
- The CPU row (local provider, vLLM CPU backend) runs bf16/int8/int4 at its nominal rate; fp8 is
  refused there.
- KV cache dtype: "auto" stores KV at 2 bytes (bf16/fp16), "fp8" at 1 byte.
"""

from __future__ import annotations

from orchestrator.catalog.types import GPU

QUANTIZATIONS: tuple[str, ...] = ("bf16", "fp16", "fp8", "int8", "int4")
KV_DTYPES: tuple[str, ...] = ("auto", "fp8")

_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.55}
_KV_BYTES = {"auto": 2.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def bytes_per_param(quantization: str) -> float:
    try:
        return _BYTES[quantization]
    except KeyError:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {', '.join(QUANTIZATIONS)}") from None


def kv_bytes_per_value(kv_cache_dtype: str) -> float:
    try:
        return _KV_BYTES[kv_cache_dtype]
    except KeyError:
        raise ValueError(f"unknown KV cache dtype {kv_cache_dtype!r}; expected one of {', '.join(KV_DTYPES)}") from None


def unsupported_reason(gpu: GPU, quantization: str) -> str | None:
    """Why this quantization cannot run on this GPU with vLLM, or None when it can."""
    bytes_per_param(quantization)  # validates the name
    if quantization == "fp8":
        if gpu.vendor == "cpu":
            return "fp8 weights are not supported by vLLM's CPU backend"
        if gpu.fp8_tflops is None and gpu.family == "turing":
            return (
                f"fp8 is not supported on {gpu.name}: no FP8 tensor cores, and vLLM's FP8 Marlin "
                "(weight-only) kernels need compute capability >= 8.0 (Turing is 7.5)"
            )
    return None


def compute_tflops(gpu: GPU, quantization: str) -> float:
    """Dense peak TFLOPS (or TOPS) the matmuls of this quantization run at on this GPU."""
    if quantization == "fp8" and gpu.fp8_tflops:
        return gpu.fp8_tflops  # W8A8 on FP8 tensor cores
    if quantization == "int8" and gpu.int8_tops:
        return gpu.int8_tops  # W8A8 int8
    return gpu.bf16_tflops  # bf16/fp16, weight-only fp8 (Marlin) and int4 (AWQ/GPTQ)


def is_weight_only(gpu: GPU, quantization: str) -> bool:
    """True when the weights are stored compressed but the math runs at the bf16 rate."""
    if quantization == "int4":
        return True
    if quantization == "fp8":
        return gpu.fp8_tflops is None
    if quantization == "int8":
        return gpu.int8_tops is None
    return False
