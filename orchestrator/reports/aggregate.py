"""Join cost and metered usage per replica-day, and roll them up by model/deployment/team/provider/region.

Rules (also printed in every report):
- Cost: billed hours × effective $/h (orchestrator.cost), plus egress/storage items when recorded.
- $ per 1M tokens = cost / (input + output tokens) × 10^6.
- Input vs output split: cost is shared between prefill (input) and decode (output) in proportion to
  the GPU time vLLM measured for each (vllm:request_prefill_time_seconds vs
  vllm:request_decode_time_seconds); when those are absent, in proportion to token counts.
- Utilization = served output tokens ÷ (capacity output tokens/s at the SLO × billed seconds); capacity
  from a measured profile (orch bench) if one exists, else the performance model. Idle cost = compute
  cost × (1 − utilization).
- Planned vs actual: the plan's predicted $ per 1M tokens (plans table) against the measured figure.
- Estimated egress: the plan's predicted egress $/month, pro rata over each replica's billed hours. It is
  shown apart (est. egress $, x_EstimatedEgressCost) and never added to cost: only recorded items are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.cost import KEYS, ReplicaDayCost, attach_items, replica_day_costs
from orchestrator.metering.store import Replica, UsageDay

GROUPINGS = ("model", "deployment", "team", "provider", "region", "replica", "adapter")  # adapter: reports/adapters.py

RULES = (
    "cost = billed hours x effective $/h (+ egress/storage recorded); "
    "$/1M = cost / tokens x 1e6; input/output split by measured prefill vs decode GPU time "
    "(token counts when absent); utilization = output tokens / (capacity tok/s at SLO x billed s); "
    "idle = compute cost x (1 - utilization); metered = share of billed time whose tokens the meter counted "
    "(from server start or the previous good scrape up to each good scrape)"
)


@dataclass
class Line:
    """One replica on one UTC day: its cost and what it served."""

    cost: ReplicaDayCost
    usage: UsageDay | None
    capacity_tps: float | None  # output tokens/s per replica at the SLO
    planned_usd_per_m: float | None = None
    est_egress_usd: float = 0.0  # the plan's predicted data egress over these hours: an estimate, not billed

    @property
    def replica(self) -> Replica:
        return self.cost.replica

    def counter(self, name: str) -> float:
        return self.usage.counters[name] if self.usage else 0.0


@dataclass
class Row:
    """Figures of one group (or the total)."""

    key: str
    replicas: int = 0
    hours: float = 0.0
    gpu_hours: float = 0.0
    cost_usd: float = 0.0  # compute (effective) + extras
    compute_usd: float = 0.0
    list_usd: float = 0.0
    extra_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    requests: float = 0.0
    input_cost_share: float | None = None
    input_split: str | None = None  # what the input/output cost split follows: "GPU time" or "token counts"
    usd_per_m_tokens: float | None = None
    usd_per_m_input: float | None = None
    usd_per_m_output: float | None = None
    tokens_per_usd: float | None = None
    utilization: float | None = None
    idle_usd: float | None = None
    planned_usd_per_m: float | None = None
    est_egress_usd: float = 0.0  # planned egress, pro rata over uptime; estimated, not in cost_usd
    metered_fraction: float | None = None  # share of billed time whose tokens were counted by good scrapes
    gaps: int = 0  # failed scrapes
    ttft_mean_ms: float | None = None
    tpot_mean_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    start: float
    end: float
    by: str
    rows: list[Row]
    total: Row
    lines: list[Line]
    daily: dict[str, dict[int, float]] = field(default_factory=dict)  # key -> day -> cost
    unattributed_usd: float = 0.0  # cost items matching no replica-day
    notes: list[str] = field(default_factory=list)
    rules: str = RULES
    as_of: float | None = None  # data through (build_report: min(now, end)); finance forecasts from here

    @property
    def empty(self) -> bool:
        return not self.lines


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _div(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def rollup(key: str, lines: list[Line]) -> Row:
    row = Row(key=key)
    row.replicas = len({ln.replica.id for ln in lines if ln.replica.details.get("role") != "gateway"})
    prefill = decode = cap_tokens = served_with_cap = compute_with_cap = covered = billed_s = 0.0
    ttft_s = ttft_n = itl_s = itl_n = planned_w = planned_cost = 0.0
    for ln in lines:
        c = ln.cost
        row.hours += c.hours
        row.gpu_hours += c.gpu_hours
        row.compute_usd += c.effective_usd
        row.list_usd += c.list_usd
        row.extra_usd += c.extra_usd
        row.input_tokens += ln.counter("prompt_tokens")
        row.output_tokens += ln.counter("generation_tokens")
        row.requests += ln.counter("requests")
        row.est_egress_usd += ln.est_egress_usd
        prefill += ln.counter("prefill_time_sum")
        decode += ln.counter("decode_time_sum")
        ttft_s += ln.counter("ttft_sum")
        ttft_n += ln.counter("ttft_count")
        itl_s += ln.counter("itl_sum")
        itl_n += ln.counter("itl_count")
        billed_s += c.seconds
        if ln.usage:
            covered += min(ln.usage.covered_seconds, c.seconds)
            row.gaps += ln.usage.samples_err
        if ln.capacity_tps:
            cap_tokens += ln.capacity_tps * (c.seconds)
            served_with_cap += ln.counter("generation_tokens")
            compute_with_cap += c.effective_usd
        if ln.planned_usd_per_m is not None:
            planned_w += ln.planned_usd_per_m * c.effective_usd
            planned_cost += c.effective_usd
    row.cost_usd = row.compute_usd + row.extra_usd
    tokens = row.input_tokens + row.output_tokens
    row.usd_per_m_tokens = (row.cost_usd / tokens * 1e6) if tokens > 0 else None
    row.tokens_per_usd = _div(tokens, row.cost_usd)
    if tokens > 0:
        share = _div(prefill, prefill + decode)
        row.input_split = "token counts" if share is None else "GPU time"
        if share is None:
            share = row.input_tokens / tokens
        row.input_cost_share = share
        if row.input_tokens > 0:
            row.usd_per_m_input = row.cost_usd * share / row.input_tokens * 1e6
        if row.output_tokens > 0:
            row.usd_per_m_output = row.cost_usd * (1 - share) / row.output_tokens * 1e6
    if cap_tokens > 0:
        row.utilization = served_with_cap / cap_tokens
        # idle is charged on the lines whose capacity is known; the others have no utilization.
        row.idle_usd = compute_with_cap * (1 - min(1.0, row.utilization))
    row.metered_fraction = _div(covered, billed_s)
    row.ttft_mean_ms = _div(ttft_s * 1000, ttft_n)
    row.tpot_mean_ms = _div(itl_s * 1000, itl_n)
    row.planned_usd_per_m = _div(planned_w, planned_cost) if planned_cost > 0 else None
    return row


# --------------------------------------------------------------------------- capacity
def capacity_tokens_per_s(
    model: str, gpu: str, gpus: int, quantization: str, input_tokens: int = 1000, output_tokens: int = 250,
    tpot_slo_ms: float | None = None, hf_id: str | None = None,
) -> float | None:
    """Output tokens/s one replica sustains at the TPOT SLO, for this request shape (orchestrator.perf.capacity:
    a matching measured profile, else the performance model)."""
    from orchestrator.perf.capacity import replica_capacity

    cap = replica_capacity(model, gpu, gpus, quantization, input_tokens, output_tokens, tpot_slo_ms, hf_id)
    return cap.output_tokens_per_s if cap is not None else None


CapacityFn = Callable[[Replica], float | None]


def default_capacity(r: Replica) -> float | None:
    """At the shape and SLO apply recorded (defaults for older rows); else the plan's own figure."""
    d = r.details
    if d.get("role") == "gateway":  # a gateway adds cost to its deployment, no capacity
        return 0.0
    shape = (int(d.get("input_tokens") or 1000), int(d.get("output_tokens") or 250), d.get("tpot_slo_ms"))
    cap = capacity_tokens_per_s(r.model, r.gpu, r.gpu_count, r.quantization, *shape, d.get("hf_id"))
    if cap is None and d.get("planned_capacity_tps"):
        return float(d["planned_capacity_tps"])
    return cap




