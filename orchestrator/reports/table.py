"""Terminal table, CSV and JSON renderings of a Report."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from orchestrator.fmt import wrap_cells
from orchestrator.reports.aggregate import Report, Row, iso

COLUMNS: list[tuple[str, str]] = [  # (Row field, header)
    ("key", ""),
    ("replicas", "replicas"),
    ("gpu_hours", "GPU-h"),
    ("cost_usd", "cost $"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("usd_per_m_tokens", "$/1M tok"),
    ("usd_per_m_input", "$/1M in"),
    ("usd_per_m_output", "$/1M out"),
    ("tokens_per_usd", "tok/$"),
    ("utilization", "util"),
    ("idle_usd", "idle $"),
    ("planned_usd_per_m", "plan $/1M"),
    ("est_egress_usd", "est. egress $"),
    ("metered_fraction", "metered time"),
]


def _fmt(name: str, v: Any) -> str:
    if v is None:
        return "-"
    if name in ("utilization", "metered_fraction"):
        return f"{v:.1%}"
    if name in ("input_tokens", "output_tokens", "replicas", "tokens_per_usd"):
        return f"{v:,.0f}"
    if name.startswith("usd_per_m") or name == "planned_usd_per_m":
        return f"{v:,.4f}" if v < 1 else f"{v:,.2f}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def headline_lines(finance: Any) -> list[str]:
    """The finance headline, budget, forecast and anomalies as a few plain lines."""
    h = finance.headline
    per_m = (f"${_fmt('usd_per_m', h.usd_per_m_input)} / ${_fmt('usd_per_m', h.usd_per_m_output)} per 1M input / output "
             "tokens" if h.usd_per_m_input is not None else "no tokens metered")
    idle = f"idle ${h.idle_usd:,.2f} ({h.idle_share:.1%})" if h.idle_usd is not None and h.idle_share is not None \
        else "idle: no capacity figure"
    out = [(f"spend ${h.total_usd:,.2f}; {per_m}; {_fmt('tokens_per_usd', h.tokens_per_usd)} tokens per $; {idle}; "
            f"saved by discounts ${h.discount_saved_usd:,.2f} (list ${h.list_usd:,.2f})")]
    if finance.budget:
        out.append(f"budget: {finance.budget.status} ({finance.budget.rule})")
    if finance.forecast:
        out.append(f"month-end forecast ${finance.forecast.forecast_usd:,.2f}: {finance.forecast.method}")
    for a in finance.anomalies:
        out.append(f"anomaly {a.day}: ${a.spend_usd:,.2f} against a trailing mean of ${a.trailing_mean_usd:,.2f} "
                   f"(+${a.excess_usd:,.2f}, mostly {a.driver})")
    return out


def render_table(report: Report, console: Any = None, finance: Any = None) -> None:
    """A rich table on stdout (the finance headline under it); the rules and notes go to stderr."""
    from rich.table import Table

    from orchestrator import console as consoles

    console = console or consoles.out()
    err = consoles.err()
    title = f"cost per token by {report.by}, {iso(report.start)} .. {iso(report.end)}"
    if report.empty:
        console.print(f"{title}\nNo data: " + "; ".join(report.notes))
        return
    table = Table(title=title)
    for name, header in COLUMNS:
        table.add_column(header or report.by, justify="left" if name == "key" else "right")
    for row in [*report.rows, report.total]:
        table.add_row(*(_fmt(n, getattr(row, n)) for n, _ in COLUMNS), style="bold" if row is report.total else None)
    console.print(wrap_cells(table))
    for line in headline_lines(finance) if finance is not None else []:
        console.print(line, highlight=False, soft_wrap=True)
    for note in report.notes:
        err.print(f"note: {note}")
    err.print(f"rules: {report.rules}", highlight=False)


def _records(report: Report) -> list[dict[str, Any]]:
    return [{"group": report.by, **r.as_dict()} for r in [*report.rows, report.total]]


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    fields = ["group", *Row.__dataclass_fields__]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    if not report.empty:
        for rec in _records(report):
            w.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return buf.getvalue()


def to_json(report: Report, finance: Any = None) -> str:
    """The report; with its finance figures (headline, budget, forecast, anomalies, showback) unless empty."""
    if finance is None and not report.empty:
        from orchestrator.reports.finance import compute_finance

        finance = compute_finance(report)
    doc = {
        "period": {"start": iso(report.start), "end": iso(report.end)},
        "by": report.by,
        "empty": report.empty,
        "notes": report.notes,
        "rules": report.rules,
        "rows": [r.as_dict() for r in report.rows],
        "total": report.total.as_dict(),
        "unattributed_usd": report.unattributed_usd,
        "daily_cost_usd": {k: {iso(d): v for d, v in sorted(days.items())} for k, days in report.daily.items()},
    }
    if finance is not None and not report.empty:
        doc.update(finance.as_dict())
        doc["notes"] = [*report.notes, *finance.notes]
    return json.dumps(doc, indent=2)
