"""The finance sections of the HTML report: headline, budget and forecast, trend, breakdowns, showback, anomalies,
and the optional recommendations. Markup only; the figures come from reports/finance.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from orchestrator.reports.aggregate import Report
from orchestrator.reports.finance import DAY, Finance


def money(v: float | None) -> str:
    return "-" if v is None else (f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}")


def per_m(v: float | None) -> str:
    return "-" if v is None else (f"${v:,.4f}" if v < 1 else f"${v:,.2f}")


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def count(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], total: Sequence[str] | None = None,
          cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    if total is not None:
        body += '<tr class="total">' + "".join(f"<td>{escape(c)}</td>" for c in total) + "</tr>"
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _kpi(key: str, label: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="sub">{escape(sub)}</div>' if sub else ""
    return (f'<div class="kpi" data-kpi="{key}"><div class="label">{escape(label)}</div>'
            f'<div class="value">{escape(value)}</div>{sub_html}</div>')


def headline_html(f: Finance) -> str:
    h = f.headline
    split = {"GPU time": "; split by prefill/decode GPU time",
             "token counts": "; split by token counts (no prefill/decode time metered)"}.get(h.input_split or "", "")
    cards = [
        _kpi("total", "Total spend", money(h.total_usd), f"compute {money(h.compute_usd)}"),
        _kpi("per-m-input", "$ per 1M input tokens", per_m(h.usd_per_m_input), f"{count(h.input_tokens)} input tokens{split}"),
        _kpi("per-m-output", "$ per 1M output tokens", per_m(h.usd_per_m_output), f"{count(h.output_tokens)} output tokens{split}"),
        _kpi("tokens-per-usd", "Tokens per $", count(h.tokens_per_usd), f"blended {per_m(h.usd_per_m_tokens)} per 1M"),
        _kpi("idle", "Idle cost", money(h.idle_usd), f"{pct(h.idle_share)} of spend" if h.idle_share is not None
             else "no capacity figure"),
        _kpi("saved", "Saved by discounts", money(h.discount_saved_usd), f"list {money(h.list_usd)} − effective"),
    ]
    if f.budget:
        cards.append(_kpi("budget", "Budget used", pct(f.budget.used_share),
                          f"{money(f.budget.actual_usd)} of {money(f.budget.period_usd)}"))
    if f.forecast:
        cards.append(_kpi("forecast", "Month-end forecast", money(f.forecast.forecast_usd),
                          f"run rate {money(f.forecast.run_rate_usd_per_day)}/day"))
    return f'<section class="keep"><div class="kpis">{"".join(cards)}</div></section>'


def budget_html(f: Finance) -> str:
    parts = ['<section id="budget"><h2>Budget against actual</h2>']
    if f.budget:
        b = f.budget
        cls = "over" if b.variance_usd < 0 else "ok"
        parts.append(f'<p class="status {cls}" data-budget-status>{escape(b.status)}.</p>')
        rows = [["budget for the period", money(b.period_usd)], ["actual to date", money(b.actual_usd)],
                ["used", pct(b.used_share)]]
        if b.forecast_usd is not None:
            rows.append(["month-end forecast", money(b.forecast_usd)])
        rows.append(["budget − " + ("forecast" if b.forecast_usd is not None else "actual"), money(b.variance_usd)])
        parts.append(table(["", "USD"], rows, cls="narrow"))
        parts.append(f'<p class="rules">Budget: {escape(b.rule)}.</p>')
    else:
        parts.append('<p class="note">No budget given: pass the deployment file (<code>orch report --file '
                     'deploy.yaml</code>, its <code>budget.monthly_usd</code>) or <code>--budget USD</code>.</p>')
    if f.forecast:
        parts.append(f'<p class="method" data-forecast-method><b>Forecast method</b>: {escape(f.forecast.method)}.</p>')
    elif f.daily:
        parts.append('<p class="rules">No forecast: the data cover the whole period.</p>')
    parts.append('<div class="chart" id="chart-budget"></div></section>')
    return "".join(parts)


def trend_html(f: Finance) -> str:
    rows = [[a.day, money(a.spend_usd), money(a.trailing_mean_usd), "-" if a.ratio is None else f"{a.ratio:.2f}×",
             money(a.excess_usd), f"{a.driver} (+{money(a.driver_excess_usd)})"] for a in f.anomalies]
    anomalies = (table(["day", "spend", "trailing mean", "ratio", "excess", "driven by"], rows, cls="anomalies")
                 if rows else '<p>No day beyond the threshold.</p>')
    return (
        '<section id="trend"><h2>Daily spend</h2><div class="chart" id="chart-daily"></div></section>'
        f'<section id="anomalies" class="keep"><h2>Cost anomalies</h2>{anomalies}'
        f'<p class="rules">Rule: {escape(f.anomaly_rule)}.</p></section>'
    )


def breakdowns_html(f: Finance) -> str:
    out = [('<section id="breakdowns"><h2>Spend and $ per 1M tokens by team, model, provider, region</h2>'
            '<div class="grid">')]
    total = f.headline.total_usd
    for by, rows in f.breakdowns.items():
        body = [[r.key, money(r.cost_usd), pct(r.cost_usd / total if total > 0 else None), per_m(r.usd_per_m_tokens),
                 per_m(r.usd_per_m_input), per_m(r.usd_per_m_output), money(r.idle_usd)] for r in rows]
        out.append(f'<div class="keep"><h3>by {escape(by)}</h3>'
                   + table([by, "spend", "share", "$/1M tok", "$/1M in", "$/1M out", "idle"], body, cls="small")
                   + "</div>")
    out.append("</div></section>")
    return "".join(out)


def showback_html(f: Finance) -> str:
    rows = [[s.team, money(s.direct_usd), money(s.idle_usd), money(s.used_usd), count(s.tokens), pct(s.share),
             money(s.gateway_usd), money(s.shared_idle_usd), money(s.allocated_usd), per_m(s.usd_per_m_tokens)]
            for s in f.showback]
    sums = [sum(getattr(s, k) for s in f.showback) for k in
            ("direct_usd", "idle_usd", "used_usd", "tokens", "gateway_usd", "shared_idle_usd", "allocated_usd")]
    total = ["total", money(sums[0]), money(sums[1]), money(sums[2]), count(sums[3]), "100.0%", money(sums[4]),
             money(sums[5]), money(sums[6]), "-"]
    shared = ", ".join(f"{k} {money(v)}" for k, v in f.shared_usd.items())
    return (
        '<section id="showback" class="keep"><h2>Showback by team</h2>'
        + table(["team", "direct", "its idle", "used", "tokens", "key share", "gateways", "idle (shared)",
                 "allocated", "$/1M tok"], rows, total, cls="showback")
        + f'<p class="rules">Shared costs: {escape(shared)}. Rule: {escape(f.showback_rule)}.</p></section>'
    )


REC_HEAD = ["deployment", "current", "recommended", "monthly saving", "SLO margin", "note"]
REC_KEYS = ["deployment", "current", "recommended", "monthly_saving_usd", "slo_margin", "note"]


def _margin_text(m: dict[str, Any]) -> str:
    """orch recommend's slo_margin dict, in a few words."""
    parts = []
    for what in ("ttft", "tpot"):
        got, slo = m.get(f"{what}_p95_ms"), m.get(f"{what}_slo_ms")
        if got is not None and slo is not None:
            parts.append(f"{what.upper()} p95 {got:,.0f}/{slo:,.0f} ms")
    if m.get("capacity_over_peak") is not None:
        parts.append(f"capacity {m['capacity_over_peak']:+.0%} over peak")
    return ", ".join(parts) or "-"