@dataclass(frozen=True)
class Planned:
    """What a plan predicted for one deployment."""

    usd_per_m: float | None
    egress_usd_per_replica_hour: float  # the deployment's egress $/month spread over its replicas' hours


def planned_figures(engine: Any) -> dict[tuple[str, str], Planned]:
    """(plan_id, deployment) -> the plan's predictions, from the state's plans table."""
    from sqlalchemy import inspect, select

    if "plans" not in inspect(engine).get_table_names():
        return {}
    from orchestrator.state.models import PlanRecord

    out: dict[tuple[str, str], Planned] = {}
    with engine.connect() as conn:
        for pid, plan in conn.execute(select(PlanRecord.id, PlanRecord.plan)):
            if isinstance(plan, str):
                import json

                plan = json.loads(plan)
            for d in (plan or {}).get("deployments", []):
                price = (d.get("predicted") or {}).get("usd_per_million_tokens")
                replicas = sum(int(g.get("count", 1)) for g in d.get("replicas", [])) or 1
                egress = float(d.get("egress_usd_per_month") or 0.0) / HOURS_PER_MONTH / replicas
                out[(pid, d.get("name", ""))] = Planned(None if price is None else float(price), egress)
    return out


# --------------------------------------------------------------------------- the report
def build_lines(
    replicas: Iterable[Replica],
    usage: Iterable[UsageDay],
    items: Iterable[Any],
    start: float,
    end: float,
    now: float,
    capacity: CapacityFn = default_capacity,
    planned: dict[tuple[str, str], Planned] | None = None,
) -> tuple[list[Line], float]:
    """Replica-day lines, and the cost of items that match no replica-day."""
    costs = replica_day_costs(replicas, start, end, now)
    unmatched = attach_items(costs, items)
    by_key = {(u.replica_id, u.day): u for u in usage}
    planned = planned or {}
    lines = []
    for c in costs:
        p = planned.get((c.replica.plan_id or "", c.replica.deployment))
        lines.append(Line(c, by_key.get((c.replica.id, c.day)), capacity(c.replica),
                          p.usd_per_m if p else None, p.egress_usd_per_replica_hour * c.hours if p else 0.0))
    return lines, sum(i.usd for i in unmatched)


