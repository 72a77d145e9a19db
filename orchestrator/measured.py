"""What the meter measured of each deployment over a window: request rate (mean, busiest hour), prompt and
completion lengths, and where gateways recorded them, the users' regions (orchestrator/recommend.py uses it).

From state's usage_hourly (orchestrator/metering): a deployment's rate in an hour is the sum over its replicas of
requests / metered seconds; an hour counts for the peak when at least half of it was metered; the mean is over the
metered time. Lengths: tokens / requests. User regions: the meter counts requests per replica, not per user, so the
requests each region's replicas served go to the users of the gateways (recorded in state with their user regions
and upstream) that route there, split between them as the file's shares are; no such gateway: the file's sources.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

RATES = ("peak", "mean")
PEAK_MIN_COVERED_S = 1800.0  # an hourly bucket counts for the peak when at least this much of it was metered


@dataclass
class Measured:
    """A deployment's metered traffic over the window."""

    requests: float
    metered_hours: float  # wall time the meter covered (the union over replicas, by hour)
    mean_rps: float
    peak_rps: float  # the busiest metered hour
    input_tokens: int
    output_tokens: int
    requests_per_second: float  # what it is re-placed at: peak_rps or mean_rps
    rate: str  # "peak" | "mean"
    sources: list[dict[str, Any]] | None = None  # [{region, share}] from gateways; None: the file's
    problem: str | None = None  # the file's checks refuse this traffic (e.g. an SLO no GPU meets at these lengths)
    file_requests_per_second: float = 0.0
    file_input_tokens: int = 0
    file_output_tokens: int = 0

    def traffic(self) -> dict[str, Any]:
        """The traffic fields that change in the deployment file."""
        out: dict[str, Any] = {"requests_per_second": self.requests_per_second, "input_tokens": self.input_tokens,
                               "output_tokens": self.output_tokens}
        if self.sources is not None:
            out["sources"] = self.sources
        return out


def measure(engine: Any, rows: list[Any], spec: Any, start: float, end: float, rate: str = "peak"
            ) -> dict[str, Measured]:
    """deployment -> its metered traffic in [start, end); deployments that served no request are left out."""
    from sqlalchemy import select

    from orchestrator.metering import tables as T

    replicas = {r.id: r for r in rows if r.details.get("role") != "gateway"}
    if not replicas:
        return {}
    h = T.usage_hourly.c
    q = select(h.replica_id, h.hour, h.covered_seconds, h.requests, h.prompt_tokens, h.generation_tokens).where(
        h.hour >= int(start // 3600 * 3600), h.hour < end, h.replica_id.in_(list(replicas)))
    # deployment -> hour -> [requests/s summed over replicas, longest metered seconds]
    hourly: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # requests, prompt, generation
    by_region: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    with engine.connect() as conn:
        for rid, hour, covered, req, prompt, gen in conn.execute(q):
            r = replicas[rid]
            if not covered or covered <= 0:
                continue
            b = hourly[r.deployment][int(hour)]
            b[0] += (req or 0.0) / covered
            b[1] = max(b[1], float(covered))
            t = totals[r.deployment]
            t[0] += req or 0.0
            t[1] += prompt or 0.0
            t[2] += gen or 0.0
            by_region[r.deployment][r.region] += req or 0.0
    files = {d.name: d for d in spec.deployments}
    gateways = [r for r in rows if r.details.get("role") == "gateway"]
    out = {}
    for name, hours in hourly.items():
        requests, prompt, gen = totals[name]
        seconds = sum(c for _, c in hours.values())
        if requests <= 0 or seconds <= 0:
            continue
        mean = sum(rps * c for rps, c in hours.values()) / seconds
        full = [rps for rps, c in hours.values() if c >= PEAK_MIN_COVERED_S]
        peak = max(full) if full else mean
        d = files.get(name)
        sources = None
        if d is not None and d.traffic.sources:
            sources = user_shares(by_region[name], [g for g in gateways if g.deployment == name],
                                  {s.region: s.share for s in d.traffic.sources})
        out[name] = Measured(
            requests=requests, metered_hours=round(seconds / 3600, 3), mean_rps=mean, peak_rps=peak,
            input_tokens=max(1, round(prompt / requests)), output_tokens=max(1, round(gen / requests)),
            requests_per_second=_sig(peak if rate == "peak" else mean), rate=rate, sources=sources,
            file_requests_per_second=d.traffic.requests_per_second if d else 0.0,
            file_input_tokens=d.traffic.input_tokens if d else 0, file_output_tokens=d.traffic.output_tokens if d else 0,
        )
    return out


def _sig(x: float, digits: int = 4) -> float:
    """x to ``digits`` significant digits: what the file gets (never 0: traffic must be > 0)."""
    return max(float(f"{x:.{digits}g}"), 1e-6)


def user_shares(served: dict[str, float], gateways: list[Any], file_shares: dict[str, float]
                ) -> list[dict[str, Any]] | None:
    """User regions' shares of the requests, from the gateways recorded in state: each replica region's requests go
    to the users of the gateways that route there (upstream), split as the file's shares are. None: no gateway
    names user regions of the file, or none of the served requests went through one."""
    routes = []
    for g in gateways:
        users = {u for u in (g.details.get("users") or []) if u in file_shares}
        if users:
            routes.append((users, set(g.details.get("upstream") or [g.region])))
    per_user: dict[str, float] = defaultdict(float)
    for region, n in served.items():
        users = set().union(*(u for u, up in routes if region in up)) if routes else set()
        weight = sum(file_shares[u] for u in users)
        for u in users:
            per_user[u] += n * file_shares[u] / weight
    total = sum(per_user.values())
    if total <= 0:
        return None
    shares = {u: round(v / total, 3) for u, v in per_user.items() if round(v / total, 3) > 0}
    top = max(shares, key=lambda u: (shares[u], u))
    shares[top] = round(shares[top] + 1.0 - sum(shares.values()), 3)  # sum exactly 1 after rounding
    return [{"region": u, "share": shares[u]} for u in file_shares if u in shares]


