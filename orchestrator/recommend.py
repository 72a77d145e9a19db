"""`orch recommend`: re-place each deployment at the traffic the meter measured, and say what it would save.

    recs = recommend(load_spec("deploy.yaml"), open_engine(None), start, end, now=time.time())
    for r in recs:
        r.deployment, r.current_usd_per_month, r.recommended_usd_per_month, r.monthly_saving_usd, r.note

What is measured (orchestrator/measured.py): per deployment, the request rate of the busiest metered hour and its
mean, the mean prompt and completion lengths, and the users' regions where gateways recorded them.

The recommendation: the whole file placed again by orchestrator.placement.place (cost first, the same SLOs,
policies, quotas and budget) with the measured traffic in place of each metered deployment's (rate: the busiest
metered hour by default, or the mean), every other field as written. Deployments with no metered requests keep
their traffic and get a note instead of a recommendation; so does measured traffic the file's checks refuse. When the
measured loads together have no plan, each is placed again alone (the others at their file traffic).

Costs, the same way on both sides: $/h = replicas' effective $/h + gateway hosts' $/h + planned egress $/month /
730; $/month = $/h x 730 (rounded to cents); saving = current $/month - recommended $/month. Current: what state
says runs at the end of the window (each replica at the price billed then; egress from the plan it was applied
from); recommended: the new plan's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.measured import RATES, Measured, measure

__all__ = ["Config", "Measured", "Recommendation", "recommend", "updated_traffic"]

NO_PLAN_NOTE = "no plan meets the measured load"


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
    _check_measured(loaded, measured)
    placed, why = _place_measured(loaded, {k: m for k, m in measured.items() if m.problem is None}, catalog,
                                  time_limit)
    plans = _plan_records(engine, {r.plan_id for r in rows if r.plan_id})
    out = []
    for d in spec.deployments:
        m = measured.get(d.name)
        current = current_config([r for r in rows if r.deployment == d.name], at, plans)
        cur_month = current.usd_per_month if current is not None else None
        rec = Recommendation(d.name, current, None, cur_month, None, None, None, "", m)
        if m is None:
            rec.note = "no metered requests in the window: no recommendation (traffic as in the file)"
            if not rows:
                rec.note += f"; state has no replica of project {project!r}"
        elif m.problem is not None:
            rec.note = f"the measured traffic fails the file's checks ({m.problem}): no recommendation"
        elif d.name not in placed:
            rec.note = f"{NO_PLAN_NOTE}: {why.get(d.name, '')}"
        else:
            dp = placed[d.name]
            rec.recommended = plan_config(dp)
            rec.recommended_usd_per_month = rec.recommended.usd_per_month
            rec.slo_margin = _margin(d, dp, m)
            if cur_month is None:
                rec.note = ("nothing of it runs at the end of the window (per state): the recommendation is what to run "
                            "at the measured load")
            else:
                rec.monthly_saving_usd = round(cur_month - rec.recommended_usd_per_month, 2)
                rec.note = _verdict(rec.monthly_saving_usd, cur_month)
            if d.name in why:  # placed alone
                rec.note += f" ({why[d.name]})"
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


def _check_measured(loaded: Any, measured: dict[str, Measured]) -> None:
    """Run the file's semantic checks on the measured traffic; a deployment they refuse gets ``problem`` set."""
    from orchestrator.spec.checks import check_spec

    names = [d.name for d in loaded.spec.deployments]
    issues = check_spec(measured_spec(loaded, measured).spec, loaded.base_dir)
    for i in issues:
        if len(i.path) > 1 and i.path[0] == "deployments" and isinstance(i.path[1], int) and i.path[1] < len(names):
            m = measured.get(names[i.path[1]])
            if m is not None and m.problem is None:
                m.problem = i.message


def _place_measured(loaded: Any, measured: dict[str, Measured], catalog: Any, time_limit: float
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """(deployment -> its DeploymentPlan at the measured traffic, deployment -> a note). All deployments are placed
    together; when that has no plan, each measured deployment again alone, the others at their file traffic."""
    from orchestrator.placement import place

    def run(which: dict[str, Measured]) -> Any:
        return place(measured_spec(loaded, which), "cost", catalog=catalog, with_fallbacks=False, time_limit=time_limit)

    if not measured:
        return {}, {}
    if catalog is None:  # once for every placement below
        from orchestrator.catalog.load import load_catalog

        catalog = load_catalog(loaded.spec)
    plan = run(measured)
    if plan.status in ("optimal", "feasible"):
        return {d.name: d for d in plan.deployments}, {}
    placed: dict[str, Any] = {}
    why: dict[str, str] = {}
    for name, m in measured.items():
        alone = run({name: m}) if len(measured) > 1 else plan
        if alone.status in ("optimal", "feasible"):
            placed[name] = next(d for d in alone.deployments if d.name == name)
            why[name] = "placed with the other deployments at their file traffic: the measured loads together have no plan"
        else:
            why[name] = "; ".join(alone.messages or [alone.status])
    return placed, why


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
    return {r.deployment: r.measured.traffic() for r in recs if r.measured is not None and r.measured.problem is None}
