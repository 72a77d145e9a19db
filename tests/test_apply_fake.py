"""`orch apply` end to end on the fake provider (real processes answering /health) and real SQLite state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import test_apply_fakeprovider as fake
from orchestrator.cli.main import app
from test_state_db import postgres  # noqa: F401  (session fixture: a throwaway PostgreSQL cluster)

fake.register()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_dir = tmp_path / "fake"
    monkeypatch.setenv("FAKE_STATE_DIR", str(fake_dir))
    monkeypatch.setenv("ORCH_STATE_DIR", str(tmp_path / "orch"))
    for var in ("FAKE_NO_CAPACITY", "FAKE_QUOTA", "FAKE_DOWN", "ORCH_STATE_URL", "ORCH_FAULT_AT"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    fake.kill_all(fake_dir)


def orch(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def setup_files(tmp: Path, plan: dict, project: str = "demo") -> tuple[Path, Path, Path]:
    spec = tmp / "deploy.yaml"
    sha = fake.write_spec(spec, project, list(plan))
    plan_path = tmp / "plan.json"
    fake.write_plan(plan_path, project, sha, plan)
    return spec, plan_path, tmp / "state.db"


def state_rows(db_path: Path) -> dict[str, dict]:
    import sqlite3

    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    rows = {r["id"]: dict(r) for r in con.execute("select * from replicas")}
    con.close()
    return rows


def journal(db_path: Path) -> list[dict]:
    import sqlite3

    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("select * from journal order by id")]
    con.close()
    return rows


def test_apply_launches_waits_healthy_and_is_idempotent(env: Path) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 2)]], "batch": [[fake.group("fake:zone-b", 1)]]})
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "30")
    assert r.exit_code == 0, r.stderr
    assert "3 to create" in r.stdout
    live = fake.live(env / "fake", "demo")
    assert sorted(x["labels"]["orch-replica"] for x in live) == sorted(state_rows(db))
    assert len(live) == 3
    rows = state_rows(db)
    assert {row["status"] for row in rows.values()} == {"running"}
    assert all(row["ready_at"] and row["handle_id"] and row["endpoint"] for row in rows.values())
    chat = [row for row in rows.values() if row["deployment"] == "chat"]
    assert len(chat) == 2 and chat[0]["usd_per_hour"] == pytest.approx(1.0)
    launches = [j for j in journal(db) if j["action"] == "launch"]
    assert [j["status"] for j in launches] == ["done"] * 3

    pids = sorted(x["pid"] for x in live)
    again = orch("apply", str(spec), "--plan", str(plan), "--state", str(db))  # no --yes needed: nothing to do
    assert again.exit_code == 0, again.stderr
    assert "0 to create, 3 to keep, 0 to adopt, 0 to delete" in again.stdout
    assert "no changes" in again.stderr
    assert sorted(x["pid"] for x in fake.live(env / "fake", "demo")) == pids
    assert len([j for j in journal(db) if j["action"] == "launch"]) == 3


def test_mismatched_plan_is_refused_with_the_difference(env: Path) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    fake.write_spec(spec, "demo", ["chat", "summarize"])  # edited after the plan was made
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db))
    assert r.exit_code == 1
    assert "was not made from" in r.stderr and "only in the file: summarize" in r.stderr
    sha_now = __import__("hashlib").sha256(spec.read_bytes()).hexdigest()
    assert sha_now in r.stderr and json.loads(plan.read_text())["spec_sha256"] in r.stderr
    assert not db.exists() and fake.live(env / "fake") == []


def test_without_yes_and_without_a_terminal_nothing_changes(env: Path) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    r = orch("apply", str(spec), "--plan", str(plan), "--state", str(db))
    assert r.exit_code == 1 and "--yes" in r.stderr
    assert fake.live(env / "fake") == [] and state_rows(db) == {}


def test_dry_run_prints_calls_and_touches_nothing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "supersecret-value")
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 2)]], "batch": [[fake.group("fake:zone-b", 1)]]})
    r = orch("apply", str(spec), "--plan", str(plan), "--dry-run", "--state", str(db))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count('"call": "spawn"') == 2  # one per replica group
    assert "demo-chat-" in r.stdout and "demo-batch-" in r.stdout
    assert "supersecret" not in r.stdout + r.stderr
    assert not db.exists() and fake.live(env / "fake") == []


def test_capacity_error_takes_the_next_fallback_and_stays_there(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 2)], [fake.group("fake:zone-b", 2, "fake-2x")]]})
    monkeypatch.setenv("FAKE_NO_CAPACITY", "fake:zone-a")
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "30")
    assert r.exit_code == 0, r.stderr
    assert "no capacity on fake fake:zone-a fake-1x" in r.stderr and "taking fallback #1" in r.stderr
    live = fake.live(env / "fake", "demo")
    assert len(live) == 2 and {x["region"] for x in live} == {"fake:zone-b"}
    fb = [j for j in journal(db) if j["action"] == "fallback"]
    assert len(fb) == 1 and json.loads(fb[0]["detail"])["to"] == 1
    failed = [j for j in journal(db) if j["action"] == "launch" and j["status"] == "failed"]
    assert len(failed) == 1 and "CapacityError" in failed[0]["detail"]

    monkeypatch.delenv("FAKE_NO_CAPACITY")  # capacity is back: the healthy fallback is not torn down
    again = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db))
    assert again.exit_code == 0, again.stderr
    assert "0 to create, 2 to keep" in again.stdout
    assert sorted(x["id"] for x in fake.live(env / "fake", "demo")) == sorted(x["id"] for x in live)


def test_no_fallback_left_fails_with_exit_3(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    monkeypatch.setenv("FAKE_QUOTA", "fake:zone-a")
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "5")
    assert r.exit_code == 3
    assert "quota exceeded" in r.stderr and "no fallback left" in r.stderr


def test_unreachable_provider_keeps_partial_progress_and_a_rerun_converges(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]], "batch": [[fake.group("fake:zone-b", 1)]]})
    monkeypatch.setenv("FAKE_DOWN", "fake:zone-b")
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "20")
    assert r.exit_code == 3, r.stderr
    assert "cannot list fake fake:zone-b" in r.stderr and "did not converge" in r.stderr
    live = fake.live(env / "fake", "demo")
    assert [x["region"] for x in live] == ["fake:zone-a"]  # partial progress kept
    monkeypatch.delenv("FAKE_DOWN")
    r2 = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "20")
    assert r2.exit_code == 0, r2.stderr
    assert "1 to create, 1 to keep" in r2.stdout
    assert sorted(x["region"] for x in fake.live(env / "fake", "demo")) == ["fake:zone-a", "fake:zone-b"]


def test_replacement_deletes_the_old_replica_only_after_the_new_one_is_healthy(env: Path) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    assert orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db)).exit_code == 0
    old = fake.live(env / "fake", "demo")
    sha = __import__("hashlib").sha256(spec.read_bytes()).hexdigest()
    fake.write_plan(plan, "demo", sha, {"chat": [[fake.group("fake:zone-b", 1, "fake-2x")]]})
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "30")
    assert r.exit_code == 0, r.stderr
    assert "1 to create, 0 to keep, 0 to adopt, 1 to delete" in r.stdout
    out = r.stderr
    assert out.index("healthy: demo-chat-") < out.index("deleted demo-chat-")
    now = fake.live(env / "fake", "demo")
    assert len(now) == 1 and now[0]["region"] == "fake:zone-b" and now[0]["id"] != old[0]["id"]
    rows = state_rows(db)
    assert sorted(r["status"] for r in rows.values()) == ["running", "terminated"]


def test_unhealthy_replacement_keeps_the_old_replica(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    assert orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db)).exit_code == 0
    sha = __import__("hashlib").sha256(spec.read_bytes()).hexdigest()
    fake.write_plan(plan, "demo", sha, {"chat": [[fake.group("fake:zone-b", 1, "fake-2x")]]})
    monkeypatch.setattr("orchestrator.apply.readiness.check_health",
                        lambda endpoint, timeout_s=3.0, client=None: False)  # the new server never gets healthy
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db), "--timeout", "1")
    assert r.exit_code == 3
    assert "kept until its replacements are healthy" in r.stderr
    assert sorted(x["region"] for x in fake.live(env / "fake", "demo")) == ["fake:zone-a", "fake:zone-b"]


def test_adopts_labelled_resources_state_does_not_know(env: Path) -> None:
    """A resource made by a run that died before recording it: found by labels, adopted, not duplicated."""
    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    from orchestrator.apply.desired import desired_replicas
    from orchestrator.plan import Plan

    d = desired_replicas(Plan.model_validate_json(plan.read_text()))[0]
    provider = fake.FakeProvider(env / "fake", "fake:zone-a")
    provider.launch(d.container(), d.placement())
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db))
    assert r.exit_code == 0, r.stderr
    assert "0 to create, 0 to keep, 1 to adopt" in r.stdout
    assert len(fake.live(env / "fake", "demo")) == 1
    assert state_rows(db)[d.id]["status"] == "running"
    assert [j["action"] for j in journal(db)] == ["adopt"]


def test_a_held_lock_is_refused_and_break_lock_takes_it(env: Path) -> None:
    import sqlite3
    from datetime import datetime, timedelta, timezone

    spec, plan, db = setup_files(env, {"chat": [[fake.group("fake:zone-a", 1)]]})
    assert orch("apply", str(spec), "--plan", str(plan), "--dry-run").exit_code == 0
    orch("status", "--state", str(db))  # creates the database
    long_ago = (datetime.now(timezone.utc) - timedelta(hours=3)).isoformat(sep=" ")
    con = sqlite3.connect(db)
    con.execute("insert into locks values ('demo', 'build-host-7:4242', ?, ?)", (long_ago, long_ago))
    con.commit()
    con.close()
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--state", str(db))
    assert r.exit_code == 1
    assert "locked by another apply/destroy: held by build-host-7:4242" in r.stderr and "(3h00m ago" in r.stderr
    assert "--break-lock" in r.stderr and fake.live(env / "fake") == []
    r = orch("apply", str(spec), "--plan", str(plan), "--yes", "--break-lock", "--state", str(db))
    assert r.exit_code == 0, r.stderr
    assert "warning: removing the lock on project 'demo' held by build-host-7:4242" in r.stderr
    assert len(fake.live(env / "fake", "demo")) == 1


def test_apply_and_destroy_with_state_in_postgresql(env: Path, request: pytest.FixtureRequest,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same journaled apply with ORCH_STATE_URL pointing at PostgreSQL (skipped where none is installed)."""
    base = request.getfixturevalue("postgres")
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS apply_e2e")
        con.execute("CREATE DATABASE apply_e2e")
    monkeypatch.setenv("ORCH_STATE_URL", base.rsplit("/", 1)[0] + "/apply_e2e")
    spec, plan, _ = setup_files(env, {"chat": [[fake.group("fake:zone-a", 2)]]})
    r = orch("apply", str(spec), "--plan", str(plan), "--yes")
    assert r.exit_code == 0, r.stderr
    again = orch("apply", str(spec), "--plan", str(plan), "--yes")
    assert "0 to create, 2 to keep" in again.stdout
    assert len(fake.live(env / "fake", "demo")) == 2
    gone = orch("destroy", "--yes")
    assert gone.exit_code == 0, gone.stderr
    assert fake.live(env / "fake", "demo") == []
    from sqlalchemy import create_engine, text

    engine = create_engine(base.rsplit("/", 1)[0] + "/apply_e2e")
    with engine.connect() as con:
        assert con.execute(text("select count(*) from replicas where status = 'terminated'")).scalar() == 2
        assert con.execute(text("select count(*) from journal where status = 'intent'")).scalar() == 0
    engine.dispose()
