"""Stale prices: rows older than six months are flagged in `orch catalog list` (table and --json) and warned about
in the plan. ORCH_TODAY pins today's date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.catalog.freshness import is_stale
from orchestrator.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ORCH_TODAY", "2026-12-04")


def test_six_months_boundary() -> None:
    from datetime import date

    now = date(2026, 12, 4)
    assert not is_stale("2026-06-04", now) and is_stale("2026-06-03", now)
    assert is_stale("", now) and is_stale("unknown", now)  # no date: nobody knows how old


def test_json_flags_exactly_the_old_rows() -> None:
    r = runner.invoke(app, ["catalog", "list", "--json"])
    rows = json.loads(r.stdout)
    stale = [x for x in rows if x["stale"]]
    assert stale and all(x["as_of"] < "2026-06-04" for x in stale)
    assert all(x["as_of"] >= "2026-06-04" for x in rows if not x["stale"])
    assert "gcp" in {x["provider"] for x in stale}  # the 2025-03-06 GCP rows not confirmed by a second source


def test_table_marks_stale_rows_and_says_so_below(monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["catalog", "list", "--provider", "gcp", "--gpu", "B200"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("STALE") >= 4 and "more than 183 days ago" in r.stdout
    fresh = runner.invoke(app, ["catalog", "list", "--provider", "aws", "--gpu", "H100"])
    assert "STALE" not in fresh.stdout
    monkeypatch.setenv("ORCH_TODAY", "2027-12-04")  # a year on, every row is stale
    assert "STALE" in runner.invoke(app, ["catalog", "list", "--provider", "aws", "--gpu", "H100"]).stdout


def _plan(tmp_path: Path, providers: str) -> dict:
    spec = (Path(__file__).parents[1] / "examples" / "quickstart.yaml").read_text()
    spec = spec[: spec.index("providers:")] + providers
    f = tmp_path / "d.yaml"
    f.write_text(spec)
    r = runner.invoke(app, ["place", str(f), "--no-fallbacks", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_plan_on_a_stale_price_warns(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "providers:\n  gcp: {regions: [asia-northeast1]}\n")
    chosen = plan["deployments"][0]["replicas"][0]
    warnings = [m for m in plan["messages"] if m.startswith("warning: stale price")]
    if chosen["instance_type"].startswith(("a2-", "a3-", "a4-")):
        assert warnings and chosen["instance_type"] in warnings[0] and "catalog refresh --provider gcp" in warnings[0]
    else:
        assert not warnings
    fresh = _plan(tmp_path, "providers:\n  aws: {regions: [us-east-1]}\n")
    assert not [m for m in fresh["messages"] if "stale" in m]
    assert any(m.startswith("prices: aws from embedded snapshot") for m in fresh["messages"])


def test_a_comparison_priced_from_a_stale_row_says_so() -> None:
    """The quickstart's GCP line compares with an A3 price of 2025-03-06: the reader is told it is stale."""
    from pathlib import Path

    from orchestrator.placement import place
    from orchestrator.spec.loader import load_spec

    plan = place(load_spec(Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"), with_fallbacks=False)
    gcp = plan.deployments[0].explanation["providers"]["gcp"]
    assert "a3-highgpu-1g" in gcp and "a stale price of 2025-03-06" in gcp
    assert "stale" not in plan.deployments[0].explanation["providers"].get("aws", "")
