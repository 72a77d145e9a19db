"""Terminal table, CSV and JSON renderings of a Report."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

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


def render_table(report: Report, console: Any = None) -> None:
    """A rich table on stdout; the rules and notes go to stderr."""
    from rich.table import Table

    from orchestrator.cli import console as consoles

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
    console.print(table)
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


def to_json(report: Report) -> str:
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
    return json.dumps(doc, indent=2)
