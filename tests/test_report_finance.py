"""Finance figures (headline, budget, forecast, showback, anomalies) against hand arithmetic, and `orch report --file`.

The recorded fortnight (period November, data through 11-14, as of 11-15 00:00):
- chat-0 (team support): $1.00/h effective, $1.25/h list, all 14 days -> $24/day, $336 ($420 list);
- chat-burst (support): $1.00/h on 11-10 only -> $24, the spike;
- rag-0 (team search): $0.50/h, 14 days -> $12/day, $168;
- gw-0 (support, role gateway in front of chat): $0.25/h, 14 days -> $6/day, $84.
Daily spend: $42, except 11-10: $66. Total $612. Tokens: chat 4M/day (3M in, 1M out), rag 1M/day (0.75M in).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.metering.store import open_engine, record_samples
from orchestrator.reports.aggregate import build_report
from orchestrator.reports.finance import compute_finance
from orchestrator.reports.html_finance import headline_html

from test_report_aggregate import NOV, add_replica, s, ts

AS_OF = ts("2026-11-15T00:00:00")


def fin_cap(r) -> float | None:  # type: ignore[no-untyped-def]
    if r.details.get("role") == "gateway":
        return 0.0
    return 100.0 if r.deployment == "chat" else None


def make_fin_db(path: Path) -> Path:
    """The recorded fortnight of the module docstring, in a new state database at ``path``."""
    e = open_engine(path)
    run = dict(created_at="2026-11-01T00:00:00", terminated_at="2026-11-15T00:00:00")
    add_replica(e, "chat-0", deployment="chat", usd_per_hour=1.0, list_usd_per_hour=1.25, **run)
    add_replica(e, "chat-burst", deployment="chat", usd_per_hour=1.0, list_usd_per_hour=1.0,
                created_at="2026-11-10T00:00:00", terminated_at="2026-11-11T00:00:00")
    add_replica(e, "rag-0", deployment="rag", team="search", usd_per_hour=0.5, list_usd_per_hour=0.5, **run)
    add_replica(e, "gw-0", deployment="chat", usd_per_hour=0.25, list_usd_per_hour=0.25, details={"role": "gateway"},
                instance_type="c7i.large", gpu="none", gpu_count=0, **run)
    samples = [s("chat-0", "2026-11-01T00:00:00"), s("rag-0", "2026-11-01T00:00:00")]
    for d in range(1, 15):
        when = f"2026-11-{d:02d}T12:00:00"
        samples.append(s("chat-0", when, gen=1e6 * d, prompt=3e6 * d))
        samples.append(s("rag-0", when, gen=0.25e6 * d, prompt=0.75e6 * d))
    record_samples(e, samples)
    return path


@pytest.fixture()
def fin(tmp_path: Path) -> Path:
    return make_fin_db(tmp_path / "fin.db")


def report(db: Path, by: str = "deployment"):  # type: ignore[no-untyped-def]
    return build_report(open_engine(db), *NOV, by=by, now=AS_OF, capacity=fin_cap)


def test_headline(fin: Path) -> None:
    h = compute_finance(report(fin)).headline
    assert h.total_usd == pytest.approx(612.0)
    assert h.list_usd == pytest.approx(420 + 24 + 168 + 84) and h.discount_saved_usd == pytest.approx(84.0)
    assert (h.input_tokens, h.output_tokens) == (52.5e6, 17.5e6)
    assert h.usd_per_m_input == pytest.approx(612 * 0.75 / 52.5)  # no phase times: split by tokens
    assert h.usd_per_m_output == pytest.approx(612 * 0.25 / 17.5)
    assert h.input_split == "token counts"  # and the report says so beside the two figures
    assert "split by token counts (no prefill/decode time metered)" in headline_html(compute_finance(report(fin)))
    assert h.tokens_per_usd == pytest.approx(70e6 / 612)
    idle = 360 * (1 - 14e6 / (100 * 15 * 86400))  # chat: 14M output of 129.6M capacity; rag has no capacity figure
    assert h.idle_usd == pytest.approx(idle) and h.idle_share == pytest.approx(idle / 612)


def test_budget_and_forecast(fin: Path) -> None:
    f = compute_finance(report(fin), monthly_budget_usd=1200.0)
    fc = f.forecast
    assert fc is not None and fc.basis_days == [f"2026-11-{d:02d}" for d in range(8, 15)]
    assert fc.run_rate_usd_per_day == pytest.approx((6 * 42 + 66) / 7)
    assert fc.remaining_days == pytest.approx(16)
    assert fc.forecast_usd == pytest.approx(612 + 16 * 318 / 7)  # $1,338.86
    assert "last 7 complete day(s)" in fc.method and "$45.43/day" in fc.method
    b = f.budget
    assert b is not None and b.period_usd == 1200.0 and b.actual_usd == pytest.approx(612)
    assert b.used_share == pytest.approx(0.51) and b.variance_usd == pytest.approx(1200 - 1338.857, abs=1e-3)
    assert "$138.86 over the budget of $1,200.00" in b.status
    # the same data reported after the month: nothing left to forecast, actual against budget
    done = build_report(open_engine(fin), *NOV, now=ts("2026-12-04T00:00:00"), capacity=fin_cap)
    f2 = compute_finance(done, 1200.0)
    assert f2.forecast is None and f2.budget is not None and f2.budget.variance_usd == pytest.approx(588)


def test_budget_pro_rata_outside_a_calendar_month(fin: Path) -> None:
    rep = build_report(open_engine(fin), ts("2026-11-01T00:00:00"), ts("2026-11-08T00:00:00"), now=AS_OF, capacity=fin_cap)
    b = compute_finance(rep, 1200.0).budget
    assert b is not None and b.period_usd == pytest.approx(1200 * 7 * 12 / 365.25) and "pro rata" in b.rule
    assert b.actual_usd == pytest.approx(7 * 42)


def test_anomaly_flags_the_spike(fin: Path) -> None:
    f = compute_finance(report(fin))
    assert len(f.anomalies) == 1
    a = f.anomalies[0]
    assert a.day == "2026-11-10" and a.spend_usd == pytest.approx(66) and a.trailing_mean_usd == pytest.approx(42)
    assert a.excess_usd == pytest.approx(24) and a.driver == "chat" and a.driver_excess_usd == pytest.approx(24)
    assert "1.5 ×" in f.anomaly_rule


def test_showback_allocation_adds_up(fin: Path) -> None:
    f = compute_finance(report(fin))
    rows = {r.team: r for r in f.showback}
    idle = 360 * (1 - 14e6 / 129.6e6)
    assert f.shared_usd == pytest.approx({"gateways": 84.0, "idle capacity": idle})
    sup, sea = rows["support"], rows["search"]
    assert sup.direct_usd == pytest.approx(360) and sup.used_usd == pytest.approx(360 - idle)
    assert sea.direct_usd == pytest.approx(168) and sea.idle_usd == 0
    assert (sup.share, sea.share) == (pytest.approx(0.8), pytest.approx(0.2))  # 56M vs 14M tokens
    assert sup.allocated_usd == pytest.approx(360 - idle + 0.8 * (84 + idle))
    assert sea.allocated_usd == pytest.approx(168 + 0.2 * (84 + idle))
    assert sum(r.allocated_usd for r in f.showback) == pytest.approx(612.0)
    assert "in proportion to each team's tokens" in f.showback_rule


def test_no_tokens_allocates_by_used_cost(fin: Path) -> None:
    rep = build_report(open_engine(fin), *NOV, now=AS_OF, capacity=lambda r: None)  # no idle figure either
    for ln in rep.lines:
        ln.usage = None
    f = compute_finance(rep)
    rows = {r.team: r for r in f.showback}
    assert rows["support"].share == pytest.approx(360 / 528) and rows["search"].share == pytest.approx(168 / 528)
    assert sum(r.allocated_usd for r in f.showback) == pytest.approx(612.0)


def test_cli_reads_the_budget_from_the_file(fin: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    spec = Path(__file__).resolve().parent.parent / "examples" / "multi-region.yaml"
    run = CliRunner().invoke
    args = ["report", "--period", "2026-11", "--state", str(fin), "--no-sample", "--format", "json"]
    res = run(app, [*args, "--file", str(spec)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    from orchestrator.spec.loader import load_spec

    monthly = load_spec(spec).spec.budget.monthly_usd
    assert doc["budget"]["monthly_usd"] == monthly and doc["headline"]["total_usd"] == pytest.approx(612)
    assert doc["showback"]["rule"] and doc["anomalies"]["days"][0]["day"] == "2026-11-10"
    res = run(app, [*args, "--file", str(spec), "--budget", "500"])
    assert json.loads(res.stdout)["budget"]["monthly_usd"] == 500.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nproject: acme\ndeployments: []\nbudget:\n  monthly_usd: -3\n")
    res = run(app, [*args, "--file", str(bad)])
    assert res.exit_code != 0 and "bad.yaml:5" in res.output and "monthly_usd" in res.output
    assert "Traceback" not in res.output


def test_recommendations_section(fin: Path) -> None:
    """The hook for `orch recommend`: its Recommendation objects, plain dicts, or pre-formatted rows; none: no section."""
    from orchestrator.recommend import Config, Recommendation
    from orchestrator.reports.html import render_html

    rep = report(fin)
    f = compute_finance(rep)
    assert "Recommendations" not in render_html(rep, f)
    group = dict(provider="aws", region="aws:us-east-1", instance_type="g6.xlarge", gpu="L4", gpus_per_replica=1,
                 count=2, market="on_demand", quantization="bf16", usd_per_hour=2.0)
    cur = Config([group], 2, 2, 2.0, 0.0, 0.0, 2.0)
    new = Config([group | {"count": 1, "usd_per_hour": 1.0}], 1, 1, 1.0, 0.0, 0.0, 1.0)
    margin = {"ttft_p95_ms": 410.0, "ttft_slo_ms": 800.0, "tpot_p95_ms": 31.0, "tpot_slo_ms": 50.0,
              "capacity_over_peak": 0.35}
    rec = Recommendation("chat", cur, new, 1460.0, 730.0, 730.0, margin, "re-place: saves 50%")
    page = render_html(rep, f, [rec, {"deployment": "rag", "monthly_saving_usd": None, "note": "no metered data"}])
    section = page[page.index('id="recommendations"'):page.index("Detail by")]
    assert "2 x g6.xlarge (1xL4 bf16) aws:us-east-1 on_demand" in section and "1 x g6.xlarge" in section
    assert "$730.00" in section and "TTFT p95 410/800 ms" in section and "capacity +35% over peak" in section
    assert "no metered data" in section
    assert "<td>a</td>" in render_html(rep, f, [["a", "b", "c"]])


def test_json_keeps_the_report_notes(fin: Path) -> None:
    from orchestrator.reports.table import to_json

    rep = report(fin)
    rep.notes.append("a note of the report")
    doc = json.loads(to_json(rep))
    assert "a note of the report" in doc["notes"] and doc["headline"]["total_usd"] == pytest.approx(612)
