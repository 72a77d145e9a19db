"""`orch recommend`: re-place each deployment at the traffic the meter measured, and say what it would save.

    recs = recommend(load_spec("deploy.yaml"), open_engine(None), start, end, now=time.time())
    for r in recs:
        r.deployment, r.current_usd_per_month, r.recommended_usd_per_month, r.monthly_saving_usd, r.note

What is measured (state's usage_hourly, orchestrator/metering): per deployment, the request rate of each hour
(the sum over its replicas of requests / metered seconds; a bucket counts for the peak when at least half an hour
of it was metered), its mean over the metered time, and the mean prompt and completion lengths (tokens / requests).
User regions: the meter counts requests per replica, not per user, so where a deployment has gateways recorded in
state with their user regions, the requests each region's replicas served are given to the users of the gateways
that route there (split between them as the file's shares are); otherwise the file's sources stay.

The recommendation: the whole file placed again by orchestrator.placement.place (cost first, the same SLOs,
policies, quotas and budget) with the measured traffic in place of each metered deployment's (rate: the busiest
metered hour by default, or the mean), every other field as written. Deployments with no metered requests keep
their traffic and get a note instead of a recommendation.

Costs, the same way on both sides: $/h = replicas' effective $/h + gateway hosts' $/h + planned egress $/month /
730; $/month = $/h x 730 (rounded to cents); saving = current $/month - recommended $/month. Current: what state
says runs at the end of the window (each replica at the price billed then; egress from the plan it was applied
from); recommended: the new plan's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator.candidates import HOURS_PER_MONTH

RATES = ("peak", "mean")
NO_PLAN_NOTE = "no plan meets the measured load"
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


@dataclass
class Config:
    """One configuration of a deployment: what runs (state) or what a plan would run."""

    groups: list[dict[str, Any]]  # provider, region, instance_type, gpu, gpus_per_replica, count, market,
    #                               quantization, usd_per_hour (the whole group, effective)
    replicas: int
    gpus: int
    compute_usd_per_hour: float
    gateways_usd_per_hour: float
    egress_usd_per_month: float
    usd_per_hour: float  # all-in: compute + gateways + egress / 730
    capacity_rps: float | None = None  # requests/s at the SLO (the plan's prediction), when known
    plan_id: str | None = None

    @property
    def usd_per_month(self) -> float:
        return round(self.usd_per_hour * HOURS_PER_MONTH, 2)

    def describe(self) -> str:
        """'2 x g6.xlarge (1xL4 bf16) aws:us-east-1 on_demand + ...'"""
        return " + ".join(f"{g['count']} x {g['instance_type']} ({g['gpus_per_replica']}x{g['gpu']} {g['quantization']})"
                          f" {g['region']} {g['market']}" for g in self.groups) or "nothing"


@dataclass
class Recommendation:
    """One deployment: what runs, what to run at the measured load, and the difference.

    ``recommended`` is None (and the money fields too) when there is nothing to recommend: ``note`` says why
    (no metered data, no feasible plan, not in the file). ``slo_margin``: predicted TTFT/TPOT p95 against the SLO,
    and capacity against the measured peak and mean rates.
    """

    deployment: str
    current: Config | None
    recommended: Config | None
    current_usd_per_month: float | None
    recommended_usd_per_month: float | None
    monthly_saving_usd: float | None
    slo_margin: dict[str, Any] | None
    note: str
    measured: Measured | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k in ("current", "recommended"):
            if getattr(self, k) is not None:
                out[k]["usd_per_month"] = getattr(self, k).usd_per_month
        return out


def recommend(loaded: Any, engine: Any, start: float, end: float, now: float, *, rate: str = "peak",
              catalog: Any | None = None, time_limit: float = 60.0) -> list[Recommendation]:
    """One Recommendation per deployment of ``loaded`` (a LoadedSpec, orchestrator.spec.loader.load_spec), in the
    file's order, then one note per deployment state has in the project but the file lacks. [start, end) is the
    metering window in unix seconds; ``now`` bounds it (what runs is read at min(end, now))."""
    from orchestrator.errors import UserError

    if rate not in RATES:
        raise UserError(f"--rate must be one of {', '.join(RATES)}, found {rate!r}")
    from orchestrator.metering import store

    spec = loaded.spec
    project = spec.project
    at = min(end, now)
    rows = [r for r in store.replicas(engine) if r.project == project]
    measured = measure(engine, rows, spec, start, min(end, now), rate)
    plan = _place_measured(loaded, measured, catalog, time_limit)
    plans = _plan_records(engine, {r.plan_id for r in rows if r.plan_id})
    by_name = {d.name: d for d in (plan.deployments if plan.status in ("optimal", "feasible") else [])}
    out = []
    for d in spec.deployments:
        m = measured.get(d.name)
        current = current_config([r for r in rows if r.deployment == d.name], at, plans)
        cur_month = current.usd_per_month if current is not None else None
        rec = Recommendation(d.name, current, None, cur_month, None, None, None, "", m)
        if m is None:
            rec.note = "no metered requests in the window: no recommendation (traffic as in the file)"
        elif d.name not in by_name:
            rec.note = NO_PLAN_NOTE + ": " + "; ".join(plan.messages or [plan.status])
        else:
            dp = by_name[d.name]
            rec.recommended = plan_config(dp)
            rec.recommended_usd_per_month = rec.recommended.usd_per_month
            rec.slo_margin = _margin(d, dp, m)
            if cur_month is None:
                rec.note = "nothing of it runs now (per state): the recommendation is what to run at the measured load"
            else:
                rec.monthly_saving_usd = round(cur_month - rec.recommended_usd_per_month, 2)
                rec.note = _verdict(rec.monthly_saving_usd, cur_month)
        out.append(rec)
    for extra in sorted({r.deployment for r in rows} - {d.name for d in spec.deployments}):
        current = current_config([r for r in rows if r.deployment == extra], at, plans)
        if current is not None:
            out.append(Recommendation(extra, current, None, current.usd_per_month, None, None, None,
                                      f"runs in project {project} (per state) but {loaded.path} has no such deployment: "
                                      "not re-placed"))
    return out


def _verdict(saving: float, current: float) -> str:
    if abs(saving) < 0.005:
        return "already sized for the measured load"
    pct = f" ({saving / current:.0%})" if current > 0 else ""
    if saving > 0:
        return f"re-place at the measured load and save ${saving:,.2f} a month{pct}"
    return f"the measured load needs more than runs: ${-saving:,.2f} a month more"


# --------------------------------------------------------------------------- measuring
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


# --------------------------------------------------------------------------- configurations
def _plan_records(engine: Any, ids: set[str]) -> dict[str, dict[str, Any]]:
    """plan id -> the plan JSON apply recorded (state's plans table)."""
    from sqlalchemy import inspect, select

    if not ids or "plans" not in inspect(engine).get_table_names():
        return {}
    from orchestrator.state.models import PlanRecord

    out = {}
    with engine.connect() as conn:
        for pid, plan in conn.execute(select(PlanRecord.id, PlanRecord.plan).where(PlanRecord.id.in_(list(ids)))):
            if isinstance(plan, str):
                import json

                plan = json.loads(plan)
            out[pid] = plan or {}
    return out


def _price_at(r: Any, at: float) -> float | None:
    """The replica's effective $/h at ``at``, or None when it was not billed then."""
    for p in r.billing():
        if p.start <= at and (p.end is None or p.end > at):
            return p.usd_per_hour
    return None


def current_config(rows: list[Any], at: float, plans: dict[str, dict[str, Any]]) -> Config | None:
    """What state says runs at ``at``: replicas grouped by offering, gateways, and the applied plan's egress
    estimate and capacity. None when nothing runs."""
    live = [(r, p) for r in rows if (p := _price_at(r, at)) is not None]
    if not live:
        return None
    groups: dict[tuple, dict[str, Any]] = {}
    gateways = 0.0
    for r, price in live:
        if r.details.get("role") == "gateway":
            gateways += price
            continue
        key = (r.provider, r.region, r.instance_type, r.gpu, r.gpu_count, r.market, r.quantization)
        g = groups.setdefault(key, {"provider": r.provider, "region": r.region, "instance_type": r.instance_type,
                                    "gpu": r.gpu, "gpus_per_replica": r.gpu_count, "count": 0, "market": r.market,
                                    "quantization": r.quantization, "usd_per_hour": 0.0})
        g["count"] += 1
        g["usd_per_hour"] = round(g["usd_per_hour"] + price, 4)
    pids = Counter(r.plan_id for r, _ in live if r.plan_id and r.details.get("role") != "gateway")
    pid = pids.most_common(1)[0][0] if pids else None
    dep = next((d for d in plans.get(pid or "", {}).get("deployments", []) if d.get("name") == rows[0].deployment), None)
    egress = float((dep or {}).get("egress_usd_per_month") or 0.0)
    planned = sum(int(g.get("count", 1)) for g in (dep or {}).get("replicas", []))
    cap = (dep or {}).get("predicted", {}).get("capacity_rps")
    running = sum(g["count"] for g in groups.values())
    compute = sum(g["usd_per_hour"] for g in groups.values())
    return Config(
        groups=sorted(groups.values(), key=lambda g: (g["region"], g["instance_type"])), replicas=running,
        gpus=sum(g["count"] * g["gpus_per_replica"] for g in groups.values()),
        compute_usd_per_hour=round(compute, 4), gateways_usd_per_hour=round(gateways, 4),
        egress_usd_per_month=round(egress, 2), usd_per_hour=round(compute + gateways + egress / HOURS_PER_MONTH, 4),
        capacity_rps=round(float(cap) * running / planned, 3) if cap and planned else None, plan_id=pid,
    )


def plan_config(dp: Any) -> Config:
    """A DeploymentPlan (orchestrator.plan) as a Config."""
    groups = [{"provider": g.provider, "region": g.region, "instance_type": g.instance_type, "gpu": g.gpu,
               "gpus_per_replica": g.gpus_per_replica, "count": g.count, "market": g.market,
               "quantization": g.quantization, "usd_per_hour": g.usd_per_hour} for g in dp.replicas]
    compute = sum(g.usd_per_hour for g in dp.replicas)
    gateways = sum(g.usd_per_hour for g in dp.gateways)
    return Config(
        groups=groups, replicas=sum(g.count for g in dp.replicas),
        gpus=sum(g.count * g.gpus_per_replica for g in dp.replicas), compute_usd_per_hour=round(compute, 4),
        gateways_usd_per_hour=round(gateways, 4), egress_usd_per_month=dp.egress_usd_per_month,
        usd_per_hour=round(compute + gateways + dp.egress_usd_per_month / HOURS_PER_MONTH, 4),
        capacity_rps=dp.predicted.capacity_rps,
    )


# --------------------------------------------------------------------------- placing
def measured_spec(loaded: Any, measured: dict[str, Measured]) -> Any:
    """A copy of ``loaded`` whose metered deployments have the measured traffic (validated by the Traffic model)."""
    from orchestrator.spec.models import Traffic

    deps = []
    for d in loaded.spec.deployments:
        m = measured.get(d.name)
        if m is not None:
            traffic = Traffic.model_validate({**d.traffic.model_dump(), **m.traffic()})
            d = d.model_copy(update={"traffic": traffic})
        deps.append(d)
    return dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"deployments": deps}))


