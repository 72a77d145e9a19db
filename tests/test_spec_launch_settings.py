"""Provider settings apply will need are checked when the file is loaded: an unknown one is a located error at
validate (apply would refuse it), a missing one a located warning (the file still plans)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec

BASE = """\
version: 1
project: acme
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {requests_per_second: 1, input_tokens: 500, output_tokens: 100}
    slo: {ttft_p95_ms: 5000, tpot_p95_ms: 200}
providers:
"""


def _write(tmp_path: Path, providers: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(BASE + providers)
    return path


def test_the_key_vault_at_the_wrong_level_and_a_typo_are_located_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "  azure:\n    regions: [eastus]\n    options: {subscription_id: s, resource_group: rg, keyvault: kv}\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    (p,) = err.value.problems
    assert (p.line, p.path) == (11, "providers.azure.options.keyvault")
    assert "unknown setting 'keyvault' for azure" in p.message and "key_vault" in p.message
    r = CliRunner().invoke(app, ["validate", str(path)])
    assert r.exit_code == 1 and "deploy.yaml:11:" in r.output


def test_missing_settings_warn_at_validate_and_in_place_only_for_a_provider_the_plan_uses(tmp_path: Path) -> None:
    path = _write(tmp_path, "  gcp:\n    regions: [us-central1]\n  aws:\n    regions: [us-east-1]\n")
    loaded = load_spec(path)
    (w,) = loaded.warnings
    assert w.path == "providers.gcp" and w.line == 9
    assert "project" in w.message and "us-central1-a" in w.message and "placing works without them" in w.message
    r = CliRunner().invoke(app, ["validate", str(path)])
    assert r.exit_code == 0 and "warning: " in r.stderr and "providers.gcp" in r.stderr
    placed = CliRunner().invoke(app, ["place", str(path), "--json", "--no-fallbacks"])
    assert placed.exit_code == 0
    import json

    used = {g["provider"] for d in json.loads(placed.stdout)["deployments"] for g in d["replicas"]}
    assert ("providers.gcp" in placed.stderr) == ("gcp" in used)


def test_complete_settings_give_no_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "  gcp:\n    regions: [us-central1]\n    options: {project: p, zones: 'us-central1-a'}\n"
                            "  azure:\n    regions: [eastus]\n    options: {subscription_id: s, resource_group: rg, key_vault: kv}\n")
    assert load_spec(path).warnings == []
