"""Finance figures of a report: headline, budget against actual, month-end forecast, showback, anomalies.

Computed from the report's replica-day lines (no further queries); rendered by reports/html.py and
reports/table.py. Each rule is written out in the figures it produces (``*.rule`` / ``*.method``), so the
document states how every number was reached.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from orchestrator.reports.aggregate import Line, Report, Row, make_report, rollup

DAY = 86400
BREAKDOWNS = ("team", "model", "provider", "region")
RUN_RATE_DAYS = 7
ANOMALY_FACTOR = 1.5
ANOMALY_WINDOW = 7
ANOMALY_MIN_HISTORY = 3  # days of spend before a day can be judged against its trailing mean
ANOMALY_MIN_EXCESS_USD = 10.0


def day_str(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def is_gateway(ln: Line) -> bool:
    return ln.replica.details.get("role") == "gateway"


@dataclass
class Headline:
    total_usd: float
    compute_usd: float
    list_usd: float
    discount_saved_usd: float  # list - effective compute (negotiated discounts, spot)
    input_tokens: float
    output_tokens: float
    usd_per_m_tokens: float | None
    usd_per_m_input: float | None
    usd_per_m_output: float | None
    tokens_per_usd: float | None
    idle_usd: float | None
    idle_share: float | None  # idle $ / total $
    input_split: str | None = None  # the input/output split follows measured prefill/decode GPU time, or token counts


@dataclass
class Forecast:
    as_of: str  # data through this instant (ISO date-time, UTC)
    actual_to_date_usd: float
    run_rate_usd_per_day: float
    basis_days: list[str]  # the complete days the run rate is the mean of
    remaining_days: float
    forecast_usd: float
    method: str


@dataclass
class Budget:
    monthly_usd: float
    period_usd: float  # the budget for the report period (the monthly figure, pro rata when not a calendar month)
    actual_usd: float
    used_share: float
    forecast_usd: float | None
    variance_usd: float  # budget - forecast (or - actual when no forecast); negative: over budget
    status: str
    rule: str


@dataclass
class Anomaly:
    day: str
    spend_usd: float
    trailing_mean_usd: float
    ratio: float | None
    excess_usd: float
    driver: str  # the deployment whose spend rose most over its own trailing mean
    driver_excess_usd: float


@dataclass
class ShowbackRow:
    team: str
    direct_usd: float  # its replicas (not gateways): compute + recorded extras
    idle_usd: float  # of which idle capacity, moved to the shared pool
    used_usd: float  # direct - idle
    tokens: float
    share: float  # of the allocation key
    gateway_usd: float  # allocated share of the gateways
    shared_idle_usd: float  # allocated share of the idle capacity
    allocated_usd: float  # used + gateway + shared idle
    usd_per_m_tokens: float | None


@dataclass
class Finance:
    headline: Headline
    daily: list[tuple[str, float]]  # every UTC day from the first with data to as-of, spend (0 when none)
    forecast: Forecast | None
    budget: Budget | None
    anomalies: list[Anomaly]
    anomaly_rule: str
    showback: list[ShowbackRow]
    showback_rule: str
    shared_usd: dict[str, float]  # gateways, idle capacity
    breakdowns: dict[str, list[Row]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "headline": asdict(self.headline),
            "budget": asdict(self.budget) if self.budget else None,
            "forecast": asdict(self.forecast) if self.forecast else None,
            "anomalies": {"rule": self.anomaly_rule, "days": [asdict(a) for a in self.anomalies]},
            "showback": {"rule": self.showback_rule, "shared_usd": self.shared_usd,
                         "teams": [asdict(s) for s in self.showback]},
            "daily_spend_usd": dict(self.daily),
        }


# --------------------------------------------------------------------------- headline
def headline(total: Row) -> Headline:
    idle_share = total.idle_usd / total.cost_usd if total.idle_usd is not None and total.cost_usd > 0 else None
    return Headline(
        total.cost_usd, total.compute_usd, total.list_usd, total.list_usd - total.compute_usd,
        total.input_tokens, total.output_tokens, total.usd_per_m_tokens, total.usd_per_m_input,
        total.usd_per_m_output, total.tokens_per_usd, total.idle_usd, idle_share, total.input_split,
    )


# --------------------------------------------------------------------------- daily spend, forecast, budget
def as_of_time(report: Report) -> float:
    """Data through: the report's as-of (now, within the period) when known, else the end of the last day with data."""
    as_of = getattr(report, "as_of", None)
    if as_of is None:
        last = max((ln.cost.day for ln in report.lines), default=int(report.start))
        as_of = last + DAY
    return min(float(as_of), report.end)


