"""Hourly rollup, storage, and the scrape loop against real HTTP (pytest-httpserver) with real metrics texts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from orchestrator.metering import tables as T
from orchestrator.metering.meter import meter_once
from orchestrator.metering.rollup import rollup
from orchestrator.metering.scrape import COUNTERS, GAUGES, Sample
from orchestrator.metering.store import open_engine, record_samples, running_replicas, usage_by_replica_day

FIX = Path(__file__).parent / "fixtures" / "metrics"
GEN = COUNTERS.index("generation_tokens")
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc).timestamp()


def counters(gen: float, prompt: float = 0.0) -> dict[str, float]:
    return dict.fromkeys(COUNTERS, 0.0) | {"generation_tokens": gen, "prompt_tokens": prompt}


def sample(ts: float, gen: float, prompt: float = 0.0, ok: bool = True, rid: str = "r1") -> Sample:
    if not ok:
        return Sample(rid, ts, ok=False, error="ConnectError: refused")
    return Sample(rid, ts, ok=True, counters=counters(gen, prompt), gauges=dict.fromkeys(GAUGES, 1.0))


@pytest.fixture()
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    return open_engine(tmp_path / "state.db")


def add_replica(engine, rid: str, endpoint: str | None, status: str = "running") -> None:  # type: ignore[no-untyped-def]
    from orchestrator.state.models import Replica

    with engine.begin() as c:
        c.execute(insert(Replica.__table__).values(
            id=rid, project="p", deployment="d", team="t", model="tiny", provider="local", region="local:this-machine",
            instance_type="this-machine", gpu="CPU", gpu_count=1, market="on_demand", usd_per_hour=1.0,
            list_usd_per_hour=1.0, plan_id="p1", group_key="g", endpoint=endpoint, status=status,
            created_at=datetime.fromtimestamp(T0, timezone.utc), details={},
        ))


def test_migration_created_metering_tables(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    from orchestrator.state.db import current_revision, head_revision

    assert set(T.METERING_TABLES) <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == head_revision()  # 0002_metering made them; later revisions keep them


def test_reset_gap_and_hour_buckets(engine) -> None:  # type: ignore[no-untyped-def]
    seq = [
        sample(T0 + 0, 100),  # first sample: baseline zero, so 100 tokens since the server started
        sample(T0 + 15, 160),
        sample(T0 + 30, 0, ok=False),  # gap: recorded, not zero usage
        sample(T0 + 45, 200),
        sample(T0 + 3600, 30),  # restart: counter fell, so +30 (not -170)
        sample(T0 + 3615, 50),
    ]
    record_samples(engine, seq[:3])
    record_samples(engine, seq[3:])  # the cursor carries over between calls
    with engine.connect() as c:
        rows = {r.hour: r for r in c.execute(select(T.usage_hourly))}
        raw = c.execute(select(func.count()).select_from(T.metric_samples)).scalar()
        errs = c.execute(select(T.metric_samples.c.error).where(T.metric_samples.c.ok.is_(False))).scalars().all()
    assert raw == 6 and errs == ["ConnectError: refused"]
    h0, h1 = int(T0), int(T0) + 3600
    assert rows[h0].generation_tokens == 200 and rows[h0].samples_err == 1 and rows[h0].samples_ok == 3
    assert rows[h0].covered_seconds == 45
    assert rows[h1].generation_tokens == 30 + 20 and rows[h1].resets == 1
    days = usage_by_replica_day(engine, T0 - 86400, T0 + 86400)
    assert len(days) == 1 and days[0].counters["generation_tokens"] == 250 and days[0].samples_err == 1


def test_restart_detected_by_creation_time_even_when_counters_climb_back() -> None:
    c = np.zeros((2, len(COUNTERS)))
    c[:, GEN] = [100, 150]  # 100 before the restart, then 150 new tokens: no counter went down
    g = np.zeros((2, len(GAUGES)))
    h, _ = rollup(np.array([T0, T0 + 15]), np.ones(2, bool), c, g, None, np.array([T0 - 50, T0 + 5]))
    assert h.counters[:, GEN].sum() == 250 and h.resets.sum() == 1
    h, _ = rollup(np.array([T0, T0 + 15]), np.ones(2, bool), c, g, None)  # without creation times: +50 only
    assert h.counters[:, GEN].sum() == 150


def test_real_capture_carries_counter_creation_time() -> None:
    from orchestrator.metering.scrape import sample_from_text

    s = sample_from_text("r", (FIX / "vllm-0.32-cpu-idle.txt").read_text())
    assert s.started_at > 1.7e9


def test_out_of_order_samples_are_sorted() -> None:
    ts = np.array([T0 + 30, T0, T0 + 15])
    c = np.zeros((3, len(COUNTERS)))
    c[:, GEN] = [30, 0, 15]
    h, cur = rollup(ts, np.ones(3, bool), c, np.zeros((3, len(GAUGES))), None)
    assert h.counters[:, GEN].sum() == 30 and h.resets.sum() == 0 and cur.ts == T0 + 30


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 500), st.booleans(), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 5),
)
def test_total_equals_tokens_served_across_restarts_and_gaps(steps, chunks) -> None:  # type: ignore[no-untyped-def]
    """Whatever the restarts, gaps and batching, the rollup counts every token served exactly once,
    as long as each restart is framed by good samples (counters cannot tell what was served between
    the last scrape and a crash)."""
    ts, ok, gen, served, started = [], [], [], [], []
    value = total_served = 0
    start_time = T0 - 100.0
    pending_restart = False
    for i, (inc, restart, good) in enumerate(steps):
        if restart and not pending_restart and value > 0:
            value, pending_restart = 0, True
            start_time += 1000.0  # the new process creates its counters anew (vllm:*_created)
            ok[-1] = True  # tokens served after the last scrape before a restart are unknowable
        value += inc
        total_served += inc
        if pending_restart:
            good = True  # the first sample after a restart must be seen, or the reset hides itself
            pending_restart = False
        ts.append(T0 + 15 * i)
        ok.append(good)
        gen.append(value)
        served.append(total_served)
        started.append(start_time)
    if not any(ok):
        return
    expected = served[max(i for i, g in enumerate(ok) if g)]  # everything served up to the last good sample
    c = np.zeros((len(ts), len(COUNTERS)))
    c[:, GEN] = gen
    g = np.zeros((len(ts), len(GAUGES)))
    total, cursor = 0.0, None
    for idx in np.array_split(np.arange(len(ts)), chunks):
        if len(idx) == 0:
            continue
        h, cursor = rollup(np.array(ts)[idx], np.array(ok)[idx], c[idx], g[idx], cursor, np.array(started)[idx])
        total += h.counters[:, GEN].sum()
        assert (h.counters >= 0).all()
    assert total == expected


def test_meter_once_scrapes_real_http_and_records_gaps(engine, httpserver) -> None:  # type: ignore[no-untyped-def]
    httpserver.expect_request("/metrics").respond_with_data(
        (FIX / "vllm-0.32-cpu-after-5-requests.txt").read_text(), content_type="text/plain"
    )
    httpserver.expect_request("/bad/metrics").respond_with_data((FIX / "garbage-502.html").read_text(), status=200)
    add_replica(engine, "good-0", httpserver.url_for("/").rstrip("/"))
    add_replica(engine, "garbage-0", httpserver.url_for("/bad"))
    add_replica(engine, "down-0", "http://127.0.0.1:9")  # discard port: connection refused
    add_replica(engine, "gone-0", "http://127.0.0.1:9", status="terminated")
    assert {r.id for r in running_replicas(engine)} == {"good-0", "garbage-0", "down-0"}
    samples = {s.replica_id: s for s in meter_once(engine, timeout=2.0)}
    assert samples["good-0"].ok and samples["good-0"].counters["generation_tokens"] == 160
    assert not samples["garbage-0"].ok and "invalid" in samples["garbage-0"].error
    assert not samples["down-0"].ok and "Connect" in samples["down-0"].error
    with engine.connect() as c:
        hourly = {r.replica_id: r for r in c.execute(select(T.usage_hourly))}
    assert hourly["good-0"].generation_tokens == 160
    assert hourly["down-0"].generation_tokens == 0 and hourly["down-0"].samples_err == 1
    assert hourly["garbage-0"].samples_ok == 0


def test_meter_cli_once(tmp_path: Path, httpserver) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    httpserver.expect_request("/metrics").respond_with_data((FIX / "vllm-0.32-cpu-idle.txt").read_text())
    db = tmp_path / "s.db"
    add_replica(open_engine(db), "r-0", httpserver.url_for("/").rstrip("/"))
    res = CliRunner().invoke(app, ["meter", "--once", "--state", str(db)])
    assert res.exit_code == 0, res.output
    assert "1 ok, 0 gap(s)" in res.output


def test_run_loop_keeps_cadence(engine, httpserver) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.metering.meter import run

    httpserver.expect_request("/metrics").respond_with_data((FIX / "vllm-0.32-cpu-idle.txt").read_text())
    add_replica(engine, "r-0", httpserver.url_for("/").rstrip("/"))
    slept: list[float] = []
    seen: list[int] = []
    run(engine, 15.0, iterations=3, sleep=slept.append, on_samples=lambda ss: seen.append(len(ss)))
    # the fake sleep returns at once, so a drift-free schedule owes 15 s, then 30 s, minus scrape time
    assert seen == [1, 1, 1] and len(slept) == 2
    assert 10 < slept[0] <= 15.0 and slept[1] - slept[0] == pytest.approx(15.0, abs=2.0)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(T.metric_samples)).scalar() == 3
