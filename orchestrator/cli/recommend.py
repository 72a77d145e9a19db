"""`orch recommend FILE`: each deployment re-placed at its metered traffic; what runs, what to run, the saving."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer

DEFAULT_DAYS = 7


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend_cmd(
        file: Path = typer.Argument(..., help="deployment file", show_default=False),
        since: Optional[str] = typer.Option(None, "--since", help="start date (UTC), inclusive; default: 7 days ago"),
        until: Optional[str] = typer.Option(None, "--until", help="end date (UTC), inclusive of that day; default: now"),
        period: Optional[str] = typer.Option(None, "--period", help="a month (2026-11) or a day (2026-11-23) instead"),
        rate: str = typer.Option("peak", "--rate", help="place at the busiest metered hour (peak) or the mean rate"),
        deployment: Optional[list[str]] = typer.Option(None, "--deployment", "-d",
                                                       help="only this deployment (repeatable)"),
        json_out: bool = typer.Option(False, "--json", help="print the recommendations as JSON on stdout"),
        write: Optional[Path] = typer.Option(None, "--write", help="write FILE with the measured traffic here, "
                                             "for orch place / orch apply"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        time_limit: float = typer.Option(60.0, "--time-limit", min=0.1, help="seconds for the solver"),
    ) -> None:
        """Re-place each deployment at the traffic metered over a window (default: the last 7 days): the current
        and the recommended configuration, the monthly saving, and the SLO margin."""
        from orchestrator.cli.report import period_bounds
        from orchestrator.metering.store import open_engine
        from orchestrator.recommend import recommend
        from orchestrator.spec.loader import load_spec

        now = time.time()
        if period or since or until:
            start, end = period_bounds(period, since, until, now)
        else:
            start, end = now - DEFAULT_DAYS * 86400, now
        loaded = load_spec(file)
        _check_names(loaded, deployment or [])
        engine = open_engine(state)
        typer.echo(f"re-placing {len(loaded.spec.deployments)} deployment(s) of {file} at the traffic metered "
                   f"{_day(start)} .. {_day(min(end, now))} ({rate} rate)…", err=True)
        recs = recommend(loaded, engine, start, end, now, rate=rate, time_limit=time_limit)
        if deployment:
            recs = [r for r in recs if r.deployment in deployment]
        if write is not None:
            _write(loaded, recs, write)
        if json_out:
            typer.echo(json.dumps({"file": str(file), "start": _iso(start), "end": _iso(min(end, now)), "rate": rate,
                                   "recommendations": [r.as_dict() for r in recs]}, indent=2))
        else:
            for r in recs:
                _print(r)
            saving = sum(r.monthly_saving_usd or 0.0 for r in recs)
            if any(r.monthly_saving_usd is not None for r in recs):
                typer.echo(f"total: {'save' if saving >= 0 else 'costs'} ${abs(saving):,.2f} a month")
        from orchestrator.recommend import NO_PLAN_NOTE

        if any(r.note.startswith(NO_PLAN_NOTE) for r in recs):
            from orchestrator.cli.place import NO_PLAN

            raise typer.Exit(NO_PLAN)


def _iso(ts: float) -> str:
    from orchestrator.reports.aggregate import iso

    return iso(ts)


def _day(ts: float) -> str:
    return _iso(ts)[:16].replace("T", " ")


def _check_names(loaded: Any, names: list[str]) -> None:
    from orchestrator.errors import SpecError
    from orchestrator.suggest import did_you_mean

    known = [d.name for d in loaded.spec.deployments]
    bad = [n for n in names if n not in known]
    if bad:
        raise SpecError(problems=[loaded.problem(("deployments",), f"no deployment named {n!r}{did_you_mean(n, known)};"
                                                 f" the file has {', '.join(known)}", at_key=True) for n in bad])


def _write(loaded: Any, recs: list[Any], out: Path) -> None:
    import os
    import tempfile

    from orchestrator.errors import UserError
    from orchestrator.recommend import updated_traffic
    from orchestrator.spec.traffic_edit import with_traffic

    changes = updated_traffic(recs)
    # checked as the file it becomes: relative paths in it (a model's config.json) resolve against OUT's folder
    text, kept = with_traffic(loaded.path.read_bytes(), str(out), changes)
    try:  # whole or nothing: a temporary file beside OUT, then renamed over it
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.resolve().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write: {exc.strerror or exc}") from None
    how = "comments and layout kept" if kept else "rewritten from its data: comments could not be kept"
    typer.echo(f"wrote {out}: traffic of {', '.join(changes) or 'no deployment'} as measured ({how})", err=True)


def _print(r: Any) -> None:
    from orchestrator.fmt import signed_usd

    m = r.measured
    head = r.deployment
    if m is not None:
        head += (f"  measured {m.mean_rps:,.4g} req/s mean, {m.peak_rps:,.4g} peak hour over {m.metered_hours:,.1f} h; "
                 f"{m.input_tokens:,} in / {m.output_tokens:,} out tokens (file: {m.file_requests_per_second:,.4g} "
                 f"req/s, {m.file_input_tokens:,} / {m.file_output_tokens:,})")
        if m.sources is not None:
            head += "; users " + ", ".join(f"{s['region']} {s['share']:.0%}" for s in m.sources)
    typer.echo(head)
    for label, c in (("current", r.current), ("recommended", r.recommended)):
        if c is not None:
            extra = f", gateways ${c.gateways_usd_per_hour:,.3f}/h" if c.gateways_usd_per_hour else ""
            extra += f", egress ${c.egress_usd_per_month:,.2f}/month" if c.egress_usd_per_month else ""
            if label == "current" and c.capacity_rps and m is not None:
                extra += f"; planned capacity {c.capacity_rps:,.4g} req/s, measured mean {m.mean_rps / c.capacity_rps:.0%} of it"
            typer.echo(f"  {label + ':':<13}{c.describe()}: {c.replicas} replica(s), {c.gpus} GPU(s), "
                       f"${c.usd_per_hour:,.2f}/h = ${c.usd_per_month:,.2f}/month{extra}")
    if r.monthly_saving_usd is not None:
        typer.echo(f"  saving:      {signed_usd(r.monthly_saving_usd, '/month')}")
    s = r.slo_margin
    if s:
        typer.echo(f"  SLO margin:  TTFT p95 {s['ttft_p95_ms']:,.0f} of {s['ttft_slo_ms']:,.0f} ms, TPOT p95 "
                   f"{s['tpot_p95_ms']:,.1f} of {s['tpot_slo_ms']:,.1f} ms; capacity {s['capacity_rps']:,.4g} req/s: "
                   f"{_pct(s['capacity_over_peak'])} over the peak, {_pct(s['capacity_over_mean'])} over the mean "
                   f"(headroom asked {s['headroom']:.0%})")
    typer.echo(f"  {r.note}\n")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.0%}"
