"""orch report figures against hand arithmetic; FOCUS CSV/Parquet; CLI formats; empty periods."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from orchestrator.metering.scrape import COUNTERS, GAUGES, Sample
from orchestrator.metering.store import CostItem, add_cost_item, open_engine, record_samples
from orchestrator.reports import focus
from orchestrator.reports.aggregate import build_report


def ts(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp()


NOV = (ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"))
NOW = ts("2026-11-20T00:00:00")


def add_replica(engine, rid: str, **kw) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.state.models import Replica

    values = dict(
        id=rid, project="acme", team="support", model="llama-3.1-8b", provider="aws", region="aws:us-east-1",
        instance_type="g6.xlarge", gpu="L4", gpu_count=1, market="on_demand", plan_id="p1", group_key="g",
        endpoint=None, status="terminated", details={},
    )
    values.update(kw)
    for k in ("created_at", "terminated_at"):
        if isinstance(values.get(k), str):
            values[k] = datetime.fromtimestamp(ts(values[k]), timezone.utc)
    with engine.begin() as c:
        c.execute(insert(Replica.__table__).values(**values))


def s(rid: str, when: str, *, gen: float = 0, prompt: float = 0, prefill: float = 0, decode: float = 0, ok: bool = True) -> Sample:
    if not ok:
        return Sample(rid, ts(when), ok=False, error="ReadTimeout")
    counters = dict.fromkeys(COUNTERS, 0.0) | {
        "generation_tokens": gen, "prompt_tokens": prompt, "prefill_time_sum": prefill, "decode_time_sum": decode,
        "requests": gen / 250,
    }
    return Sample(rid, ts(when), ok=True, counters=counters, gauges=dict.fromkeys(GAUGES, 0.0))


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    e = open_engine(path)
    # chat: spot, $0.50/h effective ($0.80 list), 10 h on Nov 2 -> $5.00
    add_replica(e, "chat-0", deployment="chat", market="spot", usd_per_hour=0.5, list_usd_per_hour=0.8,
                created_at="2026-11-02T00:00:00", terminated_at="2026-11-02T10:00:00")
    record_samples(e, [
        s("chat-0", "2026-11-02T00:00:00"),
        s("chat-0", "2026-11-02T05:00:00", gen=500_000, prompt=2_000_000, prefill=100, decode=300),
        s("chat-0", "2026-11-02T10:00:00", gen=1_000_000, prompt=4_000_000, prefill=200, decode=600),
    ])
    # rag: on-demand $2/h on GCP, 2 h on Nov 3 -> $4.00; an old vLLM without prefill/decode times; a gap
    add_replica(e, "rag-0", deployment="rag", team="search", provider="gcp", region="gcp:europe-west4",
                usd_per_hour=2.0, list_usd_per_hour=2.0, instance_type="g2-standard-8",
                created_at="2026-11-03T00:00:00", terminated_at="2026-11-03T02:00:00")
    record_samples(e, [
        s("rag-0", "2026-11-03T00:00:00"),
        s("rag-0", "2026-11-03T01:00:00", ok=False),
        s("rag-0", "2026-11-03T02:00:00", gen=1_000_000, prompt=3_000_000),
    ])
    add_cost_item(e, CostItem(ts=ts("2026-11-03T01:00:00"), replica_id="rag-0", deployment=None, kind="egress", quantity=11.1,
                              unit="GB", usd=1.0, description=None))
    from orchestrator.state.models import PlanRecord

    with e.begin() as c:
        c.execute(insert(PlanRecord.__table__).values(
            id="p1", project="acme", created_at=datetime.fromtimestamp(NOW, timezone.utc), spec_sha256="x",
            plan={"deployments": [{"name": "chat", "predicted": {"usd_per_million_tokens": 0.8},
                                   "replicas": [{"count": 1}], "egress_usd_per_month": 73.0}]},
        ))
    return path


def cap(r) -> float | None:  # type: ignore[no-untyped-def]
    return 100.0 if r.deployment == "chat" else None  # output tokens/s per replica at the SLO


def test_figures_match_hand_arithmetic(db: Path) -> None:
    rep = build_report(open_engine(db), *NOV, by="deployment", now=NOW, capacity=cap)
    rows = {r.key: r for r in rep.rows}
    chat, rag = rows["chat"], rows["rag"]
    assert chat.cost_usd == pytest.approx(5.0) and chat.list_usd == pytest.approx(8.0)
    assert chat.input_tokens == 4e6 and chat.output_tokens == 1e6
    assert chat.usd_per_m_tokens == pytest.approx(5.0 / 5e6 * 1e6)  # 1.00
    assert chat.input_cost_share == pytest.approx(200 / 800)  # measured prefill vs decode time
    assert chat.input_split == "GPU time"
    assert chat.usd_per_m_input == pytest.approx(5.0 * 0.25 / 4)  # 0.3125
    assert chat.usd_per_m_output == pytest.approx(5.0 * 0.75 / 1)  # 3.75
    assert chat.tokens_per_usd == pytest.approx(1e6)
    assert chat.utilization == pytest.approx(1e6 / (100 * 36000))
    assert chat.idle_usd == pytest.approx(5.0 * (1 - 1e6 / 3.6e6))
    assert chat.planned_usd_per_m == pytest.approx(0.8)
    assert chat.gpu_hours == pytest.approx(10) and chat.metered_fraction == pytest.approx(1.0)
    # rag: compute $4 + egress $1; no phase times, so split by token counts (3:1)
    assert rag.cost_usd == pytest.approx(5.0) and rag.extra_usd == pytest.approx(1.0)
    assert rag.input_cost_share == pytest.approx(0.75) and rag.input_split == "token counts"
    assert rag.usd_per_m_input == pytest.approx(5.0 * 0.75 / 3) and rag.usd_per_m_output == pytest.approx(1.25)
    assert rag.utilization is None and rag.idle_usd is None and rag.gaps == 1
    assert rep.total.cost_usd == pytest.approx(10.0) and rep.total.usd_per_m_tokens == pytest.approx(10 / 9)


@pytest.mark.parametrize(("by", "keys"), [
    ("provider", {"aws", "gcp"}), ("team", {"support", "search"}), ("region", {"aws:us-east-1", "gcp:europe-west4"}),
    ("model", {"llama-3.1-8b"}),
])
def test_grouping(db: Path, by: str, keys: set[str]) -> None:
    rep = build_report(open_engine(db), *NOV, by=by, now=NOW, capacity=cap)
    assert {r.key for r in rep.rows} == keys
    assert sum(r.cost_usd for r in rep.rows) == pytest.approx(10.0)


def test_empty_period(db: Path) -> None:
    rep = build_report(open_engine(db), ts("2026-10-01T00:00:00"), ts("2026-11-01T00:00:00"), now=NOW, capacity=cap)
    assert rep.empty and "no usage or cost recorded" in rep.notes[0]
    assert focus.to_csv(rep).strip() == ",".join(focus.COLUMNS)


def test_focus_csv(db: Path) -> None:
    rep = build_report(open_engine(db), *NOV, now=NOW, capacity=cap)
    rows = list(csv.DictReader(io.StringIO(focus.to_csv(rep))))
    assert set(focus.MANDATORY) <= set(rows[0])
    assert all(c.startswith("x_") for c in rows[0] if c not in focus.MANDATORY + focus.RECOMMENDED + focus.CONDITIONAL)
    assert {(r["ChargeFrequency"], r["InvoiceId"]) for r in rows} == {("Usage-Based", "")}
    usage = [r for r in rows if r["ServiceCategory"] == "AI and Machine Learning"]
    assert [(r["ResourceId"], r["ChargePeriodStart"]) for r in usage] == [
        ("chat-0", "2026-11-02T00:00:00Z"), ("rag-0", "2026-11-03T00:00:00Z")]
    chat = usage[0]
    assert chat["PricingCategory"] == "Dynamic" and chat["ChargeCategory"] == "Usage"
    assert float(chat["EffectiveCost"]) == pytest.approx(5.0) and float(chat["ListCost"]) == pytest.approx(8.0)
    assert float(chat["x_OutputTokens"]) == 1e6 and float(chat["x_CostPerMillionTokens"]) == pytest.approx(1.0)
    assert chat["ServiceSubcategory"] == "Generative AI"
    # CSV: money to cents, counts as integers
    assert (chat["EffectiveCost"], chat["ListCost"], chat["x_OutputTokens"], chat["x_InputTokens"]) == (
        "5.00", "8.00", "1000000", "4000000")
    assert all(re.fullmatch(r"-?\d+\.\d\d", r[c]) for r in rows for c in ("BilledCost", "ListCost", "EffectiveCost"))
    assert chat["BillingPeriodStart"] == "2026-11-01T00:00:00Z" and chat["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
    assert json.loads(chat["Tags"])["orch-deployment"] == "chat" and chat["x_Team"] == "support"
    egress = [r for r in rows if r["ServiceCategory"] == "Networking"]
    assert len(egress) == 1 and float(egress[0]["BilledCost"]) == pytest.approx(1.0)
    assert sum(float(r["BilledCost"]) for r in rows) == pytest.approx(10.0)
    for r in rows:
        for col in ("BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd"):
            assert r[col].endswith("Z")


def test_focus_parquet_roundtrip(db: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rep = build_report(open_engine(db), *NOV, now=NOW, capacity=cap)
    out = tmp_path / "r.parquet"
    focus.write_parquet(rep, str(out))
    t = pq.read_table(out)
    assert t.column_names == focus.COLUMNS
    assert sum(t.column("BilledCost").to_pylist()) == pytest.approx(10.0)
    assert t.schema.field("ChargePeriodStart").type.tz == "UTC"  # Parquet stores it as ms


def test_cli_formats(db: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    run = CliRunner().invoke
    res = run(app, ["report", "--period", "2026-11", "--state", str(db), "--no-sample", "--format", "json", "--by", "provider"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["key"] for r in doc["rows"]} == {"aws", "gcp"} and doc["total"]["cost_usd"] == pytest.approx(10.0)
    res = run(app, ["report", "--since", "2026-11-02", "--until", "2026-11-02", "--state", str(db), "--no-sample",
                    "--format", "csv"])
    assert res.exit_code == 0 and "chat" in res.stdout and "rag" not in res.stdout
    res = run(app, ["report", "--period", "2026-11", "--state", str(db), "--no-sample", "--by", "deployment"])
    assert res.exit_code == 0 and "$/1M tok" in res.stdout and "chat" in res.stdout
    res = run(app, ["report", "--period", "2026-10", "--state", str(db), "--no-sample"])
    assert res.exit_code == 0 and "No data" in res.stdout
    res = run(app, ["report", "--format", "xml", "--state", str(db), "--no-sample"])
    assert res.exit_code == 1 and "unknown --format" in res.output
    res = run(app, ["report", "--by", "teem", "--state", str(db), "--no-sample"])
    assert res.exit_code == 1 and "team" in res.output
    out = tmp_path / "r.csv"
    res = run(app, ["report", "--period", "2026-11", "--state", str(db), "--no-sample", "--format", "focus", "--out", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("BilledCost,")


def test_planned_egress_is_an_estimate_apart_from_cost(db: Path) -> None:
    """$73/month of planned egress = $0.10 per replica-hour; chat ran 10 h: $1.00 estimated, not billed."""
    rep = build_report(open_engine(db), *NOV, by="deployment", now=NOW, capacity=cap)
    rows = {r.key: r for r in rep.rows}
    assert rows["chat"].est_egress_usd == pytest.approx(1.0) and rows["rag"].est_egress_usd == 0.0
    assert rows["chat"].cost_usd == pytest.approx(5.0)  # unchanged
    assert any("est. egress $1.00" in n and "not billed" in n for n in rep.notes)
    usage = [r for r in csv.DictReader(io.StringIO(focus.to_csv(rep))) if r["ResourceId"] == "chat-0"]
    assert float(usage[0]["x_EstimatedEgressCost"]) == pytest.approx(1.0)
    assert float(usage[0]["BilledCost"]) == pytest.approx(5.0)


def test_focus_value_rules(db: Path) -> None:
    """FOCUS 1.2: quantities on every Usage row, allowed PricingCategory values, null ChargeClass, plain decimals."""
    add_cost_item(open_engine(db), CostItem(ts=ts("2026-11-02T03:00:00"), replica_id="chat-0", deployment=None,
                                            kind="storage", quantity=0.5, unit="GB-Months", usd=0.00001234, description=None))
    rep = build_report(open_engine(db), *NOV, now=NOW, capacity=cap)
    text = focus.to_csv(rep)
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        assert r["ChargeCategory"] == "Usage" and r["ChargeClass"] == ""
        assert r["PricingQuantity"] != "" and r["PricingUnit"] != "", r
        assert r["PricingCategory"] in {"Standard", "Dynamic", "Committed", "Other"}
        for col in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
            assert "e" not in r[col].lower() and float(r[col]) >= 0, (col, r[col])
    storage = next(r for r in rows if r["ServiceCategory"] == "Storage")
    # CSV money is in cents (finance's grain); Parquet keeps the full figure
    assert (storage["PricingQuantity"], storage["PricingUnit"], storage["BilledCost"]) == ("0.5", "GB-Months", "0.00")
    assert storage["ContractedUnitPrice"] == "0.000025"  # $ per GB-month, to 6 decimals
    assert any(r["BilledCost"] == pytest.approx(0.00001234) for r in focus.rows(rep) if r["ServiceCategory"] == "Storage")
