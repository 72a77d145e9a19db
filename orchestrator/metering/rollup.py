"""Turn a replica's samples into hourly usage buckets, vectorised with numpy.

The same code serves the live scraper (a handful of samples per call) and bulk ingest
(benchmarks/report_scale.py: 172,800 samples per replica-month).

Rules: deltas are taken between consecutive *good* samples; a counter below its previous value
(or a changed counter creation time) means the server restarted, so the interval's increase is
the new values; the interval is
attributed to the UTC hour its end falls in; failed samples only count as errors (gaps).
With no previous sample the baseline is zero: vLLM counters start at zero with the server, so the
first sample covers the time since the server started (its counters' creation time, when exported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.metering.scrape import COUNTERS, GAUGES


@dataclass
class Cursor:
    """The last good sample of a replica."""

    ts: float
    counters: np.ndarray  # shape (len(COUNTERS),)
    started_at: float = 0.0


@dataclass
class Hourly:
    """Hourly buckets of one replica. Arrays are aligned on ``hours``."""

    hours: np.ndarray  # int64 unix seconds of the hour start
    samples_ok: np.ndarray
    samples_err: np.ndarray
    resets: np.ndarray
    covered_seconds: np.ndarray
    counters: np.ndarray  # (H, len(COUNTERS))
    gauge_sums: np.ndarray  # (H, len(GAUGES))

    def rows(self, replica_id: str) -> list[dict]:
        out = []
        for i, h in enumerate(self.hours.tolist()):
            row = {
                "replica_id": replica_id,
                "hour": int(h),
                "samples_ok": int(self.samples_ok[i]),
                "samples_err": int(self.samples_err[i]),
                "resets": int(self.resets[i]),
                "covered_seconds": float(self.covered_seconds[i]),
            }
            row.update(zip(COUNTERS, self.counters[i].tolist()))
            row.update(zip((f"{g}_sum" for g in GAUGES), self.gauge_sums[i].tolist()))
            out.append(row)
        return out


def rollup(
    ts: np.ndarray,
    ok: np.ndarray,
    counters: np.ndarray,
    gauges: np.ndarray,
    cursor: Cursor | None,
    started: np.ndarray | None = None,
) -> tuple[Hourly, Cursor | None]:
    """Hourly buckets of samples, and the new cursor (last good sample).

    ``started``: per sample, when its counters were created (0 = unknown); a change means a restart.
    """
    ts = np.asarray(ts, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    started = np.zeros(len(ts)) if started is None else np.asarray(started, dtype=np.float64)
    counters = np.asarray(counters, dtype=np.float64).reshape(len(ts), len(COUNTERS))
    gauges = np.asarray(gauges, dtype=np.float64).reshape(len(ts), len(GAUGES))
    if len(ts) > 1 and (np.diff(ts) < 0).any():
        order = np.argsort(ts, kind="stable")
        ts, ok, counters, gauges, started = ts[order], ok[order], counters[order], gauges[order], started[order]

    g_ts, g_c, g_g, g_s = ts[ok], counters[ok], gauges[ok], started[ok]
    ng = len(g_ts)
    base_c = cursor.counters if cursor else np.zeros(len(COUNTERS))
    d = np.empty_like(g_c)
    secs = np.empty(ng)
    if ng:
        d[0] = g_c[0] - base_c
        np.subtract(g_c[1:], g_c[:-1], out=d[1:])
        # with no previous sample the counters (and so the interval) begin when the server started
        since = cursor.ts if cursor else (g_s[0] if g_s[0] > 0 else g_ts[0])
        secs[0] = max(g_ts[0] - since, 0.0)
        np.maximum(np.diff(g_ts), 0.0, out=secs[1:])
    s_prev = np.empty(ng)
    if ng:
        s_prev[0] = cursor.started_at if cursor else 0.0
        s_prev[1:] = g_s[:-1]
    reset = (d < 0).any(axis=1) | ((s_prev > 0) & (g_s > 0) & (s_prev != g_s))
    if reset.any():
        d[reset] = g_c[reset]

    # Samples are sorted, so each hour is one contiguous run: bucket ids by counting hour changes.
    hour_all = (ts // 3600).astype(np.int64)
    change = np.empty(len(ts), dtype=bool)
    change[:1] = True
    np.not_equal(hour_all[1:], hour_all[:-1], out=change[1:])
    bucket = np.cumsum(change) - 1
    hours = hour_all[change] * 3600
    n = len(hours)
    b_ok = bucket[ok]
    out_c = np.zeros((n, len(COUNTERS)))
    out_g = np.zeros((n, len(GAUGES)))
    if ng:
        first = np.flatnonzero(np.concatenate(([True], b_ok[1:] != b_ok[:-1])))
        pos = b_ok[first]
        out_c[pos] = np.add.reduceat(d, first, axis=0)
        out_g[pos] = np.add.reduceat(g_g, first, axis=0)
    inv_ok, inv_err = b_ok, bucket[~ok]
    hourly = Hourly(
        hours=hours,
        samples_ok=np.bincount(inv_ok, minlength=n),
        samples_err=np.bincount(inv_err, minlength=n),
        resets=np.bincount(inv_ok, weights=reset.astype(np.float64), minlength=n).astype(np.int64),
        covered_seconds=np.bincount(inv_ok, weights=secs, minlength=n),
        counters=out_c,
        gauge_sums=out_g,
    )
    new_cursor = Cursor(float(g_ts[-1]), g_c[-1].copy(), float(g_s[-1])) if len(g_ts) else cursor
    return hourly, new_cursor
