"""A damaged state database (a table dropped, a value that is not JSON) is one clear line, never a traceback, and
nothing changes (issue 20, item 2: status, apply and destroy crashed, report exited 0 saying nothing)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"


def _state(path: Path) -> None:
    from orchestrator.state import store
    from orchestrator.state.db import open_state

    with open_state(str(path)) as db, db.session() as s:
        store.upsert_replica(s, "r1", project="quickstart", deployment="support-chat", team=None, model="m",
                             provider="aws", region="aws:us-east-1", instance_type="x", gpu="H100", gpu_count=1,
                             market="on_demand", usd_per_hour=1.0, list_usd_per_hour=1.0, plan_id="p", group_key="g",
                             status="running", details={"a": 1})


@pytest.mark.parametrize("damage, says", [
    ("drop table replicas", "table(s) replicas missing"),
    ("update replicas set details = '{not json'", "damaged value where JSON belongs"),
])
@pytest.mark.parametrize("command", [["status"], ["report"], ["destroy", str(EXAMPLE), "--yes"],
                                     ["apply", str(EXAMPLE), "--yes"]])
def test_a_damaged_state_is_one_clear_line(tmp_path: Path, damage: str, says: str, command: list[str]) -> None:
    db = tmp_path / "state.db"
    _state(db)
    with sqlite3.connect(db) as c:
        c.execute(damage)
    before = _rows(db)
    r = CliRunner().invoke(app, [*command, "--state", str(db)])
    assert r.exit_code == 1, r.output
    assert says in r.stderr and "Traceback" not in r.output
    assert _rows(db) == before  # nothing changed (apply and destroy took and released their lock)


def _rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as c:
        return [line for line in c.iterdump() if "INSERT INTO \"locks\"" not in line]
