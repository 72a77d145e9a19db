"""The shipped calibration against the public measurements it was fitted to (and held out from)."""

from __future__ import annotations

import statistics

from orchestrator.catalog.gpus import get_gpu
from orchestrator.model_registry import lookup_model
from orchestrator.perf.calibration import engines, load_calibration
from orchestrator.perf.measurements import GROUPS, METRICS, load_measurements, predict


def test_measurements_are_sourced_and_diverse():
    rows = load_measurements()
    assert len(rows) >= 10
    assert len({get_gpu(m.gpu).name for m in rows}) >= 4
    assert any(m.holdout for m in rows) and any(not m.holdout for m in rows)
    for m in rows:
        assert lookup_model(m.model) is not None, m
        assert m.metric in METRICS
        assert m.source.startswith("https://") and m.date
        assert m.engine in engines()
        assert m.value > 0


def _errors(metrics: tuple[str, ...], holdout: bool | None = None) -> list[float]:
    return [
        abs(predict(m) - m.value) / m.value
        for m in load_measurements()
        if m.metric in metrics and (holdout is None or m.holdout == holdout)
    ]


def test_median_error_within_25_percent():
    tput = _errors(GROUPS["throughput"])
    tpot = _errors(("tpot_ms_batch1",))
    assert statistics.median(tput) <= 0.25
    assert statistics.median(tpot) <= 0.25


def test_holdout_throughput_error_within_35_percent():
    held = _errors(GROUPS["throughput"], holdout=True)
    assert held and statistics.median(held) <= 0.35


def test_factors_are_physical():
    for engine in engines():
        cal = load_calibration(engine)
        for fam, f in {**cal.families, "default": cal.default}.items():
            assert 0.1 <= f.eff_bw <= 1.0, (engine, fam)
            assert 0.1 <= f.eff_flops <= 1.0, (engine, fam)
            assert 0 <= f.step_overhead_ms <= 50, (engine, fam)


def test_holdout_includes_tpot_and_it_is_within_25_percent():
    held = _errors(("tpot_ms_batch1",), holdout=True)
    assert len(held) >= 2 and statistics.median(held) <= 0.25
