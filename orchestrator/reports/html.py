"""A self-contained HTML report: data embedded as JSON, charts drawn as inline SVG by inline JS.

Nothing is fetched when the file is opened (no CDN, no fonts), so it can be mailed or archived.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from orchestrator.reports.aggregate import Report, make_report
from orchestrator.reports.html_finance import (
    breakdowns_html,
    budget_html,
    finance_data,
    headline_html,
    recommendations_html,
    showback_html,
    trend_html,
)
from orchestrator.reports.table import COLUMNS, _fmt


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def chart_data(report: Report, finance: Any = None) -> dict:
    """Everything the page's script draws."""
    if report.empty:
        return {"empty": True}
    days = sorted({ln.cost.day for ln in report.lines})
    by_dep = make_report(report.lines, report.start, report.end, "deployment")
    by_prov = make_report(report.lines, report.start, report.end, "provider")

    def series(r: Report) -> dict:
        return {
            "labels": [row.key for row in r.rows],
            "usd_per_m": [row.usd_per_m_tokens for row in r.rows],
            "utilization_pct": [None if row.utilization is None else 100 * row.utilization for row in r.rows],
            "cost": [row.cost_usd for row in r.rows],
            "idle": [row.idle_usd for row in r.rows],
            "planned": [row.planned_usd_per_m for row in r.rows],
        }

    return {
        "empty": False,
        "days": [_day(d) for d in days],
        "cost_by_day": [
            {"name": row.key, "values": [report.daily.get(row.key, {}).get(d, 0.0) for d in days]} for row in report.rows
        ],
        "by_deployment": series(by_dep),
        "by_provider": series(by_prov),
        "finance": None if finance is None else finance_data(report, finance),
    }


def _table(report: Report) -> str:
    head = "".join(f"<th>{html.escape(h or report.by)}</th>" for _, h in COLUMNS)
    body = []
    for row in [*report.rows, report.total]:
        cells = "".join(f"<td>{html.escape(_fmt(n, getattr(row, n)))}</td>" for n, _ in COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


CHARTS = (  # (title, element id) of the detail charts the template's script draws
    ("Daily cost by __BY__ (USD)", "chart-cost-time"),
    ("$ per 1M tokens by deployment", "chart-per-m-deployment"),
    ("$ per 1M tokens by provider", "chart-per-m-provider"),
    ("Utilization at the SLO, by deployment (%)", "chart-utilization"),
    ("Cost and idle cost, by deployment (USD)", "chart-idle"),
    ("Planned vs actual $ per 1M tokens", "chart-planned"),
)


def render_html(report: Report, finance: Any = None, recommendations: Sequence[Any] | None = None) -> str:
    """The report as a finance document. ``finance``: reports.finance.compute_finance (computed here, without a
    budget, when not given). ``recommendations``: rows for a Recommendations section (orch recommend), each a
    sequence of formatted cells or an object/dict with deployment, current, recommended, monthly_saving_usd and
    slo_margin; None leaves the section out."""
    start, end = _day(report.start), _day(report.end - 1)
    title = f"orch cost report {start} .. {end} (by {report.by})"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in report.notes)
    if report.empty:
        body = f'<p class="empty">No data for this period.</p>{notes}'
    else:
        if finance is None:
            from orchestrator.reports.finance import compute_finance

            finance = compute_finance(report)
        notes += "".join(f'<p class="note">{html.escape(n)}</p>' for n in finance.notes)
        as_of = finance.forecast.as_of if finance.forecast else None
        period = (f'<p class="period">Period {start} .. {end} (UTC)'
                  + (f", data through {html.escape(as_of)}" if as_of else "")
                  + f"; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>")
        body = (
            f"{period}{headline_html(finance)}{notes}{budget_html(finance)}{trend_html(finance)}"
            f"{breakdowns_html(finance)}{showback_html(finance)}{recommendations_html(recommendations)}"
            f"<h2>Detail by {html.escape(report.by)}</h2>{_table(report)}"
            + "".join(f'<section class="keep"><h2>{html.escape(t)}</h2><div class="chart" id="{i}"></div></section>'
                      for t, i in CHARTS).replace("__BY__", html.escape(report.by))
        )
    body += f'<p class="rules">Rules: {html.escape(report.rules)}</p>'
    data = json.dumps(chart_data(report, finance)).replace("</", "<\\/")
    template = resources.files("orchestrator.reports").joinpath("templates/report.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", html.escape(title)).replace("__BODY__", body).replace("__DATA__", data)
