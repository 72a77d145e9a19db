"""Performance-model error against public measurements (orchestrator/data/measurements.csv).

    .venv/bin/python benchmarks/perf_model_accuracy.py          # table, held-out summary, per-group errors
    .venv/bin/python benchmarks/perf_model_accuracy.py --fit    # refit the hardware and engine layers jointly on the
                                                                # non-holdout rows, print them as calibration.yaml
                                                                # values and report with the refitted values

Error = (predicted - measured) / measured. Throughput = max_output_tokens_per_s and output_tokens_per_s rows;
TPOT = tpot_ms_batch1 rows; TTFT = ttft_ms rows. Groups: engine x GPU family x sequence-length bucket
(short: I + O <= 512, medium: <= 4,096, long). The band column: does the measured value fall inside the
prediction's error band (orchestrator/perf/band.py; residuals of the fit rows only)?
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

from orchestrator.perf.calibration import Calibration, from_raw, load_calibration, raw_calibration  # noqa: E402
from orchestrator.perf.measurements import GROUPS, Measurement, fit_joint, load_measurements, predict  # noqa: E402


def _p90(xs: list[float]) -> float:
    import numpy as np

    return float(np.quantile(xs, 0.9))


def report(rows: list[Measurement], cals: dict[str, Calibration], console: Console, band: bool = True) -> dict[str, dict[str, float]]:
    from orchestrator.perf.band import band_for

    table = Table(title="Performance model vs public measurements")
    for col in ("#", "setup", "metric", "measured", "predicted", "error %", "band", "set"):
        table.add_column(col, justify="right" if col in ("#", "measured", "predicted", "error %") else "left")
    errors: dict[tuple[str, bool], list[float]] = defaultdict(list)
    signed: dict[tuple[str, str, str], list[tuple[float, bool]]] = defaultdict(list)
    covered: list[bool] = []
    for i, m in enumerate(rows, 1):
        p = predict(m, cals[m.engine])
        err = (p - m.value) / m.value * 100
        errors[(m.group, m.holdout)].append(abs(err))
        inside = ""
        if m.group == "throughput":
            signed[(m.engine, m.family, m.bucket)].append((err, m.holdout))
            if band:
                b = band_for(m.engine, m.family, m.bucket)
                ok = p * b.lo <= m.value <= p * b.hi
                inside = "in" if ok else "OUT"
                if m.holdout:
                    covered.append(ok)
        table.add_row(str(i), m.label(), m.metric, f"{m.value:,.1f}", f"{p:,.1f}", f"{err:+.0f}", inside,
                      "holdout" if m.holdout else "fit")
    console.print(table)
    summary: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        for label, sel in (("fit", [False]), ("holdout", [True]), ("all", [False, True])):
            errs = [e for h in sel for e in errors[(group, h)]]
            if errs:
                summary[f"{group}/{label}"] = {"n": len(errs), "median": statistics.median(errs), "p90": _p90(errs),
                                               "worst": max(errs)}
    for key, s in summary.items():
        console.print(f"{key:<22} n={s['n']:>2}  median |error| {s['median']:5.1f}%   p90 {s['p90']:5.1f}%   "
                      f"worst {s['worst']:5.1f}%")
    g = Table(title="Throughput by engine x GPU family x sequence length (all rows; signed error)")
    for col in ("engine", "family", "bucket", "n", "held out", "median signed %", "median |error| %"):
        g.add_column(col, justify="right" if col not in ("engine", "family", "bucket") else "left")
    worst_group = 0.0
    for (engine, family, bucket), errs in sorted(signed.items()):
        vals = [e for e, _ in errs]
        med = statistics.median(vals)
        worst_group = max(worst_group, abs(med))
        g.add_row(engine, family, bucket, str(len(vals)), str(sum(h for _, h in errs)), f"{med:+.0f}",
                  f"{statistics.median(abs(v) for v in vals):.0f}")
    console.print(g)
    console.print(f"largest group median signed error: {worst_group:.0f}%")
    if covered:
        console.print(f"held-out throughput rows inside their band: {sum(covered)}/{len(covered)}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit the hardware and engine layers on non-holdout rows")
    args = parser.parse_args()
    console = Console()
    rows = load_measurements()
    engines = sorted({m.engine for m in rows})
    cals = {e: load_calibration(e) for e in engines}
    if args.fit:
        raw, loss = fit_joint([m for m in rows if not m.holdout], raw_calibration())
        console.print(f"# fitted (weighted rms log error {loss:.3f}); paste into orchestrator/data/calibration.yaml:")
        for fam, row in sorted(raw["hardware"]["families"].items()):
            console.print(f"hardware.{fam}: {{eff_bw: {row['eff_bw']:.3f}, eff_flops: {row['eff_flops']:.3f}}}", markup=False)
        for engine in engines:
            e = raw["engines"][engine]
            console.print(f"engines.{engine}: kernel_efficiency {e.get('kernel_efficiency', 1.0):.3f}, step_overhead_ms "
                          f"{e['step_overhead_ms']:.2f}, per_seq_us {e['per_seq_us']:.1f}", markup=False)
        cals = {e: from_raw(raw, e) for e in engines}
    report(rows, cals, console, band=not args.fit)


if __name__ == "__main__":
    main()