def _place_measured(loaded: Any, measured: dict[str, Measured], catalog: Any, time_limit: float) -> Any:
    from orchestrator.placement import place

    return place(measured_spec(loaded, measured), "cost", catalog=catalog, with_fallbacks=False, time_limit=time_limit)


def _margin(d: Any, dp: Any, m: Measured) -> dict[str, Any]:
    p = dp.predicted
    cap = p.capacity_rps
    return {
        "ttft_p95_ms": p.ttft_p95_ms, "ttft_slo_ms": d.slo.ttft_p95_ms,
        "tpot_p95_ms": p.tpot_p95_ms, "tpot_slo_ms": d.slo.tpot_p95_ms,
        "capacity_rps": cap, "peak_rps": round(m.peak_rps, 4), "mean_rps": round(m.mean_rps, 4),
        "headroom": d.traffic.headroom,
        "capacity_over_peak": round(cap / m.peak_rps - 1, 4) if m.peak_rps > 0 else None,
        "capacity_over_mean": round(cap / m.mean_rps - 1, 4) if m.mean_rps > 0 else None,
        "meets_slo": p.ttft_p95_ms <= d.slo.ttft_p95_ms and p.tpot_p95_ms <= d.slo.tpot_p95_ms,
    }


def updated_traffic(recs: list[Recommendation]) -> dict[str, dict[str, Any]]:
    """deployment -> the traffic fields to write (those with a measurement)."""
    return {r.deployment: r.measured.traffic() for r in recs if r.measured is not None}
