"""`orch destroy`: everything the project created, found by labels (not only by state), journaled."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import test_apply_fakeprovider as fake
from orchestrator.cli.main import app

fake.register()


@pytest.fixture
def applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield fake.apply_demo(tmp_path, monkeypatch)
    fake.kill_all(tmp_path / "fake")


def _orphan(tmp: Path) -> None:
    """A labelled replica state never heard of (e.g. made by a lost state file)."""
    from providers.base import Placement

    from containers.spec import ContainerSpec

    p = Placement(project="demo", deployment="chat", plan_id="pold", replica="demo-chat-old-0",
                  region="fake:zone-a", instance_type="fake-1x", gpu="L4", gpu_count=1)
    fake.FakeProvider(tmp / "fake", "fake:zone-a").launch(ContainerSpec(name="x", image="x"), p)


def test_destroy_removes_everything_including_orphans(applied) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    _orphan(tmp)
    fake.FakeProvider(tmp / "fake", "fake:zone-a").launch(  # another project's replica must survive
        __import__("containers.spec").spec.ContainerSpec(name="y", image="y"),
        __import__("providers.base").base.Placement(project="other", deployment="chat", plan_id="p", replica="other-0",
                                                    region="fake:zone-a", instance_type="t", gpu="L4", gpu_count=1))
    assert len(fake.live(tmp / "fake", "demo")) == 4
    r = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(db)])
    assert r.exit_code == 0, r.stderr
    assert "4 to delete" in r.stdout and "demo-chat-old-0" in r.stdout
    assert fake.live(tmp / "fake", "demo") == []
    assert len(fake.live(tmp / "fake", "other")) == 1
    con = sqlite3.connect(db)
    statuses = {rid: (s, t) for rid, s, t in con.execute("select id, status, terminated_at from replicas")}
    terms = con.execute("select count(*) from journal where action='terminate' and status='done'").fetchone()[0]
    adopts = con.execute("select replica_id from journal where action='adopt'").fetchall()
    con.close()
    assert len(statuses) == 4 and all(s == "terminated" and t for s, t in statuses.values())
    assert terms == 4 and adopts == [("demo-chat-old-0",)]
    again = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(db)])
    assert again.exit_code == 0 and "nothing to destroy" in again.stderr


def test_destroy_one_deployment_and_needs_confirmation(applied) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    r = CliRunner().invoke(app, ["destroy", "--deployment", "batch", "--state", str(db)])  # no FILE, no --yes
    assert r.exit_code == 1 and "--yes" in r.stderr
    assert len(fake.live(tmp / "fake", "demo")) == 3
    r = CliRunner().invoke(app, ["destroy", "--deployment", "batch", "--yes", "--state", str(db)])
    assert r.exit_code == 0, r.stderr
    assert sorted(x["region"] for x in fake.live(tmp / "fake", "demo")) == ["fake:zone-a", "fake:zone-a"]
    r = CliRunner().invoke(app, ["destroy", "--deployment", "chta", "--yes", "--state", str(db)])
    assert r.exit_code == 1 and "no deployment 'chta'" in r.stderr and "chat" in r.stderr


def test_destroy_with_an_unreachable_provider_is_incomplete_and_rerunnable(applied, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tmp, spec, db = applied
    monkeypatch.setenv("FAKE_DOWN", "fake:zone-b")
    r = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(db)])
    assert r.exit_code == 3 and "destroy is incomplete" in r.stderr
    assert [x["region"] for x in fake.live(tmp / "fake", "demo")] == ["fake:zone-b"]
    monkeypatch.delenv("FAKE_DOWN")
    r = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(db)])
    assert r.exit_code == 0, r.stderr
    assert fake.live(tmp / "fake", "demo") == []
