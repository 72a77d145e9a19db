"""A self-contained HTML report: data embedded as JSON, charts drawn as inline SVG by inline JS.

Nothing is fetched when the file is opened (no CDN, no fonts), so it can be mailed or archived.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from importlib import resources

from orchestrator.reports.aggregate import Report, make_report
from orchestrator.reports.table import COLUMNS, _fmt


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def chart_data(report: Report) -> dict:
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
    }


def _table(report: Report) -> str:
    head = "".join(f"<th>{html.escape(h or report.by)}</th>" for _, h in COLUMNS)
    body = []
    for row in [*report.rows, report.total]:
        cells = "".join(f"<td>{html.escape(_fmt(n, getattr(row, n)))}</td>" for n, _ in COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(report: Report) -> str:
    start, end = _day(report.start), _day(report.end - 1)
    title = f"orch cost report {start} .. {end} (by {report.by})"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in report.notes)
    if report.empty:
        body = f'<p class="empty">No data for this period.</p>{notes}'
    else:
        body = (
            f"{notes}<h2>Summary</h2>{_table(report)}"
            '<h2>Cost over time</h2><div class="chart" id="chart-cost-time"></div>'
            '<h2>$ per 1M tokens by deployment</h2><div class="chart" id="chart-per-m-deployment"></div>'
            '<h2>$ per 1M tokens by provider</h2><div class="chart" id="chart-per-m-provider"></div>'
            '<h2>Utilization at the SLO, by deployment</h2><div class="chart" id="chart-utilization"></div>'
            '<h2>Cost and idle cost, by deployment</h2><div class="chart" id="chart-idle"></div>'
            '<h2>Planned vs actual $ per 1M tokens</h2><div class="chart" id="chart-planned"></div>'
        )
    body += f'<p class="rules">Rules: {html.escape(report.rules)}</p>'
    data = json.dumps(chart_data(report)).replace("</", "<\\/")
    template = resources.files("orchestrator.reports").joinpath("templates/report.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", html.escape(title)).replace("__BODY__", body).replace("__DATA__", data)
