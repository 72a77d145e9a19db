"""`orch status`: desired vs actual from the providers, live /health, uptime and cost so far."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import test_apply_fakeprovider as fake
from orchestrator.cli.main import app

fake.register()


@pytest.fixture
def applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield fake.apply_demo(tmp_path, monkeypatch, chat_usd=3.6)
    fake.kill_all(tmp_path / "fake")


def _status(*args: str) -> dict:
    r = CliRunner().invoke(app, ["status", *args, "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_status_json_reports_desired_actual_health_and_cost(applied) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    before = time.time()
    doc = _status("--state", str(db))  # no FILE: the only project in the state
    after = time.time()
    assert doc["project"] == "demo"
    deps = {d["name"]: d for d in doc["deployments"]}
    assert (deps["chat"]["desired"], deps["chat"]["actual"], deps["chat"]["healthy"]) == (2, 2, 2)
    assert (deps["batch"]["desired"], deps["batch"]["actual"], deps["batch"]["healthy"]) == (1, 1, 1)
    r = deps["chat"]["replicas"][0]
    assert r["status"] == "running" and r["health"] == "healthy" and r["endpoint"].startswith("http://127.0.0.1:")
    assert r["usd_per_hour"] == pytest.approx(3.6)
    # cost so far is billed from launch (as `orch report` bills it), not from when /health first answered
    with sqlite3.connect(db) as conn:
        (created,) = conn.execute("select created_at from replicas where id = ?", (r["id"],)).fetchone()
    launched = datetime.fromisoformat(created).replace(tzinfo=timezone.utc).timestamp()
    assert (before - launched) / 3600 * 3.6 - 1e-6 <= r["cost_usd"] <= (after - launched) / 3600 * 3.6 + 1e-6
    assert r["cost_usd"] >= r["uptime_s"] / 3600 * 3.6 - 1e-6
    assert doc["usd_per_hour"] == pytest.approx(3.6 * 2 + 1.0)
    assert _status(str(spec), "--state", str(db))["project"] == "demo"


def test_status_sees_a_replica_that_died(applied) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    victim = next(x for x in fake.live(tmp / "fake") if x["region"] == "fake:zone-b")
    fake.kill(victim["pid"])
    deps = {d["name"]: d for d in _status(str(spec), "--state", str(db))["deployments"]}
    assert (deps["batch"]["desired"], deps["batch"]["actual"]) == (1, 0)
    assert deps["chat"]["actual"] == 2


def test_status_table_on_stdout(applied) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    r = CliRunner().invoke(app, ["status", str(spec), "--state", str(db)])
    assert r.exit_code == 0, r.stderr
    assert "2/2 (2 healthy)" in r.stdout and "demo-chat-" in r.stdout and "healthy" in r.stdout


def test_status_without_a_project_says_what_to_pass(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["status", "--state", str(tmp_path / "empty.db")])
    assert r.exit_code == 1 and "pass the deployment FILE" in r.stderr


def test_status_that_could_ask_no_provider_fails_instead_of_showing_nothing(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    example = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"
    r = CliRunner().invoke(app, ["status", str(example), "--state", str(tmp_path / "s.db"), "--json"])
    assert r.exit_code == 3, r.output
    assert "no provider could be asked" in r.stderr and r.stdout == ""
