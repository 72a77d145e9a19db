"""`orch catalog import DIR` of a SkyPilot catalog (tests/fixtures/skypilot_catalog, the published vms.csv layout)
through the real CLI: the cache it writes is what `orch place` prices with, and the plan names it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.catalog.offerings import cache_path, cached_offerings
from orchestrator.cli.main import app

FIXTURE = Path(__file__).parent / "fixtures" / "skypilot_catalog"
QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _spec(tmp: Path) -> Path:
    """The quickstart on L40S only: a plan on g6e.xlarge, the instance the fixture re-prices, whatever the
    performance model's calibration makes of the other GPUs."""
    import yaml

    doc = yaml.safe_load(QUICKSTART.read_text())
    doc["policies"] = {**(doc.get("policies") or {}), "l40s-only": {"kind": "hardware", "gpus": ["L40S"]}}
    doc["deployments"][0]["policies"] = [*(doc["deployments"][0].get("policies") or []), "l40s-only"]
    path = tmp / "quickstart-l40s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _place() -> dict:
    r = runner.invoke(app, ["place", str(_spec(Path(os.environ["ORCH_CACHE_DIR"]).parent)), "--no-fallbacks", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_import_changes_the_price_place_uses_and_the_plan_names_the_source() -> None:
    before = _place()
    chosen = before["deployments"][0]["replicas"][0]
    assert (chosen["region"], chosen["instance_type"]) == ("aws:us-east-1", "g6e.xlarge")
    assert any("embedded snapshot" in m for m in before["messages"])

    r = runner.invoke(app, ["catalog", "import", str(FIXTURE), "--provider", "aws"])
    assert r.exit_code == 0, r.output
    after = _place()
    g = after["deployments"][0]["replicas"][0]
    assert g["instance_type"] == "g6e.xlarge"
    assert g["usd_per_hour"] == pytest.approx(1.2 * g["instances"] if g.get("instances") else 1.2 * g["count"], rel=1e-6)
    assert after["total"]["usd_per_hour"] < before["total"]["usd_per_hour"]
    source = [m for m in after["messages"] if m.startswith("prices: aws")]
    assert source and "SkyPilot catalog import" in source[0] and str(FIXTURE.resolve() / "aws" / "vms.csv") in source[0]


def test_gcp_machine_is_vm_part_plus_accelerator_rows_and_zones_collapse() -> None:
    r = runner.invoke(app, ["catalog", "import", str(FIXTURE), "--json"])
    assert r.exit_code == 0, r.output
    summary = {s["provider"]: s for s in json.loads(r.stdout)}
    assert set(summary) == {"aws", "gcp"}
    gcp = {(o.region, o.instance_type): o for o in cached_offerings("gcp") if "skypilot_catalog" in o.source}
    a2 = gcp[("gcp:us-central1", "a2-highgpu-1g")]
    assert a2.gpu == "A100-40GB" and a2.gpu_count == 1
    assert a2.usd_per_hour == pytest.approx(0.73948 + 2.93391)  # VM row + A100 accelerator row
    assert a2.spot_usd_per_hour == pytest.approx(0.29576 + 1.1472)
    assert set(gcp) == {("gcp:us-central1", "a2-highgpu-1g"), ("gcp:europe-west4", "a2-highgpu-1g")}  # no n2, no TPU
    aws = {(o.region, o.instance_type): o for o in cached_offerings("aws") if "skypilot_catalog" in o.source}
    assert set(aws) == {("aws:us-east-1", "g6e.xlarge"), ("aws:us-east-1", "p4d.24xlarge")}  # V100, ap-east-2 skipped
    assert aws[("aws:us-east-1", "g6e.xlarge")].spot_usd_per_hour == pytest.approx(0.6)  # median of three zones
    assert aws[("aws:us-east-1", "p4d.24xlarge")].gpu == "A100-40GB"  # SkyPilot's "A100" with 40 GB GpuInfo
    assert summary["aws"]["skipped_rows"] == 2
    # regions the import does not cover keep their previous rows
    assert any(o.region == "aws:eu-west-1" for o in cached_offerings("aws"))


def test_a_bad_file_is_one_located_error_and_nothing_is_written(tmp_path: Path) -> None:
    d = tmp_path / "catalog"
    shutil.copytree(FIXTURE, d)
    (d / "gcp" / "vms.csv").write_text((d / "gcp" / "vms.csv").read_text().replace("2.93391,1.1472", "two,1.1472", 1))
    r = runner.invoke(app, ["catalog", "import", str(d)])
    assert r.exit_code == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "gcp/vms.csv:11: Price must be a number, found 'two'" in errors[0], r.stderr
    assert not cache_path("aws").exists() and not cache_path("gcp").exists()  # aws parsed fine, still not written


def test_not_a_skypilot_file_names_the_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "vms.csv").write_text("instance,price\ng5.xlarge,1.0\n")
    r = runner.invoke(app, ["catalog", "import", str(tmp_path)])
    assert r.exit_code == 1 and "aws/vms.csv:1: not a SkyPilot vms.csv: missing column(s) InstanceType" in r.stderr
    assert "Traceback" not in r.output
