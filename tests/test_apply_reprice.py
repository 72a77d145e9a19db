"""A price change (a new discount, a new local $/h) applies from the apply that made it; past hours keep theirs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import test_apply_fakeprovider as fake
from orchestrator.cli.main import app

fake.register()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path / "fake"))
    for var in ("FAKE_NO_CAPACITY", "FAKE_QUOTA", "FAKE_DOWN", "ORCH_STATE_URL"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    fake.kill_all(tmp_path / "fake")


def _apply(tmp: Path, spec: Path, sha: str, usd: float) -> str:
    fake.write_plan(tmp / "plan.json", "demo", sha, {"chat": [[fake.group("fake:zone-a", 1, usd=usd)]]})
    r = CliRunner().invoke(app, ["apply", str(spec), "--plan", str(tmp / "plan.json"), "--yes",
                                 "--state", str(tmp / "state.db")])
    assert r.exit_code == 0, r.stderr
    return r.stderr + r.stdout


def _periods(db: Path) -> list[tuple[float, float | None, float]]:
    from orchestrator.metering.store import open_engine, to_epoch
    from orchestrator.state.models import BillingPeriod

    engine = open_engine(str(db))
    t = BillingPeriod.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.start)).all()
    return [(to_epoch(r.start), to_epoch(r.end), r.usd_per_hour) for r in rows]  # type: ignore[misc]


def test_new_price_applies_from_the_apply_and_old_hours_keep_theirs(env: Path) -> None:
    from orchestrator.metering.store import open_engine
    from orchestrator.reports.aggregate import build_report

    tmp = env
    spec = tmp / "deploy.yaml"
    sha = fake.write_spec(spec, "demo", ["chat"])
    _apply(tmp, spec, sha, usd=3.6)
    (pid_before,) = [x["pid"] for x in fake.live(tmp / "fake")]
    time.sleep(0.5)
    out = _apply(tmp, spec, sha, usd=4.8)
    assert "3.60 -> 4.80" in out and "from now on" in out
    assert [x["pid"] for x in fake.live(tmp / "fake")] == [pid_before]  # kept, not relaunched

    (s1, e1, p1), (s2, e2, p2) = _periods(tmp / "state.db")
    assert (p1, p2) == (3.6, 4.8) and e1 == s2 and e2 is None and e1 - s1 >= 0.5

    now = time.time() + 3600  # an hour later: the new price for that hour, the old one before
    report = build_report(open_engine(str(tmp / "state.db")), 0, now + 1, "deployment", now=now,
                          capacity=lambda r: None)
    want = (e1 - s1) / 3600 * 3.6 + (now - s2) / 3600 * 4.8
    assert report.total.compute_usd == pytest.approx(want, rel=1e-9)
    assert report.total.hours == pytest.approx((now - s1) / 3600, rel=1e-9)

    # the same price again changes nothing
    assert "from now on" not in _apply(tmp, spec, sha, usd=4.8)
    assert len(_periods(tmp / "state.db")) == 2


def test_a_relaunched_replica_id_keeps_its_first_life_billed(env: Path) -> None:
    tmp = env
    spec = tmp / "deploy.yaml"
    sha = fake.write_spec(spec, "demo", ["chat"])
    _apply(tmp, spec, sha, usd=1.0)
    r = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(tmp / "state.db")])
    assert r.exit_code == 0, r.stderr
    (s1, e1, _), = _periods(tmp / "state.db")
    assert e1 is not None and e1 > s1
    _apply(tmp, spec, sha, usd=2.0)  # the same replica id again
    (a, b, p1), (c, d, p2) = _periods(tmp / "state.db")
    assert (a, b, p1) == (s1, e1, 1.0) and c >= e1 and d is None and p2 == 2.0
