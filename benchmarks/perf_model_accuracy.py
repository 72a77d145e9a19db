"""Performance-model error against public measurements (orchestrator/data/measurements.csv).

    .venv/bin/python benchmarks/perf_model_accuracy.py          # table + median/worst error
    .venv/bin/python benchmarks/perf_model_accuracy.py --fit    # refit efficiency factors (non-holdout rows),
                                                                # print them as calibration.yaml lines, and
                                                                # the error with the refitted factors

Error = (predicted - measured) / measured. Throughput = max_output_tokens_per_s and
output_tokens_per_s rows; TPOT = tpot_ms_batch1 rows; TTFT = ttft_ms rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from orchestrator.perf.calibration import Calibration, load_calibration  # noqa: E402
from orchestrator.perf.measurements import (  # noqa: E402
    GROUPS,
    Measurement,
    fit_family,
    load_measurements,
    predict,
    with_factors,
)


def report(rows: list[Measurement], cals: dict[str, Calibration], console: Console) -> dict[str, dict[str, float]]:
    table = Table(title="Performance model vs public measurements")
    for col in ("#", "setup", "metric", "measured", "predicted", "error %", "set"):
        table.add_column(col, justify="right" if col in ("#", "measured", "predicted", "error %") else "left")
    errors: dict[tuple[str, bool], list[float]] = defaultdict(list)
    for i, m in enumerate(rows, 1):
        p = predict(m, cals[m.engine])
        err = (p - m.value) / m.value * 100
        errors[(m.group, m.holdout)].append(abs(err))
        table.add_row(str(i), m.label(), m.metric, f"{m.value:,.1f}", f"{p:,.1f}", f"{err:+.0f}",
                      "holdout" if m.holdout else "fit")
    console.print(table)
    summary: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        for label, sel in (("fit", [False]), ("holdout", [True]), ("all", [False, True])):
            errs = [e for h in sel for e in errors[(group, h)]]
            if errs:
                summary[f"{group}/{label}"] = {"n": len(errs), "median": statistics.median(errs), "worst": max(errs)}
    for key, s in summary.items():
        console.print(f"{key:<22} n={s['n']:>2}  median |error| {s['median']:5.1f}%   worst {s['worst']:5.1f}%")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit factors on non-holdout rows and print them")
    args = parser.parse_args()
    console = Console()
    rows = load_measurements()
    cals = {e: load_calibration(e) for e in {m.engine for m in rows}}
    if args.fit:
        by_group: dict[tuple[str, str], list[Measurement]] = defaultdict(list)
        for m in rows:
            if not m.holdout:
                by_group[(m.engine, m.family)].append(m)
        console.print("# fitted factors (paste into orchestrator/data/calibration.yaml):")
        for (engine, family), group in sorted(by_group.items()):
            factors, rms = fit_family(group, cals[engine], family)
            cals[engine] = with_factors(cals[engine], family, factors)
            used = ", ".join(f"#{rows.index(m) + 1}" for m in group)
            console.print(
                f"{engine}.{family}: {{eff_bw: {factors.eff_bw:.3f}, eff_flops: {factors.eff_flops:.3f}, "
                f"step_overhead_ms: {factors.step_overhead_ms:.2f}}}  # rms log error {rms:.3f}; rows {used}",
                markup=False,
            )
    report(rows, cals, console)


if __name__ == "__main__":
    main()