def daily_spend(lines: list[Line], start: float, as_of: float) -> list[tuple[int, float]]:
    """(day, spend) for every day from the first with data (not before ``start``) up to ``as_of``."""
    spend: dict[int, float] = defaultdict(float)
    for ln in lines:
        spend[ln.cost.day] += ln.cost.total_usd
    if not spend:
        return []
    first = max(min(spend), int(start - start % DAY))
    return [(d, spend.get(d, 0.0)) for d in range(first, int(as_of - 1e-9) + 1, DAY) if d < as_of]


def forecast(report: Report, days: list[tuple[int, float]], as_of: float) -> Forecast | None:
    """Actual to date + run rate of the last complete days × the days left in the period; None when none are left."""
    if as_of >= report.end or not days:
        return None
    complete = [(d, v) for d, v in days if d + DAY <= as_of][-RUN_RATE_DAYS:]
    if not complete:
        return None
    actual = sum(v for _, v in days)
    rate = sum(v for _, v in complete) / len(complete)
    remaining = (report.end - as_of) / DAY
    basis = [day_str(d) for d, _ in complete]
    method = (
        f"run rate × days left + actual to date: mean daily spend of the last {len(complete)} complete day(s) "
        f"({basis[0]} .. {basis[-1]}) ${rate:,.2f}/day × {remaining:.1f} day(s) left to {day_str(report.end - 1)} "
        f"+ ${actual:,.2f} spent through {datetime.fromtimestamp(as_of, timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    return Forecast(datetime.fromtimestamp(as_of, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), actual, rate, basis,
                    remaining, actual + rate * remaining, method)


def period_budget(monthly_usd: float, start: float, end: float) -> tuple[float, str]:
    """The budget for [start, end): the monthly figure for a calendar month, else pro rata by days."""
    d = datetime.fromtimestamp(start, timezone.utc)
    month_days = calendar.monthrange(d.year, d.month)[1]
    if d.day == 1 and d.hour == 0 and d.minute == 0 and end - start == month_days * DAY:
        return monthly_usd, f"budget.monthly_usd ${monthly_usd:,.2f} for {d:%Y-%m}"
    days = (end - start) / DAY
    return monthly_usd * days * 12 / 365.25, (
        f"budget.monthly_usd ${monthly_usd:,.2f} pro rata: × {days:.1f} days × 12 / 365.25")


def budget(monthly_usd: float, report: Report, actual: float, fc: Forecast | None) -> Budget:
    amount, rule = period_budget(monthly_usd, report.start, report.end)
    projected = fc.forecast_usd if fc else actual
    variance = amount - projected
    what = "forecast" if fc else "actual"
    status = (f"{what} ${projected:,.2f} is ${-variance:,.2f} over the budget of ${amount:,.2f}" if variance < 0
              else f"{what} ${projected:,.2f} is within the budget of ${amount:,.2f} (${variance:,.2f} to spare)")
    return Budget(monthly_usd, amount, actual, actual / amount if amount > 0 else 0.0,
                  fc.forecast_usd if fc else None, variance, status, rule)


# --------------------------------------------------------------------------- anomalies
ANOMALY_RULE = (
    f"a day is flagged when its spend exceeds {ANOMALY_FACTOR:g} × the mean of the {ANOMALY_WINDOW} days before it "
    f"and the excess over that mean is more than ${ANOMALY_MIN_EXCESS_USD:,.0f} (days with no spend count as $0; "
    f"at least {ANOMALY_MIN_HISTORY} days of history needed)"
)


