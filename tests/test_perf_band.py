"""The error band (orchestrator/perf/band.py): the spread of the calibration residuals of a prediction's
neighbourhood, wider where that neighbourhood is thin or unmeasured; and `orch place` checking SLOs at its
pessimistic edge by default, showing the band and the roofline terms per deployment (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.perf import band
from orchestrator.perf.measurements import GROUPS, load_measurements, predict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def fake_residuals(monkeypatch: pytest.MonkeyPatch):
    """Install synthetic residuals (engine, family, bucket, measured/predicted) in place of the fitted ones."""

    def install(rows: list[tuple[str, str, str, float]]) -> None:
        monkeypatch.setattr(band, "residuals", lambda: tuple(rows))
        band.band_for.cache_clear()

    yield install
    band.band_for.cache_clear()


def test_residuals_are_the_fit_rows_measured_over_predicted() -> None:
    band.clear()
    fit = [m for m in load_measurements() if not m.holdout and m.metric in GROUPS["throughput"]]
    got = sorted(band.residuals(), key=lambda r: (r[0], r[1], r[2], r[3]))
    want = sorted(((m.engine, m.family, m.bucket, m.value / predict(m)) for m in fit), key=lambda r: (r[0], r[1], r[2], r[3]))
    assert len(got) == len(want) >= 10
    for g, w in zip(got, want):
        assert g[:3] == w[:3] and g[3] == pytest.approx(w[3], rel=1e-9)
    held = [m for m in load_measurements() if m.holdout and m.metric in GROUPS["throughput"]]
    assert held and len(got) == len(fit)  # held-out rows stay out, so the band can be checked on them


def test_band_is_p10_p90_of_its_own_neighbourhood(fake_residuals) -> None:
    ratios = list(np.linspace(0.7, 1.3, 12))
    other = [("vllm", "cdna3", "short", 0.3)] * 5 + [("trtllm", "hopper", "short", 2.0)] * 5
    fake_residuals([("vllm", "hopper", "short", r) for r in ratios] + other)
    b = band.band_for("vllm", "hopper", "short")
    assert b.n == 12 and b.basis == "vllm x hopper x short"
    assert b.lo == pytest.approx(float(np.quantile(ratios, 0.1)))
    assert b.hi == pytest.approx(float(np.quantile(ratios, 0.9)))


def test_band_is_never_narrower_than_the_floor(fake_residuals) -> None:
    fake_residuals([("vllm", "hopper", "short", 1.0 + d) for d in np.linspace(-0.01, 0.01, 12)])
    b = band.band_for("vllm", "hopper", "short")
    assert b.lo == pytest.approx(1 - band.MIN_HALF_WIDTH) and b.hi == pytest.approx(1 + band.MIN_HALF_WIDTH)


def test_a_thin_neighbourhood_gets_a_wider_band_than_a_full_one_with_the_same_range(fake_residuals) -> None:
    fake_residuals([("vllm", "hopper", "short", r) for r in (0.8, 1.0, 1.2)])
    thin = band.band_for("vllm", "hopper", "short")
    fake_residuals([("vllm", "hopper", "short", r) for r in np.linspace(0.8, 1.2, 9)])
    full = band.band_for("vllm", "hopper", "short")
    assert full.n == 9 and (full.lo, full.hi) == pytest.approx((0.8, 1.2))  # 9 rows: their range, unscaled
    assert thin.n == 3 and thin.lo < full.lo and thin.hi > full.hi
    k = band.P10_P90_SIGMAS / band.D2[3]  # 3 normal draws span 1.693 sigma on average; p10..p90 is 2.563
    assert (thin.lo, thin.hi) == pytest.approx((1 - 0.2 * k, 1 + 0.2 * k))


def test_too_few_rows_falls_back_to_a_wider_neighbourhood_and_says_so(fake_residuals) -> None:
    rows = [("vllm", "hopper", "long", 1.05), ("vllm", "hopper", "long", 0.95)]  # 2 < MIN_ROWS
    rows += [("vllm", "hopper", "short", r) for r in (0.6, 0.9, 1.0, 1.1, 1.4, 1.2, 0.8)]
    fake_residuals(rows)
    b = band.band_for("vllm", "hopper", "long")
    assert b.basis == "vllm x hopper" and b.n == 9
    assert b.lo == pytest.approx(0.6) and b.hi == pytest.approx(1.4)
    assert b.lo < 0.95 and b.hi > 1.05  # wider than the two rows of its own bucket


def test_an_unmeasured_gpu_family_gets_twice_the_spread(fake_residuals) -> None:
    fake_residuals([("vllm", "hopper", "short", r) for r in np.linspace(0.8, 1.2, 12)])
    seen = band.band_for("vllm", "hopper", "short")
    unseen = band.band_for("vllm", "blackwell", "short")
    assert "no blackwell measurement" in unseen.basis and unseen.n == 12  # the engine's rows, all on hopper
    assert 1 - unseen.lo == pytest.approx(2 * (1 - seen.lo))
    assert unseen.hi - 1 == pytest.approx(2 * (seen.hi - 1))


def test_no_measurement_at_all_is_a_wide_default(fake_residuals) -> None:
    fake_residuals([])
    b = band.band_for("vllm", "hopper", "short")
    assert b.n == 0 and b.lo == pytest.approx(0.7) and b.hi == pytest.approx(1.3)


def _place(*extra: str) -> dict:
    r = CliRunner().invoke(app, ["place", str(EXAMPLES / "quickstart.yaml"), "--json", "--no-fallbacks", *extra],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_place_json_shows_band_and_explain_and_checks_the_pessimistic_edge_by_default() -> None:
    band.clear()
    pess, cent = _place(), _place("--central-estimate")
    for plan in (pess, cent):
        for dep in plan["deployments"]:
            perf = dep["performance"]
            assert perf["source"] == "model"
            assert perf["band"]["lo"] < 1 < perf["band"]["hi"] and perf["band"]["basis"]
            ex = perf["explain"]
            assert ex["band"]["lo"] == pytest.approx(perf["band"]["lo"], abs=1e-3)
            for step in (ex["decode_batch1"], ex["loaded_step"]):
                assert {"t_memory_ms", "t_compute_ms", "t_comm_ms", "t_overhead_ms", "step_ms"} <= set(step)
            assert ex["loaded_step"]["batch"] == perf["central"]["max_batch"]
    (dp,), (dc,) = pess["deployments"], cent["deployments"]
    assert dp["performance"]["slo_checked_at"] == "pessimistic edge of the band"
    assert dp["performance"]["planned"]["requests_per_s"] < dp["performance"]["central"]["requests_per_s"]
    assert dc["performance"]["planned"] == dc["performance"]["central"]
    # the same configuration is credited with more capacity at the central estimate; the plan's capacity is the
    # planned (pessimistic) figure per replica, and checking at the central estimate never costs more
    perf = dp["performance"]
    assert perf["central"]["requests_per_s"] > perf["planned"]["requests_per_s"]
    for d, key in ((dp, "planned"), (dc, "central")):
        replicas = sum(g["count"] for g in d["replicas"])
        assert d["predicted"]["capacity_rps"] / replicas == pytest.approx(d["performance"][key]["requests_per_s"], rel=0.02)
    assert cent["total"]["usd_per_hour"] <= pess["total"]["usd_per_hour"] + 1e-9