def make_report(lines: list[Line], start: float, end: float, by: str, unattributed_usd: float = 0.0) -> Report:
    if by not in GROUPINGS:
        from orchestrator.errors import UserError
        from orchestrator.suggest import did_you_mean

        raise UserError(f"cannot group by {by!r}{did_you_mean(by, GROUPINGS)}; choose one of {', '.join(GROUPINGS)}")
    key = KEYS.get(by, KEYS["deployment"])  # adapter: lines split by reports/adapters.py, keyed deployment/adapter
    groups: dict[str, list[Line]] = defaultdict(list)
    daily: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for ln in lines:
        k = key(ln.replica)
        groups[k].append(ln)
        daily[k][ln.cost.day] += ln.cost.total_usd
    rows = sorted((rollup(k, g) for k, g in groups.items()), key=lambda r: -r.cost_usd)
    report = Report(start, end, by, rows, rollup("total", lines), lines, {k: dict(v) for k, v in daily.items()})
    report.unattributed_usd = unattributed_usd
    if not lines:
        report.notes.append(f"no usage or cost recorded between {iso(start)} and {iso(end)}")
    elif report.total.input_tokens + report.total.output_tokens == 0:
        report.notes.append("no tokens metered in this period: $ per 1M tokens is undefined")
    if report.total.est_egress_usd > 0:
        report.notes.append(
            f"est. egress ${report.total.est_egress_usd:,.2f}: the plan's predicted data egress over the uptime; "
            "an estimate, not billed and not in cost (record billed egress as a cost item)"
        )
    if unattributed_usd:
        report.notes.append(f"${unattributed_usd:,.2f} of egress/storage matched no replica in the period")
    return report


def build_report(
    engine: Any,
    start: float,
    end: float,
    by: str = "deployment",
    now: float | None = None,
    capacity: CapacityFn = default_capacity,
) -> Report:
    """The report for [start, end) from the state database: a few queries, then Python over replica-days."""
    import time

    from orchestrator.metering import store

    now = time.time() if now is None else now
    lines, unattributed = build_lines(
        store.replicas(engine, start, end),
        store.usage_by_replica_day(engine, start, end),
        store.cost_items_between(engine, start, end),
        start,
        end,
        now,
        capacity,
        planned_figures(engine),
    )
    if by == "adapter":
        from orchestrator.reports.adapters import adapter_report

        report = adapter_report(engine, lines, start, end, unattributed)
    else:
        report = make_report(lines, start, end, by, unattributed)
    report.as_of = min(now, end)
    return report
