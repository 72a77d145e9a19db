"""The list price crosses catalog -> plan -> apply -> state -> report: a provider discount in the deployment file
shows as ListCost > EffectiveCost in FOCUS and as "saved by discounts" in the report (AWS under moto)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from focus_check import validate
from test_apply_aws import aws  # noqa: F401  (the fixture: moto, test credentials, a state dir)
from typer.testing import CliRunner

from orchestrator.cli.main import app

SPEC = """\
version: 1
project: acme
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {{requests_per_second: 1, input_tokens: 500, output_tokens: 100}}
    slo: {{ttft_p95_ms: 5000, tpot_p95_ms: 200}}
    gateway: {{enabled: false}}
providers:
  aws:
    regions: [us-east-1]
    discount: {discount}
    options: {{ami_id: {ami}}}
"""


def _ran_for(db: Path, hours: float) -> None:
    """Move the replicas' launch (and their billing periods) back ``hours``: as if apply had run then."""
    con = sqlite3.connect(db)
    then = datetime.now(timezone.utc) - timedelta(hours=hours)
    stamp = then.strftime("%Y-%m-%d %H:%M:%S.%f")
    con.execute("update replicas set created_at = ?", (stamp,))
    con.execute("update billing_periods set start = ?", (stamp,))
    con.commit()
    con.close()


def test_a_discount_in_the_file_shows_as_list_above_effective_cost(aws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    ami = boto3.client("ec2", region_name="us-east-1").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    spec = tmp_path / "deploy.yaml"
    spec.write_text(SPEC.format(ami=ami, discount=0.2))
    run = CliRunner().invoke
    plan_file, db = tmp_path / "plan.json", tmp_path / "state.db"

    r = run(app, ["place", str(spec), "--out", str(plan_file), "--no-fallbacks"])
    assert r.exit_code == 0, r.output
    group = json.loads(plan_file.read_text())["deployments"][0]["replicas"][0]
    assert group["list_usd_per_hour"] == pytest.approx(group["usd_per_hour"] / 0.8, rel=1e-3)

    r = run(app, ["apply", str(spec), "--plan", str(plan_file), "--yes", "--no-wait", "--state", str(db)])
    assert r.exit_code == 0, r.output
    con = sqlite3.connect(db)
    (usd, listed), = con.execute("select usd_per_hour, list_usd_per_hour from billing_periods").fetchall()
    con.close()
    n = group["count"]
    assert (usd, listed) == (pytest.approx(group["usd_per_hour"] / n), pytest.approx(group["list_usd_per_hour"] / n))

    _ran_for(db, 10)
    today = datetime.now(timezone.utc).date()
    window = ["--since", str(today - timedelta(days=1)), "--until", str(today), "--state", str(db), "--no-sample"]
    r = run(app, ["report", *window, "--format", "focus"])
    assert r.exit_code == 0, r.output
    rows = [x for x in csv.DictReader(io.StringIO(r.stdout)) if x["ResourceType"] == "vLLM replica"]
    assert rows
    effective = sum(float(x["EffectiveCost"]) for x in rows)
    listed_cost = sum(float(x["ListCost"]) for x in rows)
    assert effective == pytest.approx(10 * group["usd_per_hour"], abs=0.02)
    assert listed_cost == pytest.approx(effective / 0.8, abs=0.02) and listed_cost > effective
    assert all(float(x["ListUnitPrice"]) == pytest.approx(float(x["ContractedUnitPrice"]) / 0.8, rel=1e-4) for x in rows)

    r = run(app, ["report", *window, "--format", "json"])
    doc = json.loads(r.stdout)
    saved = doc["headline"]["discount_saved_usd"]
    assert saved == pytest.approx(listed_cost - effective, abs=0.02) and saved > 1.0
    r = run(app, ["report", *window])
    assert f"saved by discounts ${saved:,.2f}" in r.output, r.output

    out = tmp_path / "focus.csv"
    out.write_text(run(app, ["report", *window, "--format", "focus"]).stdout)
    v = validate(out, tmp_path)
    assert v.real_failures == [], "\n".join(v.real_failures)
