"""`orch catalog list|models|gpus` through the real typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path))


def run_json(*args: str) -> list[dict]:
    result = runner.invoke(app, ["catalog", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_h100_json_fields_and_order() -> None:
    rows = run_json("list", "--gpu", "H100")
    assert rows and {r["gpu"] for r in rows} == {"H100"}
    assert set(rows[0]) == {
        "provider", "region", "instance_type", "gpu", "gpu_count", "vcpus", "memory_gb",
        "usd_per_hour", "spot_usd_per_hour", "source", "as_of", "stale",
    }
    per_gpu = [r["usd_per_hour"] / r["gpu_count"] for r in rows]
    assert per_gpu == sorted(per_gpu)
    assert {"aws", "gcp", "azure", "lambdalabs", "runpod", "nebius", "coreweave"} <= {r["provider"] for r in rows}
    assert any(r["spot_usd_per_hour"] is None for r in rows)  # null where no spot market


def test_alias_provider_region_and_limit_filters() -> None:
    rows = run_json("list", "--gpu", "h100-sxm", "--provider", "aws", "--region", "us-east-1", "--limit", "1")
    assert len(rows) == 1
    assert rows[0]["instance_type"] == "p5.4xlarge" and rows[0]["region"] == "aws:us-east-1"
    assert run_json("list", "--region", "gcp:europe-west4", "--limit", "50")
    assert {r["provider"] for r in run_json("list", "--region", "westeurope")} == {"azure"}


def test_spot_ranks_by_spot_and_drops_rows_without_one() -> None:
    rows = run_json("list", "--gpu", "L4", "--spot")
    assert rows and all(r["spot_usd_per_hour"] is not None for r in rows)
    per_gpu = [r["spot_usd_per_hour"] / r["gpu_count"] for r in rows]
    assert per_gpu == sorted(per_gpu)
    assert run_json("list", "--gpu", "B200", "--provider", "aws", "--spot") == []


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--gpu", "H1000"], '"H100"'),
        (["--provider", "awz"], '"aws"'),
        (["--region", "eu-west1"], '"eu-west-1"'),
    ],
)
def test_unknown_names_are_user_errors_with_suggestions(args: list[str], hint: str) -> None:
    result = runner.invoke(app, ["catalog", "list", *args])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "did you mean" in result.stderr and hint in result.stderr
    assert "Traceback" not in result.output


def test_table_output() -> None:
    result = runner.invoke(app, ["catalog", "list", "--gpu", "A10G", "--provider", "aws", "--limit", "3"])
    assert result.exit_code == 0
    assert "g5.xlarge" in result.stdout and "$/GPU-h" in result.stdout and "1.006" in result.stdout


def test_models_and_gpus() -> None:
    models = {m["name"]: m for m in run_json("models")}
    assert models["llama-3.1-8b"]["kv_bytes_per_token_bf16"] == 131072
    assert models["deepseek-v3"]["active_params_b"] == 37
    gpus = {g["name"]: g for g in run_json("gpus")}
    assert gpus["H100"]["memory_gb"] == 80
    table = runner.invoke(app, ["catalog", "models"])
    assert table.exit_code == 0 and "mixtral-8x7b" in table.stdout
    table = runner.invoke(app, ["catalog", "gpus"])
    assert table.exit_code == 0 and "MI300X" in table.stdout
