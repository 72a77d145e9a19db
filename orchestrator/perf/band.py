"""The error band of a prediction: the spread of the calibration residuals in its neighbourhood.

Residual = measured / predicted output throughput over the fit rows of orchestrator/data/measurements.csv
(holdout rows stay out, so benchmarks/perf_model_accuracy.py can check the band on them). Neighbourhood: the
first of (engine, GPU family, sequence-length bucket), (engine, family), (family, bucket), (family), (engine),
(everything) that holds at least MIN_ROWS residuals. The band is their range (p10..p90 from 10 rows up),
never narrower than MIN_HALF_WIDTH either side. A thin neighbourhood is widened: the range of n < 7 normal draws
is on average d2(n) standard deviations (Tippett's table), less than the 2.563 of p10..p90, so the band's
distances from 1 are scaled by 2.563 / d2(n) (x1.51 at 3 rows, x1.10 at 5). A GPU family no measurement covers
gets twice the spread: residuals of rows the factors were fitted on understate the error on new setups. The pessimistic edge of a throughput is central x lo; of a latency, central / lo.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

MIN_ROWS = 3
MIN_HALF_WIDTH = 0.10
P10_P90_SIGMAS = 2.563  # width of a normal distribution's p10..p90, in standard deviations
D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534}  # mean range of n standard normal draws (Tippett, 1925)


@dataclass(frozen=True)
class Band:
    lo: float  # measured / predicted throughput at the pessimistic edge
    hi: float  # ... at the optimistic edge
    n: int  # residuals it rests on
    basis: str  # the neighbourhood, e.g. "vllm x hopper x short"

    def to_json(self) -> dict[str, Any]:
        return {"lo": round(self.lo, 3), "hi": round(self.hi, 3), "n": self.n, "basis": self.basis}

    def describe(self) -> str:
        return f"{(self.lo - 1) * 100:+.0f}%..{(self.hi - 1) * 100:+.0f}% ({self.basis}, n={self.n})"


@cache
def residuals() -> tuple[tuple[str, str, str, float], ...]:
    """(engine, family, bucket, measured / predicted) of every fit row's throughput."""
    from orchestrator.perf.measurements import GROUPS, load_measurements, predict

    out = []
    for m in load_measurements():
        if m.holdout or m.metric not in GROUPS["throughput"]:
            continue
        try:
            out.append((m.engine, m.family, m.bucket, m.value / predict(m)))
        except (ValueError, ZeroDivisionError):  # a row the model cannot place: no residual
            continue
    return tuple(out)


def _spread(ratios: list[float]) -> tuple[float, float]:
    import numpy as np

    r = np.asarray(ratios, dtype=float)
    lo, hi = (float(r.min()), float(r.max())) if len(r) < 10 else (float(np.quantile(r, 0.1)), float(np.quantile(r, 0.9)))
    lo, hi = min(lo, 1.0 - MIN_HALF_WIDTH), max(hi, 1.0 + MIN_HALF_WIDTH)
    k = max(1.0, P10_P90_SIGMAS / D2[len(r)]) if len(r) in D2 else 1.0  # a thin neighbourhood's range understates p10..p90
    return max(0.05, 1.0 - k * (1.0 - lo)), 1.0 + k * (hi - 1.0)


@cache
def band_for(engine: str, family: str, bucket: str) -> Band:
    res = residuals()
    levels = [
        (f"{engine} x {family} x {bucket}", lambda e, f, b: e == engine and f == family and b == bucket),
        (f"{engine} x {family}", lambda e, f, b: e == engine and f == family),
        (f"{family} x {bucket} (all engines)", lambda e, f, b: f == family and b == bucket),
        (f"{family} (all engines)", lambda e, f, b: f == family),
        (f"{engine} (all GPU families)", lambda e, f, b: e == engine),
        ("all measurements", lambda e, f, b: True),
    ]
    unseen = not any(f == family for _, f, _, _ in res)
    for basis, match in levels:
        ratios = [r for e, f, b, r in res if match(e, f, b)]
        if len(ratios) >= MIN_ROWS:
            lo, hi = _spread(ratios)
            if unseen:  # no measurement of this GPU family at all: twice the spread the measured ones show
                lo, hi, basis = max(0.05, 1.0 - 2.0 * (1.0 - lo)), 1.0 + 2.0 * (hi - 1.0), f"no {family} measurement; {basis} x2"
            return Band(lo, hi, len(ratios), basis)
    return Band(1.0 - 3 * MIN_HALF_WIDTH, 1.0 + 3 * MIN_HALF_WIDTH, 0, "no measurements: a wide default")


def clear() -> None:
    residuals.cache_clear()
    band_for.cache_clear()
