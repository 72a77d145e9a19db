"""`orch catalog refresh` through typer's CliRunner, no network: AWS via moto (EC2) + botocore Stubber (Pricing),
Azure via the Retail Prices reader against a local HTTP server (pytest-httpserver). The cache goes to a tmp
ORCH_CACHE_DIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from orchestrator.catalog.offerings import cache_path, cached_offerings, snapshot_offerings
from orchestrator.cli import catalog_refresh
from orchestrator.cli.main import _OrchGroup
from providers.aws import AwsProvider
from providers.azure import AzureProvider, create as azure_create
from providers.pricing.aws import price_filters

RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"


def _app() -> typer.Typer:
    """orch's error handling (exit codes) around a catalog group with only `refresh` registered."""
    app = typer.Typer(cls=_OrchGroup, add_completion=False, pretty_exceptions_enable=False)
    catalog = typer.Typer()
    catalog_refresh.register(catalog)
    app.add_typer(catalog, name="catalog")
    return app


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(_app(), list(args))


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        provider = AwsProvider(sleep=lambda s: None)
        monkeypatch.setattr(catalog_refresh, "make_provider", lambda kind, project=None: provider)
        yield provider


def _stub_pricing(provider: AwsProvider) -> Stubber:
    rec = json.loads((RECORDINGS / "aws_pricing_get_products_us-east-1.json").read_text())
    stub = Stubber(provider._client("pricing", "us-east-1"))
    base = {"ServiceCode": "AmazonEC2", "Filters": price_filters("us-east-1"), "FormatVersion": "aws_v1"}
    stub.add_response("get_products", rec["pages"][0], base)
    stub.add_response("get_products", rec["pages"][1], {**base, "NextToken": "page-2"})
    return stub


def test_aws_partial_failure_keeps_previous_rows_and_warns(aws):
    stub = _stub_pricing(aws)
    stub.add_client_error("get_products", service_error_code="InvalidParameterException", service_message="bad region", http_status_code=400)
    with stub:
        r = _run("catalog", "refresh", "--provider", "aws", "--region", "us-east-1", "--region", "aws:eu-west-1")
    assert r.exit_code == 0, r.stderr
    assert "warning: aws:eu-west-1 not refreshed" in r.stderr and "InvalidParameterException" in r.stderr
    assert "us-east-1" in r.stdout and "refreshed" in r.stdout and "failed" in r.stdout

    rows = cached_offerings("aws")
    assert rows is not None
    fresh = {o.instance_type: o for o in rows if o.region == "aws:us-east-1"}
    assert set(fresh) == {"g5.xlarge", "p5.48xlarge"}  # the live answer replaces the region's snapshot rows
    assert fresh["g5.xlarge"].usd_per_hour == 1.006 and "Price List API" in fresh["g5.xlarge"].source
    snap = [o for o in snapshot_offerings() if o.provider == "aws"]
    kept_eu = [o for o in rows if o.region == "aws:eu-west-1"]
    assert kept_eu == [o for o in snap if o.region == "aws:eu-west-1"] and kept_eu  # failed region: previous rows
    assert {o.region for o in rows} == {o.region for o in snap}  # regions not asked for are kept too


def test_second_refresh_keeps_the_cached_rows_of_a_failed_region(aws, cache_dir):
    with _stub_pricing(aws):
        assert _run("catalog", "refresh", "--provider", "aws", "--region", "us-east-1").exit_code == 0
    first = {o.instance_type for o in cached_offerings("aws") if o.region == "aws:us-east-1"}
    stub = Stubber(aws._client("pricing", "us-east-1"))
    stub.add_client_error("get_products", service_error_code="InvalidParameterException", http_status_code=400)
    stub.add_client_error("get_products", service_error_code="InvalidParameterException", http_status_code=400)
    with stub:
        r = _run("catalog", "refresh", "--provider", "aws", "--region", "us-east-1", "--region", "eu-west-1")
    assert r.exit_code == 3 and "failed in every region" in r.stderr
    assert {o.instance_type for o in cached_offerings("aws") if o.region == "aws:us-east-1"} == first  # untouched


def test_all_regions_failing_exits_3_and_writes_nothing(aws, cache_dir):
    stub = Stubber(aws._client("pricing", "us-east-1"))
    stub.add_client_error("get_products", service_error_code="InvalidParameterException", http_status_code=400)
    with stub:
        r = _run("catalog", "refresh", "--provider", "aws", "--region", "us-east-1")
    assert r.exit_code == 3
    assert r.stderr.startswith("error: aws: refresh failed in every region") or "error: aws: refresh failed" in r.stderr
    assert not cache_path("aws").exists()


def test_missing_aws_credentials_exit_3_one_line(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = _run("catalog", "refresh", "--provider", "aws", "--region", "us-east-1")
    assert r.exit_code == 3
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: aws: no credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`"]
    assert not cache_path("aws").exists()


def test_azure_refresh_from_local_retail_prices(httpserver, monkeypatch):
    pages = json.loads((RECORDINGS / "azure_retail_prices_eastus.json").read_text())["pages"]
    pages[0]["NextPageLink"] = httpserver.url_for("/api/retail/prices") + "?api-version=2023-01-01-preview&$skip=1000"
    httpserver.expect_request("/api/retail/prices", query_string={"api-version": "2023-01-01-preview", "$skip": "1000"}).respond_with_json(pages[1])
    httpserver.expect_request("/api/retail/prices").respond_with_json(pages[0])
    provider = azure_create(prices_url=httpserver.url_for("/").rstrip("/"), sleep=lambda s: None)
    monkeypatch.setattr(catalog_refresh, "make_provider", lambda kind, project=None: provider)

    r = _run("catalog", "refresh", "--provider", "azure", "--source", "api", "--region", "eastus", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["regions"] == [{"region": "azure:eastus", "status": "refreshed", "offerings": 3, "error": None}]
    rows = cached_offerings("azure")
    east = {o.instance_type: o for o in rows if o.region == "azure:eastus"}
    assert set(east) == {"Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4", "Standard_ND96isr_H100_v5"}
    assert east["Standard_NC4as_T4_v3"].spot_usd_per_hour == 0.21
    assert out["rows"] == len(rows) and any(o.region == "azure:westeurope" for o in rows)  # other regions kept


def test_unknown_provider_is_a_user_error():
    r = _run("catalog", "refresh", "--provider", "awz")
    assert r.exit_code == 1 and "did you mean" in r.stderr.lower() and "aws" in r.stderr


def test_wired_into_orch_catalog():
    """`orch catalog refresh` is registered by orchestrator/cli/catalog.py."""
    from orchestrator.cli.main import app

    r = CliRunner().invoke(app, ["catalog", "refresh", "--help"])
    assert r.exit_code == 0, r.output
    assert "--provider" in r.stdout and "--region" in r.stdout


def test_offline_refresh_stops_at_the_first_region_with_one_message(monkeypatch):
    """Issue 20, item 20: offline, a refresh took 66 s and printed 11 identical DNS errors."""
    calls = []
    provider = azure_create(prices_url="http://prices.orch-test.invalid", sleep=lambda s: calls.append(s))
    monkeypatch.setattr(catalog_refresh, "make_provider", lambda kind, project=None: provider)
    r = _run("catalog", "refresh", "--provider", "azure", "--source", "api", "--region", "eastus", "--region", "westus2",
             "--region", "westeurope")
    assert r.exit_code == 3
    assert r.stderr.count("error:") == 1 and "cannot reach the price API" in r.stderr
    assert "westus2" not in r.stderr and "westeurope" not in r.stderr  # never tried: they would fail alike
