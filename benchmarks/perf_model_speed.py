"""Time orchestrator.perf.estimate_batch on 10,000 candidate configurations (cold caches).

    .venv/bin/python benchmarks/perf_model_speed.py [--n 10000]

Target: < 1 s. Configurations cycle over every GPU type (not the CPU row), GPU counts 1..64 and
four quantizations, for llama-3.1-70b with a TPOT SLO (so the batch search runs).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()

    from orchestrator.catalog.gpus import all_gpus
    from orchestrator.model_registry import lookup_model
    from orchestrator.perf import GPU_COUNTS, clear_caches, estimate_batch

    model = lookup_model("llama-3.1-70b")
    assert model is not None
    gpus = [g for g in all_gpus() if g.vendor != "cpu"]
    base = [(g, n, q) for g in gpus for n in GPU_COUNTS for q in ("bf16", "fp8", "int8", "int4")]
    configs = list(itertools.islice(itertools.cycle(base), args.n))
    clear_caches()
    t0 = time.perf_counter()
    results = estimate_batch(model, configs, 1200, 250, tpot_slo_ms=60)
    elapsed = time.perf_counter() - t0
    fits = sum(r.fits for r in results)
    print(f"estimate_batch: {len(configs):,} configurations ({len(base)} distinct) in {elapsed * 1e3:.0f} ms "
          f"cold ({fits:,} fit); target < 1000 ms")
    t0 = time.perf_counter()
    estimate_batch(model, configs, 1200, 250, tpot_slo_ms=60)
    print(f"warm (min-GPU search cached): {(time.perf_counter() - t0) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
