"""`orch catalog refresh --source gpuhunt` through the real gpuhunt library (the optional extra orch[gpuhunt]):
tests/fixtures/gpuhunt_catalog holds one CSV per provider in gpuhunt's published layout, read either from a
directory (gpuhunt's GPUHUNT_CATALOG_DIR) or as its bucket layout (<provider>/version, <provider>/<v>/catalog.zip)
behind a file:// URL, which gpuhunt downloads and unzips as it does from dstack's bucket."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.catalog.offerings import cache_path, cached_offerings
from orchestrator.cli.main import app

# gpuhunt comes with the `test` extra; without it only the not-installed path can run.
needs_gpuhunt = pytest.mark.skipif(importlib.util.find_spec("gpuhunt") is None, reason="gpuhunt not installed")

FIXTURE = Path(__file__).parent / "fixtures" / "gpuhunt_catalog"
QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUHUNT_CATALOG_DIR", raising=False)
    monkeypatch.delenv("GPUHUNT_CATALOG_URL", raising=False)
    return tmp_path / "cache"


def published(root: Path, providers: list[str], version: str = "20261201") -> str:
    """The fixture in gpuhunt's bucket layout under ``root``; its file:// URL."""
    for p in providers:
        (root / p / version).mkdir(parents=True)
        (root / p / "version").write_text(version + "\n")
        with zipfile.ZipFile(root / p / version / "catalog.zip", "w") as z:
            z.write(FIXTURE / f"{p}.csv", f"{p}.csv")
    return root.resolve().as_uri()


def refresh(*args: str) -> object:
    return runner.invoke(app, ["catalog", "refresh", "--source", "gpuhunt", *args])


