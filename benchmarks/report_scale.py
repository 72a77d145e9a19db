"""Scale: a month of 15-second samples from 200 replicas (~34.6 M samples) -> the monthly report.

Design measured here: the scraper never stores raw samples long-term. Each replica's samples are
rolled (vectorised, orchestrator.metering.rollup) into one row per replica per UTC hour in
``usage_hourly`` (200 x 720 = 144k rows a month); raw samples are kept only for a retention window.
The monthly report is then one GROUP BY over usage_hourly plus the replicas table.

    .venv/bin/python benchmarks/report_scale.py [--replicas 200] [--days 30] [--raw-probe 1000000]

``--raw-probe N`` also times inserting N raw sample rows, to show why raw rows are not the design.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.metering.scrape import COUNTERS, GAUGES  # noqa: E402

INTERVAL = 15.0
START = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
IDX = {c: i for i, c in enumerate(COUNTERS)}
PROVIDERS = [("aws", "aws:us-east-1", "g6e.xlarge", "L40S", 1.861), ("gcp", "gcp:us-central1", "g2-standard-8", "L4", 0.85),
             ("azure", "azure:eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 3.673), ("onprem", "onprem:dc-frankfurt", "dgx-h100", "H100-SXM", 10.33)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synth(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """One replica-month of samples: jittered 15 s cadence, 0.1% failed scrapes, one restart."""
    ts = START + np.arange(n) * INTERVAL + rng.uniform(0, 0.5, n)
    ok = rng.random(n) > 0.001
    ok[-1] = True
    restart = int(rng.integers(n // 4, 3 * n // 4))
    ok[restart - 1] = ok[restart] = True  # framed by good scrapes, so nothing is lost
    gen_inc = rng.poisson(900, n).astype(np.float64)  # ~60 output tok/s
    prompt_inc = gen_inc * 4
    counters = np.zeros((n, len(COUNTERS)))
    for name, inc in (("generation_tokens", gen_inc), ("prompt_tokens", prompt_inc), ("requests", gen_inc / 250),
                      ("prefill_time_sum", prompt_inc * 2e-5), ("decode_time_sum", gen_inc * 2e-4)):
        cum = np.cumsum(inc)
        cum[restart:] -= cum[restart - 1]  # the server restarted just before sample `restart`
        counters[:, IDX[name]] = cum
    gauges = np.column_stack([rng.integers(0, 16, n), rng.integers(0, 3, n), rng.random(n)]).astype(np.float64)
    started = np.where(np.arange(n) < restart, START - 60, START + restart * INTERVAL - 5)
    return ts, ok, counters, gauges, started, float(gen_inc.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--state", default=None, help="database URL or SQLite path (default: a temp file)")
    ap.add_argument("--raw-probe", type=int, default=0, help="also time inserting this many raw sample rows")
    args = ap.parse_args()

    from sqlalchemy import insert

    from orchestrator.metering import tables as T
    from orchestrator.metering.store import ingest, open_engine
    from orchestrator.reports.aggregate import build_report
    from orchestrator.state.models import Replica

    tmp = tempfile.mkdtemp(prefix="orch-scale-")
    state = args.state or os.path.join(tmp, "state.db")
    engine = open_engine(state)
    n = int(args.days * 86400 / INTERVAL)
    end = START + args.days * 86400
    rng = np.random.default_rng(7)

    with engine.begin() as conn:
        rows = []
        for i in range(args.replicas):
            prov, region, itype, gpu, usd = PROVIDERS[i % len(PROVIDERS)]
            rows.append(dict(
                id=f"dep{i % 20}-{i}", project="scale", deployment=f"dep{i % 20}", team=f"team{i % 5}", model="llama-3.1-8b",
                provider=prov, region=region, instance_type=itype, gpu=gpu, gpu_count=1,
                market="spot" if i % 7 == 0 else ("onprem" if prov == "onprem" else "on_demand"),
                usd_per_hour=usd, list_usd_per_hour=usd, plan_id="p", group_key="g", endpoint=None, status="terminated",
                created_at=datetime.fromtimestamp(START, timezone.utc), terminated_at=datetime.fromtimestamp(end, timezone.utc),
                details={},
            ))
        conn.execute(insert(Replica.__table__), rows)

    t_gen = t_ingest = 0.0
    expected_gen = 0.0
    hourly_rows = 0
    t0 = time.perf_counter()
    for i in range(args.replicas):
        a = time.perf_counter()
        ts, ok, counters, gauges, started, gen_total = synth(rng, n)
        b = time.perf_counter()
        with engine.begin() as conn:
            hourly_rows += ingest(conn, rows[i]["id"], ts, ok, counters, gauges, started)
        t_gen += b - a
        t_ingest += time.perf_counter() - b
        expected_gen += gen_total
    t_total_ingest = time.perf_counter() - t0

    t1 = time.perf_counter()
    report = build_report(engine, START, end, by="deployment", now=end)
    t_report = time.perf_counter() - t1
    t2 = time.perf_counter()
    by_team = build_report(engine, START, end, by="team", now=end)
    t_report2 = time.perf_counter() - t2
    # the HTML report with every section: headline, budget and forecast, trend, breakdowns, showback, anomalies
    from orchestrator.reports.finance import compute_finance
    from orchestrator.reports.html import render_html

    t3 = time.perf_counter()
    from_state = build_report(engine, START, end, by="deployment", now=START + (args.days - 3) * 86400)  # 3 days left
    t_html_report = time.perf_counter() - t3
    finance = compute_finance(from_state, monthly_budget_usd=650_000.0)
    t_finance = time.perf_counter() - t3 - t_html_report
    page = render_html(from_state, finance, recommendations=[])
    t_html = time.perf_counter() - t3

    samples = n * args.replicas
    size_mb = os.path.getsize(state) / 1e6 if "://" not in state and os.path.exists(state) else float("nan")
    print(f"samples:            {samples:,} ({args.replicas} replicas x {args.days} days x {86400 / INTERVAL:.0f}/day)")
    print(f"hourly rows:        {hourly_rows:,}")
    print(f"synthesise samples: {t_gen:6.2f} s (test data, not part of the design)")
    print(f"rollup + insert:    {t_ingest:6.2f} s  ({samples / t_ingest / 1e6:.1f} M samples/s)")
    print(f"ingest wall:        {t_total_ingest:6.2f} s")
    print(f"monthly report:     {t_report:6.2f} s by deployment ({len(report.rows)} rows, {len(report.lines):,} replica-days); "
          f"{t_report2:.2f} s by team")
    print(f"HTML report:        {t_html:6.2f} s from rolled-up state, every section ({t_html_report:.2f} s report, "
          f"{t_finance:.2f} s finance, {t_html - t_html_report - t_finance:.2f} s render; {len(page) / 1e3:.0f} kB): "
          f"{'under' if t_html < 3 else 'OVER'} the 3 s target")
    print(f"peak RSS:           {rss_mb():6.0f} MB")
    print(f"state size:         {size_mb:6.1f} MB")
    print(f"total cost:         ${report.total.cost_usd:,.2f}; {report.total.output_tokens:,.0f} output tokens "
          f"(generated {expected_gen:,.0f}); $/1M tokens {report.total.usd_per_m_tokens:.4f}; "
          f"utilization {report.total.utilization if report.total.utilization is None else f'{report.total.utilization:.1%}'}")
    assert abs(report.total.output_tokens - expected_gen) < 1e-6 * expected_gen, "tokens lost or double counted"
    assert len(by_team.rows) == min(5, args.replicas)

    if args.raw_probe:
        k = args.raw_probe
        ts, ok, counters, gauges, started, _ = synth(rng, k)
        recs = [
            {"replica_id": "probe", "ts": float(t), "ok": bool(o), "error": None, "started_at": float(s),
             **dict(zip(COUNTERS, c.tolist())), **dict(zip(GAUGES, g.tolist()))}
            for t, o, c, g, s in zip(ts, ok, counters, gauges, started)
        ]
        t3 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(T.metric_samples.insert(), recs)
        dt = time.perf_counter() - t3
        print(f"raw probe:          {k:,} raw rows in {dt:.2f} s ({k / dt / 1e3:.0f} k rows/s): "
              f"34.6 M raw rows would take ~{34.56e6 / (k / dt):.0f} s, hence hourly rollup at ingest")


if __name__ == "__main__":
    main()
