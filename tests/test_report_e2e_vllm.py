"""End to end with real parts: a vLLM CPU server, orch bench, orch meter, orch report (all formats)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select, update
from typer.testing import CliRunner

from orchestrator.cli.main import app

pytestmark = pytest.mark.vllm

USD_PER_HOUR = 0.36


def cli(*args: str):  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def test_bench_meter_report_against_real_vllm(vllm_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.metering import tables as T
    from orchestrator.metering.store import open_engine
    from orchestrator.perf import profiles
    from orchestrator.state.models import Replica

    endpoint = vllm_server.endpoint
    db = str(tmp_path / "state.db")
    prof_dir = tmp_path / "profiles"
    monkeypatch.setenv("ORCH_PROFILE_DIR", str(prof_dir))
    profiles.clear_cache()  # also the estimates and capacities memoized from earlier profiles

    engine = open_engine(db)
    created = datetime.now(timezone.utc)
    tiny = Path(__file__).parent.parent / "examples" / "tiny-llama"
    with engine.begin() as c:  # the row apply writes for this replica (model: the config's directory name)
        c.execute(insert(Replica.__table__).values(
            id="tiny-0", project="e2e", deployment="tiny", team="ml", model="tiny-llama", provider="local",
            region="local:this-machine", instance_type="this-machine", gpu="CPU", gpu_count=1, market="on_demand",
            usd_per_hour=USD_PER_HOUR, list_usd_per_hour=USD_PER_HOUR, plan_id="p-e2e", group_key="g",
            endpoint=endpoint, status="running", created_at=created,
            details={"quantization": "bf16", "hf_id": str(tiny), "input_tokens": 48, "output_tokens": 16,
                     "tpot_slo_ms": 60_000},
        ))
    cli("meter", "--once", "--state", db)

    out = tmp_path / "bench.json"
    res = cli("bench", "tiny", "--state", db, "--concurrency", "1,4", "--input-tokens", "48", "--output-tokens", "16",
              "--duration", "3", "--max-requests", "60", "--profile-out", str(prof_dir), "--json")
    out.write_text(res.stdout)
    levels = json.loads(res.stdout)["levels"]
    assert all(lvl["requests"] > 0 and lvl["errors"] == 0 for lvl in levels)
    assert all(lvl["ttft_p50_ms"] > 0 and lvl["tpot_p50_ms"] > 0 for lvl in levels)
    benched = sum(lvl["requests"] for lvl in levels) * 16
    (prof,) = profiles.load_profiles(prof_dir)
    assert prof.model == "tiny-llama" and prof.gpu == "CPU" and len(prof.points) == 2  # under apply's model name

    cli("meter", "--once", "--state", db)
    ended = datetime.now(timezone.utc)
    with engine.begin() as c:  # stop billing at a known instant
        c.execute(update(Replica.__table__).where(Replica.__table__.c.id == "tiny-0")
                  .values(status="terminated", terminated_at=ended))
        last = c.execute(select(T.metric_samples).where(T.metric_samples.c.ok.is_(True))
                         .order_by(T.metric_samples.c.ts.desc())).first()
    # hand arithmetic: the meter's baseline is zero at server start, so tokens = the last counters
    out_tokens, in_tokens = last.generation_tokens, last.prompt_tokens
    assert out_tokens >= benched
    hours = (ended - created).total_seconds() / 3600
    cost = USD_PER_HOUR * hours
    per_m = cost / (in_tokens + out_tokens) * 1e6

    day = created.strftime("%Y-%m-%d")
    until = ended.strftime("%Y-%m-%d")
    period = ["--since", day, "--until", until, "--state", db, "--no-sample"]
    doc = json.loads(cli("report", *period, "--format", "json").stdout)
    total = doc["total"]
    assert total["output_tokens"] == out_tokens and total["input_tokens"] == in_tokens
    assert total["cost_usd"] == pytest.approx(cost, rel=1e-3)
    assert total["usd_per_m_tokens"] == pytest.approx(per_m, rel=1e-3)
    # the measured profile replaces the model: throughput at the largest concurrency meeting the (loose) SLO
    capacity = max(prof.points, key=lambda p: p.concurrency).output_tokens_per_s
    assert total["utilization"] == pytest.approx(out_tokens / (capacity * hours * 3600), rel=1e-3)
    # the counters hold what earlier tests sent this session-wide server too: utilization may pass 1, idle stays 0
    assert total["idle_usd"] == pytest.approx(cost * max(0.0, 1 - total["utilization"]), rel=1e-3, abs=1e-9)
    assert 0 < total["input_cost_share"] < 1  # measured prefill vs decode time

    focus_csv = tmp_path / "r.csv"
    cli("report", *period, "--format", "focus", "--out", str(focus_csv))
    rows = list(csv.DictReader(io.StringIO(focus_csv.read_text())))
    from orchestrator.reports.focus import MANDATORY

    assert set(MANDATORY) <= set(rows[0]) and {"x_InputTokens", "x_OutputTokens", "x_CostPerMillionTokens"} <= set(rows[0])
    assert sum(float(r["x_OutputTokens"]) for r in rows) == out_tokens

    html = tmp_path / "r.html"
    cli("report", *period, "--format", "html", "--out", str(html))
    from test_report_html import dump_dom

    dom = dump_dom(html, tmp_path)
    assert len(re.findall(r'class="mark"', dom)) >= 5

    table = cli("report", *period, "--by", "deployment").stdout
    assert "$/1M tok" in table and "tiny" in table
    assert f"{per_m:,.2f}" in table or f"{per_m:,.4f}" in table

    assert httpx.get(f"{endpoint}/health", timeout=5).status_code == 200