def _rec_cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if hasattr(v, "describe"):  # a configuration (orch recommend's Config)
        return str(v.describe())
    if key == "monthly_saving_usd" and isinstance(v, (int, float)):
        return money(float(v))
    if key == "slo_margin" and isinstance(v, dict):
        return _margin_text(v)
    if key == "slo_margin" and isinstance(v, float):
        return pct(v)
    return str(v)


def recommendations_html(recs: Sequence[Any] | None) -> str:
    """Rows: pre-formatted sequences of cells, or dicts/objects with REC_KEYS (orch recommend's Recommendation)."""
    if recs is None:
        return ""
    rows = []
    for r in recs:
        if isinstance(r, (list, tuple)):
            rows.append([str(c) for c in r])
        elif isinstance(r, dict):
            rows.append([_rec_cell(k, r.get(k)) for k in REC_KEYS])
        else:
            rows.append([_rec_cell(k, getattr(r, k, None)) for k in REC_KEYS])
    body = (table(REC_HEAD[:max(len(r) for r in rows)], rows, cls="recs") if rows
            else "<p>Nothing to change: every deployment is placed at its measured load.</p>")
    return f'<section id="recommendations" class="keep"><h2>Recommendations</h2>{body}</section>'


def finance_data(report: Report, f: Finance) -> dict[str, Any]:
    """What the budget and daily charts draw: days, spend, trailing means, anomalies, cumulative, budget, forecast."""
    days = [d for d, _ in f.daily]
    values = [v for _, v in f.daily]
    trailing: list[float | None] = []
    for i in range(len(values)):
        prior = values[max(0, i - 7):i]
        trailing.append(sum(prior) / len(prior) if i >= 3 else None)
    cum, acc = [], 0.0
    for v in values:
        acc += v
        cum.append(acc)
    start = report.start if report.end - report.start <= 366 * DAY or not days else \
        datetime.fromisoformat(days[0]).replace(tzinfo=timezone.utc).timestamp()
    span = (report.end - start) / DAY
    first = (datetime.fromisoformat(days[0]).replace(tzinfo=timezone.utc).timestamp() - start) / DAY if days else 0.0
    fc = f.forecast
    return {
        "days": days, "spend": values, "trailing": trailing, "anomaly_days": [a.day for a in f.anomalies],
        "cumulative": cum, "first_offset": first, "span_days": span,
        "start": datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d"),
        "end": datetime.fromtimestamp(report.end - 1, timezone.utc).strftime("%Y-%m-%d"),
        "budget": f.budget.period_usd if f.budget else None,
        "forecast": None if fc is None else {
            "at_offset": span - fc.remaining_days, "actual": fc.actual_to_date_usd, "value": fc.forecast_usd},
    }