def anomalies(lines: list[Line], days: list[tuple[int, float]], factor: float = ANOMALY_FACTOR,
              window: int = ANOMALY_WINDOW, min_excess_usd: float = ANOMALY_MIN_EXCESS_USD) -> list[Anomaly]:
    """Days whose spend is beyond the threshold over their trailing mean (ANOMALY_RULE)."""
    by_dep: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for ln in lines:
        by_dep[ln.replica.deployment][ln.cost.day] += ln.cost.total_usd
    out = []
    for i, (day, spend) in enumerate(days):
        if i < ANOMALY_MIN_HISTORY:
            continue
        prior = [v for _, v in days[max(0, i - window):i]]
        mean = sum(prior) / len(prior)
        if spend > factor * mean and spend - mean > min_excess_usd:
            prior_days = [d for d, _ in days[max(0, i - window):i]]
            rises = {dep: v.get(day, 0.0) - sum(v.get(d, 0.0) for d in prior_days) / len(prior_days)
                     for dep, v in by_dep.items()}
            driver = max(rises, key=lambda k: rises[k])
            out.append(Anomaly(day_str(day), spend, mean, spend / mean if mean > 0 else None, spend - mean,
                               driver, rises[driver]))
    return out


# --------------------------------------------------------------------------- showback
SHOWBACK_RULE = (
    "each team pays directly for its replicas' cost less their idle capacity (idle reckoned per deployment); the "
    "shared costs (gateways, and the idle capacity) are allocated in proportion to each team's tokens (input + "
    "output); when no tokens were metered, in proportion to the used cost"
)


def showback(lines: list[Line]) -> tuple[list[ShowbackRow], dict[str, float]]:
    """Teams' allocated cost (SHOWBACK_RULE); the allocations add up to the total spend."""
    gateway_usd = sum(ln.cost.total_usd for ln in lines if is_gateway(ln))
    by_dep: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for ln in lines:
        if not is_gateway(ln):
            by_dep[(ln.replica.team or "(none)", ln.replica.deployment)].append(ln)
    direct: dict[str, float] = defaultdict(float)
    idle: dict[str, float] = defaultdict(float)
    tokens: dict[str, float] = defaultdict(float)
    for (team, _dep), group in by_dep.items():
        row = rollup(team, group)
        direct[team] += row.cost_usd
        idle[team] += row.idle_usd or 0.0
        tokens[team] += row.input_tokens + row.output_tokens
    for ln in lines:  # a team with only a gateway still appears (with nothing direct)
        if is_gateway(ln):
            direct.setdefault(ln.replica.team or "(none)", 0.0)
    idle_total = sum(idle.values())
    used = {t: direct[t] - idle[t] for t in direct}
    key = tokens if sum(tokens.values()) > 0 else used
    if sum(key.values()) <= 0:
        key = {t: 1.0 for t in direct}
    weight = sum(key.values()) or 1.0
    rows = []
    for team in sorted(direct, key=lambda t: -direct[t]):
        share = key.get(team, 0.0) / weight
        gw, sid = gateway_usd * share, idle_total * share
        alloc = used[team] + gw + sid
        rows.append(ShowbackRow(team, direct[team], idle[team], used[team], tokens[team], share, gw, sid, alloc,
                                alloc / tokens[team] * 1e6 if tokens[team] > 0 else None))
    rows.sort(key=lambda r: -r.allocated_usd)
    return rows, {"gateways": gateway_usd, "idle capacity": idle_total}


# --------------------------------------------------------------------------- all of it
def compute_finance(report: Report, monthly_budget_usd: float | None = None) -> Finance:
    """Every finance figure of ``report``; ``monthly_budget_usd`` from the deployment file's budget (or --budget)."""
    as_of = as_of_time(report)
    days = daily_spend(report.lines, report.start, as_of)
    fc = forecast(report, days, as_of)
    total = report.total
    bud = budget(monthly_budget_usd, report, total.cost_usd, fc) if monthly_budget_usd else None
    sb, shared = showback(report.lines)
    notes = []
    if total.list_usd <= 0 < total.compute_usd:
        notes.append("no list prices recorded: the discount saving cannot be shown")
    breakdowns = {by: make_report(report.lines, report.start, report.end, by).rows for by in BREAKDOWNS} \
        if report.lines else {}
    return Finance(headline(total), [(day_str(d), v) for d, v in days], fc, bud,
                   anomalies(report.lines, days), ANOMALY_RULE, sb, SHOWBACK_RULE, shared, breakdowns, notes)
