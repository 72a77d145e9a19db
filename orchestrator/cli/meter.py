"""`orch meter`: scrape every running replica's vLLM /metrics on an interval, into the state database."""

from __future__ import annotations

from typing import Optional

import typer


def summarize(samples) -> str:  # type: ignore[no-untyped-def]
    ok = sum(1 for s in samples if s.ok)
    msg = f"scraped {len(samples)} replica(s): {ok} ok, {len(samples) - ok} gap(s)"
    for s in samples:
        if not s.ok:
            msg += f"\n  {s.replica_id}: {s.error}"
    return msg


def register(app: typer.Typer) -> None:
    @app.command("meter")
    def meter_cmd(
        interval: float = typer.Option(15.0, "--interval", min=0.5, help="seconds between scrapes"),
        once: bool = typer.Option(False, "--once", help="take one sample of every running replica and exit"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="seconds to wait for one /metrics"),
    ) -> None:
        """Meter running replicas (token counters, latency histograms, queue, KV usage) in the foreground."""
        from orchestrator.metering.meter import run
        from orchestrator.metering.store import open_engine

        engine = open_engine(state)
        try:
            run(
                engine,
                interval,
                iterations=1 if once else None,
                timeout=timeout,
                on_samples=lambda ss: typer.echo(summarize(ss), err=True),
            )
        except KeyboardInterrupt:
            typer.echo("metering stopped", err=True)
