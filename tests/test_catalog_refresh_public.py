"""`orch catalog refresh --source public`: no credentials at all. Azure's Retail Prices API and AWS's public price
list served by a local HTTP server (pytest-httpserver) from recordings in the real response shapes; offline fails
fast with one message; GCP says it needs a key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.catalog.offerings import cache_origin, cache_path, cached_offerings
from orchestrator.cli.main import app

RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AZURE_CLIENT_ID", "AZURE_SUBSCRIPTION_ID",
                "GOOGLE_APPLICATION_CREDENTIALS", "ORCH_AZURE_PRICES_URL", "ORCH_AWS_PRICING_URL"):
        monkeypatch.delenv(var, raising=False)


def _azure_pages(httpserver) -> None:  # type: ignore[no-untyped-def]
    pages = json.loads((RECORDINGS / "azure_retail_prices_eastus.json").read_text())["pages"]
    pages[0]["NextPageLink"] = httpserver.url_for("/api/retail/prices") + "?api-version=2023-01-01-preview&$skip=1000"
    httpserver.expect_oneshot_request(
        "/api/retail/prices", query_string={"api-version": "2023-01-01-preview", "$skip": "1000"}).respond_with_json(pages[1])
    httpserver.expect_oneshot_request("/api/retail/prices").respond_with_json(pages[0])


def test_azure_without_credentials_follows_next_page_link(httpserver, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _azure_pages(httpserver)
    monkeypatch.setenv("ORCH_AZURE_PRICES_URL", httpserver.url_for("/"))
    r = runner.invoke(app, ["catalog", "refresh", "--provider", "azure", "--region", "eastus", "--json"])
    assert r.exit_code == 0, r.output
    httpserver.check_assertions()  # both pages were requested, the second through NextPageLink
    assert len(httpserver.log) == 2 and "$skip=1000" in httpserver.log[1][0].url
    east = {o.instance_type: o for o in cached_offerings("azure") if o.region == "azure:eastus"}
    assert east["Standard_ND96isr_H100_v5"].usd_per_hour == 98.32  # on page 2
    assert east["Standard_NC4as_T4_v3"].spot_usd_per_hour == 0.21
    assert "refresh --source public" in (cache_origin("azure") or "")
    assert "azure:eastus" in r.stderr  # the progress bar goes to stderr


def test_azure_base_url_option_and_a_failed_region_is_reported(httpserver) -> None:  # type: ignore[no-untyped-def]
    _azure_pages(httpserver)
    httpserver.expect_request("/api/retail/prices").respond_with_data("busy", status=503)
    r = runner.invoke(app, ["catalog", "refresh", "--provider", "azure", "--base-url", httpserver.url_for("/"),
                            "--region", "eastus", "--region", "westus2"])
    assert r.exit_code == 0, r.output
    assert "warning: azure:westus2 not refreshed" in r.stderr and "HTTP 503" in r.stderr
    rows = cached_offerings("azure")
    assert {o.instance_type for o in rows if o.region == "azure:eastus"} >= {"Standard_NC4as_T4_v3"}


def test_aws_public_price_list_without_credentials(httpserver) -> None:  # type: ignore[no-untyped-def]
    offer = json.loads((RECORDINGS / "aws_offer_file_us-east-1.json").read_text())
    httpserver.expect_request("/offers/v1.0/aws/AmazonEC2/current/us-east-1/index.json").respond_with_json(offer)
    r = runner.invoke(app, ["catalog", "refresh", "--provider", "aws", "--source", "public",
                            "--base-url", httpserver.url_for("/"), "--region", "us-east-1"])
    assert r.exit_code == 0, r.output
    fresh = {o.instance_type: o for o in cached_offerings("aws") if o.region == "aws:us-east-1"}
    assert set(fresh) == {"g5.xlarge", "p5.48xlarge"}  # m5.large has no GPU; Windows and Reserved terms ignored
    g5 = fresh["g5.xlarge"]
    assert (g5.usd_per_hour, g5.spot_usd_per_hour, g5.gpu, g5.as_of) == (0.98, None, "A10G", "2026-11-20")
    assert fresh["p5.48xlarge"].gpu_count == 8 and "public price list" in fresh["p5.48xlarge"].source
    assert any(o.region == "aws:eu-west-1" for o in cached_offerings("aws"))  # other regions kept


@pytest.mark.parametrize("args", [
    ["--offline"],
    ["--base-url", "http://prices.orch-test.invalid", "--region", "eastus", "--region", "westus2"],
])
def test_offline_fails_within_seconds_with_one_message(args: list[str]) -> None:
    t0 = time.monotonic()
    r = runner.invoke(app, ["catalog", "refresh", "--provider", "azure", *args])
    elapsed = time.monotonic() - t0
    assert r.exit_code == 3 and elapsed < 5, (elapsed, r.output)
    assert r.stderr.count("error:") == 1 and "catalog is unchanged" in r.stderr and "Traceback" not in r.output
    assert not cache_path("azure").exists()


def test_gcp_has_no_keyless_source_and_says_it_needs_a_key() -> None:
    r = runner.invoke(app, ["catalog", "refresh", "--provider", "gcp", "--source", "public"])
    assert r.exit_code == 1 and "needs an API key" in r.stderr and "orch catalog import" in r.stderr
