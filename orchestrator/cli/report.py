"""`orch report`: cost per token for a period, by model/deployment/team/provider/region."""

from __future__ import annotations

import calendar
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Optional

import typer

FORMATS = ("table", "csv", "json", "focus", "html", "pdf", "parquet")


def _parse_when(value: str, *, end_of_day: bool) -> float:
    """ISO date or date-time (UTC unless it says otherwise). A bare --until date includes that day."""
    from orchestrator.errors import UserError

    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            ts = datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()
            return ts + 86400 if end_of_day else ts
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"cannot read {value!r} as a date (expected YYYY-MM-DD or an ISO 8601 date-time)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def period_bounds(period: str | None, since: str | None, until: str | None, now: float) -> tuple[float, float]:
    """[start, end) in unix seconds. --period YYYY-MM or YYYY-MM-DD; default: the current month."""
    from orchestrator.errors import UserError

    if period and (since or until):
        raise UserError("give either --period or --since/--until, not both")
    if since or until:
        start = _parse_when(since, end_of_day=False) if since else 0.0
        end = _parse_when(until, end_of_day=True) if until else now
        if end <= start:
            raise UserError(f"--until ({until}) must be after --since ({since})")
        return start, end
    if period and len(period) == 10:
        start = _parse_when(period, end_of_day=False)
        return start, start + 86400
    if period:
        try:
            y, m = (int(x) for x in period.split("-"))
            days = calendar.monthrange(y, m)[1]
        except ValueError:
            raise UserError(f"--period {period!r}: expected a month (2026-11) or a day (2026-11-23)") from None
    else:
        d = datetime.fromtimestamp(now, timezone.utc)
        y, m, days = d.year, d.month, calendar.monthrange(d.year, d.month)[1]
    start = datetime(y, m, 1, tzinfo=timezone.utc).timestamp()
    return start, start + days * 86400


def _check_format(fmt: str, out: Path | None) -> None:
    from orchestrator.errors import UserError
    from orchestrator.suggest import did_you_mean

    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}{did_you_mean(fmt, FORMATS)}; choose one of {', '.join(FORMATS)}")
    if fmt in ("parquet", "pdf") and out is None:
        raise UserError(f"--format {fmt} needs --out FILE ({ {'parquet': 'Parquet', 'pdf': 'PDF'}[fmt]} is binary)")


def _monthly_budget(file: Path | None, budget_usd: float | None) -> float | None:
    """--budget, else the deployment file's budget.monthly_usd (a note when the file has none)."""
    monthly = budget_usd
    if file is not None:
        from orchestrator.spec.loader import load_spec

        spec_budget = load_spec(file).spec.budget  # a bad file: every problem, located
        if monthly is None and spec_budget is not None:
            monthly = spec_budget.monthly_usd
        elif monthly is None:
            typer.echo(f"note: {file} has no budget.monthly_usd: no budget against actual", err=True)
    return monthly


def _build(state: str | None, sample: bool, start: float, end: float, by: str):  # type: ignore[no-untyped-def]
    """The report of [start, end), after one scrape of the running replicas when ``sample``."""
    from orchestrator.metering.store import open_engine
    from orchestrator.reports.aggregate import build_report

    engine = open_engine(state)
    if sample:
        from orchestrator.cli.meter import summarize
        from orchestrator.metering.meter import meter_once

        samples = meter_once(engine)
        if samples:
            typer.echo(summarize(samples), err=True)
    return build_report(engine, start, end, by, now=time.time())  # running replicas are billed up to now


def _write(report, finance, fmt: str, out: Path | None) -> None:  # type: ignore[no-untyped-def]
    """The report in ``fmt``: on stdout, or into ``out`` (saying so on stderr); then the report's notes."""
    if fmt == "table" and out is None:
        from orchestrator.reports.table import render_table

        render_table(report, finance=finance)
        return
    if fmt == "pdf":
        from orchestrator.reports.html import render_html
        from orchestrator.reports.pdf import html_to_pdf

        html_to_pdf(render_html(report, finance), out)
        typer.echo(f"wrote PDF report to {out}", err=True)
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
        return
    if fmt == "parquet":
        from orchestrator.reports.focus import write_parquet

        write_parquet(report, str(out))
        typer.echo(f"wrote FOCUS Parquet ({len(report.lines)} replica-days) to {out}", err=True)
        return
    if fmt == "focus":
        from orchestrator.reports.focus import to_csv as text_of
    elif fmt == "html":
        from orchestrator.reports.html import render_html as text_of
    elif fmt == "json":
        from orchestrator.reports.table import to_json as text_of
    else:  # csv, or table into a file
        from orchestrator.reports.table import to_csv as text_of
    text = text_of(report, finance) if fmt in ("html", "json") else text_of(report)
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {fmt} report to {out}", err=True)
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        period: Optional[str] = typer.Option(None, "--period", help="a month (2026-11) or a day (2026-11-23); default: this month"),
        since: Optional[str] = typer.Option(None, "--since", help="start date (UTC), inclusive"),
        until: Optional[str] = typer.Option(None, "--until", help="end date (UTC), inclusive of that day"),
        by: str = typer.Option("deployment", "--by", help="model | deployment | team | provider | region | replica | adapter (LoRA: an estimate, see the note)"),
        fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json | focus | html | pdf | parquet"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        sample: bool = typer.Option(True, "--sample/--no-sample", help="scrape running replicas once before reporting"),
        file: Optional[Path] = typer.Option(None, "--file", help="deployment file: its budget.monthly_usd is set against actual"),
        budget_usd: Optional[float] = typer.Option(None, "--budget", min=0.01, help="monthly budget in USD (overrides the file's)"),
    ) -> None:
        """$ per 1M tokens (input/output apart), tokens per $, GPU-hours, utilization, idle cost, planned vs actual."""
        _check_format(fmt, out)
        monthly = _monthly_budget(file, budget_usd)
        if fmt == "pdf":
            from orchestrator.reports.pdf import find_chromium

            find_chromium()  # before any work: a clear error where Chromium is missing
        start, end = period_bounds(period, since, until, time.time())
        report = _build(state, sample, start, end, by)
        from orchestrator.reports.finance import compute_finance

        finance = compute_finance(report, monthly) if fmt in ("table", "pdf", "html", "json") else None
        _write(report, finance, fmt, out)
