"""A short check on a real GPU, for the facts orch's tables and performance model assume (no vLLM needed).

Prints JSON: the device and its compute capability (the compatibility table's key), whether bf16 and fp8 matrix
products run, the memory bandwidth and bf16 / fp8 matrix rates reached, and the time of one decode step of a
Llama-3.1-8B-shaped model (every linear layer of 32 layers, weights in bf16, no attention) at several batch sizes.
That step is the weight-streaming floor the roofline model prices TPOT with: compare the output with
`orch estimate --model llama-3.1-8b --gpu H200 --json`. Not run yet: the session that wrote it was lent no GPU
machine (2026-12-04); a session that is can run it in a minute or two.

    python benchmarks/gpu_check.py > gpu_check.json     # on the GPU machine; torch only
"""

from __future__ import annotations

import json
import time

import torch

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 4096, 14336, 32, 32, 8, 128  # Llama-3.1-8B config.json


def timed(fn, reps: int = 20, warm: int = 5) -> float:  # type: ignore[no-untyped-def]
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def bandwidth() -> float:
    a = torch.empty(4 * 2**30 // 2, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    s = timed(lambda: b.copy_(a), reps=20)
    return 2 * a.numel() * 2 / s / 1e12  # TB/s, bytes read + written


def matmul_rate(dtype: str, n: int = 8192) -> float | None:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    if dtype == "bf16":
        s = timed(lambda: a @ b)
    else:
        try:
            a8 = a.to(torch.float8_e4m3fn)
            b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()  # column-major second operand, as cuBLASLt wants
            one = torch.tensor(1.0, device="cuda")
            s = timed(lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
        except Exception as exc:  # noqa: BLE001 - no fp8 tensor cores: record why
            return {"error": f"{type(exc).__name__}: {exc}"[:200]}  # type: ignore[return-value]
    return 2 * n**3 / s / 1e12  # TFLOP/s


def decode_step(batch: int) -> float:
    """Seconds for one token of every sequence in the batch through all linear layers (bf16 weights)."""
    shapes = [(HIDDEN, (HEADS + 2 * KV_HEADS) * HEAD_DIM), (HEADS * HEAD_DIM, HIDDEN), (HIDDEN, 2 * INTER),
              (INTER, HIDDEN)]
    layers = [[torch.randn(i, o, device="cuda", dtype=torch.bfloat16) * 0.01 for i, o in shapes]
              for _ in range(LAYERS)]
    x = torch.randn(batch, HIDDEN, device="cuda", dtype=torch.bfloat16)

    def step() -> None:
        h = x
        for qkv, o, gate_up, down in layers:
            h = (h @ qkv)[:, : HEADS * HEAD_DIM] @ o
            g = h @ gate_up
            h = (g[:, :INTER] * g[:, INTER:]) @ down

    s = timed(step, reps=10, warm=3)
    layers.clear()
    torch.cuda.empty_cache()
    return s


def main() -> None:
    props = torch.cuda.get_device_properties(0)
    out = {
        "device": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "copy_TBps": round(bandwidth(), 2),
        "bf16_matmul_TFLOPs": round(matmul_rate("bf16"), 1),
        "fp8_matmul_TFLOPs": matmul_rate("fp8"),
        "llama31_8b_linear_weights_GB": round(LAYERS * 2 * (HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM
                                                           + HEADS * HEAD_DIM * HIDDEN + 3 * HIDDEN * INTER) / 1e9, 2),
        "decode_step_ms": {},
    }
    if isinstance(out["fp8_matmul_TFLOPs"], float):
        out["fp8_matmul_TFLOPs"] = round(out["fp8_matmul_TFLOPs"], 1)
    for b in (1, 8, 32, 64, 128, 256):
        out["decode_step_ms"][str(b)] = round(decode_step(b) * 1000, 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