def _place(tmp: Path) -> dict:
    """The quickstart on L40S only, so the plan is on g6e.xlarge, the instance the fixture re-prices."""
    import yaml

    doc = yaml.safe_load(QUICKSTART.read_text())
    doc["policies"] = {**(doc.get("policies") or {}), "l40s-only": {"kind": "hardware", "gpus": ["L40S"]}}
    doc["deployments"][0]["policies"] = [*(doc["deployments"][0].get("policies") or []), "l40s-only"]
    spec = tmp / "quickstart-l40s.yaml"
    spec.write_text(yaml.safe_dump(doc))
    r = runner.invoke(app, ["place", str(spec), "--no-fallbacks", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@needs_gpuhunt
def test_published_catalog_changes_the_price_place_uses_and_the_plan_names_gpuhunt(tmp_path: Path) -> None:
    before = _place(tmp_path)
    chosen = before["deployments"][0]["replicas"][0]
    assert (chosen["region"], chosen["instance_type"]) == ("aws:us-east-1", "g6e.xlarge")

    url = published(tmp_path / "bucket", ["aws", "gcp"])
    r = refresh("--provider", "aws", "--base-url", url, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert {s["region"]: s["status"] for s in summary["regions"]}["aws:us-east-1"] == "refreshed"

    g6e = {(o.region, o.instance_type): o for o in cached_offerings("aws")}[("aws:us-east-1", "g6e.xlarge")]
    assert (g6e.usd_per_hour, g6e.spot_usd_per_hour, g6e.as_of) == (1.492, 0.6716, "2026-12-01")
    assert g6e.source == f"gpuhunt 0.1.34 catalog {url}/aws, version 20261201"

    after = _place(tmp_path)
    g = after["deployments"][0]["replicas"][0]
    assert g["instance_type"] == "g6e.xlarge"
    assert g["usd_per_hour"] == pytest.approx(1.492 * (g.get("instances") or g["count"]), rel=1e-6)
    assert after["total"]["usd_per_hour"] < before["total"]["usd_per_hour"]
    source = [m for m in after["messages"] if m.startswith("prices: aws")]
    assert source and "catalog refresh --source gpuhunt" in source[0] and str(cache_path("aws")) in source[0]
    assert "2026-12-01" in source[0]


@needs_gpuhunt
def test_zones_collapse_n1_gets_its_accelerator_and_tpu_vms_and_flagged_rows_stay_out() -> None:
    r = refresh("--provider", "gcp", "--base-url", str(FIXTURE), "--json")
    assert r.exit_code == 0, r.output
    gcp = {o.instance_type: o for o in cached_offerings("gcp") if o.source.startswith("gpuhunt")}
    assert set(gcp) == {"a2-highgpu-1g", "n1-standard-8+nvidia-tesla-t4:1", "a3-highgpu-8g"}
    a2 = gcp["a2-highgpu-1g"]
    assert a2.region == "gcp:us-central1" and a2.gpu == "A100-40GB"  # gpuhunt's "A100" with 40 GB
    assert a2.usd_per_hour == pytest.approx(3.67339)  # not the 2.204 DWS calendar-mode row (flagged)
    assert a2.spot_usd_per_hour == pytest.approx((1.4429 + 1.6012) / 2)  # median of the zones' spot prices
    assert gcp["n1-standard-8+nvidia-tesla-t4:1"].gpu == "T4"
    assert json.loads(r.stdout)["skipped"] == {"TPU VM types (orch prices TPUs as GKE machine types)": 1}
    # regions gpuhunt had nothing for keep their rows, and say so
    assert any(o.region == "gcp:europe-west4" for o in cached_offerings("gcp"))
    assert "warning: gcp:europe-west4 not refreshed (gpuhunt has no row orch can use there)" in r.stderr


@needs_gpuhunt
def test_an_unknown_gpu_is_skipped_and_counted() -> None:
    r = refresh("--provider", "aws", "--base-url", str(FIXTURE), "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["unknown_gpus"] == {"V100": 2}
    assert summary["skipped"] == {"in regions orch does not know": 1}  # me-central-1
    assert "unknown GPU V100 ×2" in r.stderr
    fresh = {o.instance_type: o.gpu for o in cached_offerings("aws") if o.source.startswith("gpuhunt")}
    assert fresh == {"g6e.xlarge": "L40S", "p4d.24xlarge": "A100-40GB", "p4de.24xlarge": "A100-80GB"}


@needs_gpuhunt
def test_a_malformed_row_is_counted_and_the_rest_imported(tmp_path: Path) -> None:
    d = tmp_path / "catalog"
    d.mkdir()
    text = (FIXTURE / "aws.csv").read_text()
    (d / "aws.csv").write_text(text.replace("p4d.24xlarge,us-east-1,21.957642,", "p4d.24xlarge,us-east-1,n/a,", 1))
    r = refresh("--provider", "aws", "--base-url", str(d), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["skipped"]["malformed rows (gpuhunt could not read them)"] == 1
    fresh = {o.instance_type for o in cached_offerings("aws") if o.source.startswith("gpuhunt")}
    assert fresh == {"g6e.xlarge", "p4de.24xlarge"}
    assert "Traceback" not in r.output


@needs_gpuhunt
def test_gpu_clouds_get_orchs_names_and_plans_name_their_cache() -> None:
    from orchestrator.catalog.freshness import price_origin

    r = refresh("--provider", "runpod", "--base-url", str(FIXTURE), "--json")
    assert r.exit_code == 0, r.output
    runpod = {(o.region, o.instance_type): o for o in cached_offerings("runpod") if o.source.startswith("gpuhunt")}
    assert set(runpod) == {("runpod:us-tx-3", "1x_H100-SXM_SECURE"), ("runpod:us-tx-3", "8x_H100-SXM_SECURE"),
                           ("runpod:ca-mtl-1", "1x_A100-80GB_SECURE")}  # no community (country) or cluster rows
    assert json.loads(r.stdout)["unknown_gpus"] == {"RTX4090": 1}
    assert "catalog refresh --source gpuhunt" in price_origin("runpod")
    r = refresh("--provider", "lambdalabs", "--base-url", str(FIXTURE))
    assert r.exit_code == 0, r.output
    lam = {o.instance_type: o.gpu for o in cached_offerings("lambdalabs") if o.source.startswith("gpuhunt")}
    assert lam == {"gpu_1x_h100_sxm5": "H100", "gpu_8x_h100_sxm5": "H100", "gpu_1x_a10": "A10G"}  # no ARM GH200


def test_not_installed_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpuhunt", None)  # `import gpuhunt` raises ImportError
    r = refresh("--provider", "aws", "--base-url", str(FIXTURE))
    assert r.exit_code == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "gpuhunt is not installed" in errors[0] and "orch[gpuhunt]" in errors[0], r.stderr
    assert "Traceback" not in r.output and not cache_path("aws").exists()


@needs_gpuhunt
def test_offline_without_a_local_catalog_fails_fast_with_one_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused, as with no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for args in (["--offline"], ["--base-url", f"http://127.0.0.1:{port}/v3"]):
        start = time.monotonic()
        r = refresh("--provider", "azure", *args)
        assert time.monotonic() - start < 5
        assert r.exit_code == 3, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "the catalog is unchanged" in lines[0].lower(), r.stderr
        assert not cache_path("azure").exists()
    r = refresh("--provider", "azure", "--offline", "--base-url", str(FIXTURE))  # a local catalog needs no network
    assert r.exit_code == 0, r.output
    assert cache_path("azure").exists()


@needs_gpuhunt
def test_a_provider_missing_from_the_catalog_or_not_covered_is_one_error(tmp_path: Path) -> None:
    url = published(tmp_path / "bucket", ["aws"])
    r = refresh("--provider", "azure", "--base-url", url)
    assert r.exit_code == 3 and "azure: gpuhunt could not load its catalog" in r.stderr, r.output
    assert "Traceback" not in r.output and len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    r = refresh("--provider", "coreweave", "--base-url", str(FIXTURE))
    assert r.exit_code == 1 and "--source gpuhunt covers aws, gcp, azure, lambdalabs, runpod, nebius" in r.stderr
    assert not os.path.exists(cache_path("azure"))
