"""Crash safety: SIGKILL `orch apply` at every journal checkpoint, rerun it, and count what exists.

The fake provider is not idempotent, so a rerun that relaunched instead of adopting would leave duplicates.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

import test_apply_fakeprovider as fake


def _env(tmp: Path) -> dict[str, str]:
    return {"FAKE_STATE_DIR": str(tmp / "fake"), "ORCH_STATE_DIR": str(tmp / "orch"), "ORCH_FAULT_AT": "",
            "ORCH_FAULT_LOG": "", "FAKE_NO_CAPACITY": "", "FAKE_DOWN": "", "FAKE_QUOTA": ""}


def _apply(tmp: Path, env: dict[str, str], **extra: str):  # type: ignore[no-untyped-def]
    return fake.run_orch(["apply", str(tmp / "deploy.yaml"), "--plan", str(tmp / "plan.json"), "--yes",
                          "--state", str(tmp / "state.db"), "--timeout", "30"], {**env, **extra})


def _check_converged(tmp: Path, want_regions: list[str]) -> None:
    live = fake.live(tmp / "fake", "crash")
    labels = [x["labels"]["orch-replica"] for x in live]
    assert len(labels) == len(set(labels)), f"duplicates: {labels}"
    assert sorted(x["region"] for x in live) == sorted(want_regions)
    con = sqlite3.connect(tmp / "state.db")
    rows = {rid: (status, handle) for rid, status, handle in
            con.execute("select id, status, handle_id from replicas where status != 'terminated'")}
    pending = con.execute("select count(*) from journal where status = 'intent'").fetchone()[0]
    locks = con.execute("select count(*) from locks").fetchone()[0]
    con.close()
    assert rows == {x["labels"]["orch-replica"]: ("running", x["id"]) for x in live}
    assert pending == 0 and locks == 0


def _files(tmp: Path, groups: list[dict]) -> None:
    sha = fake.write_spec(tmp / "deploy.yaml", "crash", ["chat"])
    fake.write_plan(tmp / "plan.json", "crash", sha, {"chat": [groups]})


def test_a_clean_run_passes_three_checkpoints_per_launch(tmp_path: Path) -> None:
    _files(tmp_path, [fake.group("fake:zone-a", 2)])
    log = tmp_path / "checkpoints.log"
    try:
        r = _apply(tmp_path, _env(tmp_path), ORCH_FAULT_LOG=str(log))
        assert r.returncode == 0, r.stderr
        steps = [line.split(" ", 2)[1] for line in log.read_text().splitlines()]
        assert steps == ["launch-intent", "launched", "launch-done"] * 2
    finally:
        fake.kill_all(tmp_path / "fake")


@pytest.mark.parametrize("step", range(1, 7))
def test_kill_during_launches_then_rerun_converges_without_duplicates(tmp_path: Path, step: int) -> None:
    _files(tmp_path, [fake.group("fake:zone-a", 2)])
    env = _env(tmp_path)
    try:
        crashed = _apply(tmp_path, env, ORCH_FAULT_AT=str(step))
        assert crashed.returncode == -9, crashed.stderr  # really SIGKILLed
        rerun = _apply(tmp_path, env)
        assert rerun.returncode == 0, rerun.stderr
        assert "its process is gone" in rerun.stderr  # the dead run's lock is taken over
        if step % 3 == 2:  # killed after the provider call, before recording it: adopted by labels
            assert "adopted crash-chat-" in rerun.stderr
        _check_converged(tmp_path, ["fake:zone-a", "fake:zone-a"])
        con = sqlite3.connect(tmp_path / "state.db")
        details = [d for (d,) in con.execute("select detail from journal where detail like 'interrupted run%'")]
        con.close()
        if step % 3 != 0:  # killed between an intent and its outcome
            assert details, "the interrupted intent was resolved and explained"
    finally:
        fake.kill_all(tmp_path / "fake")


@pytest.mark.parametrize("step", [4, 5, 6])
def test_kill_during_the_delete_of_a_replaced_replica(tmp_path: Path, step: int) -> None:
    """Plan A on zone-a, then plan B on zone-b: killed while deleting the old replica (checkpoints 4-6)."""
    _files(tmp_path, [fake.group("fake:zone-a", 1)])
    env = _env(tmp_path)
    try:
        assert _apply(tmp_path, env).returncode == 0
        sha = hashlib.sha256((tmp_path / "deploy.yaml").read_bytes()).hexdigest()
        fake.write_plan(tmp_path / "plan.json", "crash", sha, {"chat": [[fake.group("fake:zone-b", 1, "fake-2x")]]})
        crashed = _apply(tmp_path, env, ORCH_FAULT_AT=str(step))
        assert crashed.returncode == -9, crashed.stderr
        rerun = _apply(tmp_path, env)
        assert rerun.returncode == 0, rerun.stderr
        _check_converged(tmp_path, ["fake:zone-b"])
        plan = json.loads((tmp_path / "plan.json").read_text())
        assert plan["deployments"][0]["replicas"][0]["region"] == "fake:zone-b"
    finally:
        fake.kill_all(tmp_path / "fake")
