"""`orch bench ENDPOINT|DEPLOYMENT`: measure TTFT/TPOT/throughput per concurrency; write a Profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from orchestrator.fmt import wrap_cells


def _levels(text: str) -> list[int]:
    from orchestrator.errors import UserError

    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--concurrency {text!r}: expected numbers separated by commas, e.g. 1,4,16") from None
    if not levels or any(c < 1 or c > 1024 for c in levels):
        raise UserError(f"--concurrency {text!r}: each level must be between 1 and 1024")
    return levels


def _target(target: str, state: str | None):  # type: ignore[no-untyped-def]
    """(endpoint, replica or None): a URL as given, or a running replica of the named deployment."""
    from orchestrator.errors import UserError

    if target.startswith(("http://", "https://")):
        return target.rstrip("/"), None
    from orchestrator.metering.store import open_engine, running_replicas
    from orchestrator.suggest import did_you_mean

    running = running_replicas(open_engine(state))
    mine = [r for r in running if r.deployment == target]
    if not mine:
        names = sorted({r.deployment for r in running})
        hint = did_you_mean(target, names) if names else ""
        raise UserError(
            f"no running replica of deployment {target!r}{hint}; give an endpoint URL (http://host:port) "
            f"or a deployment with a running replica ({', '.join(names) or 'none running'})"
        )
    return mine[0].endpoint.rstrip("/"), mine[0]


def _table(results, model: str) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from orchestrator.cli.console import out

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    t = Table(title=f"orch bench: {model}")
    for h in ("conc", "requests", "errors", "in tok", "out tok/s", "req/s", "TTFT p50", "p95", "p99",
              "TPOT p50", "p95", "p99"):
        t.add_column(h, justify="right")
    for r in results:
        t.add_row(str(r.concurrency), str(r.requests), str(r.errors), f"{r.input_tokens_mean:.0f}",
                  f"{r.output_tokens_per_s:,.1f}", f"{r.requests_per_s:,.2f}", ms(r.ttft_p50_ms), ms(r.ttft_p95_ms),
                  ms(r.ttft_p99_ms), ms(r.tpot_p50_ms), ms(r.tpot_p95_ms), ms(r.tpot_p99_ms))
    out().print(wrap_cells(t))


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        target: str = typer.Argument(..., help="an endpoint URL (http://host:port) or a deployment with a running replica"),
        concurrency: str = typer.Option("1,4,16", "--concurrency", help="concurrency levels, comma-separated"),
        input_tokens: int = typer.Option(128, "--input-tokens", min=1, help="prompt length (tokens, approximate)"),
        output_tokens: int = typer.Option(64, "--output-tokens", min=1, help="tokens generated per request (exact)"),
        duration: float = typer.Option(10.0, "--duration", min=0.1, max=3600, help="seconds per concurrency level"),
        max_requests: int = typer.Option(500, "--max-requests", min=1, help="request budget per concurrency level"),
        model: Optional[str] = typer.Option(None, "--model", help="served model name (default: the first of /v1/models)"),
        profile_out: Optional[Path] = typer.Option(None, "--profile-out", help="directory for the measured profile (default: the perf model's profile dir)"),
        no_profile: bool = typer.Option(False, "--no-profile", help="do not write a profile"),
        profile_model: Optional[str] = typer.Option(None, "--profile-model", help="registry model the profile is for (default: the replica's, else the served name)"),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU type of the endpoint (default: the replica's)"),
        gpus: Optional[int] = typer.Option(None, "--gpus", min=1, help="GPUs per replica (default: the replica's, else 1)"),
        quantization: str = typer.Option("bf16", "--quantization", help="quantization the endpoint serves"),
        state: Optional[str] = typer.Option(None, "--state", help="state database (to find a deployment's replica)"),
        as_json: bool = typer.Option(False, "--json", help="print results as JSON on stdout"),
        api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="name of an environment variable holding the endpoint's key (never printed); default: $ORCH_API_KEY, else the key orch keeps for this machine's endpoints"),
    ) -> None:
        """Drive load at an OpenAI-compatible endpoint (streaming /v1/completions) and measure it."""
        import asyncio
        import os

        import httpx
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from orchestrator.bench.loadgen import run_bench
        from orchestrator.cli.console import err
        from orchestrator.errors import UserError

        levels = _levels(concurrency)
        headers: dict[str, str] = {}
        if api_key_env:
            if not os.environ.get(api_key_env):
                raise UserError(f"--api-key-env {api_key_env}: that environment variable is not set")
            headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
        else:
            from orchestrator.serve.keys import local_api_key

            key = local_api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
        endpoint, replica = _target(target, state)
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} requests"),
            TimeElapsedColumn(), console=err(), transient=False,
        )
        task_ids: dict[int, int] = {}
        current: list[int] = []

        def level_start(c: int, served: str) -> None:
            if current:
                progress.stop_task(current[0])
            current[:] = [progress.add_task(f"concurrency {c:>4} ({served})", total=max_requests)]
            task_ids[c] = current[0]

        def on_result(_r) -> None:  # type: ignore[no-untyped-def]
            progress.advance(current[0])

        try:
            with progress:
                served, results = asyncio.run(
                    run_bench(endpoint, levels, input_tokens, output_tokens, duration, model=model,
                              max_requests=max_requests, headers=headers, on_level_start=level_start,
                              on_result=on_result)
                )
        except httpx.HTTPError as exc:
            raise UserError(f"cannot benchmark {endpoint}: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            raise UserError(f"cannot benchmark {endpoint}: {exc}") from None

        if as_json:
            typer.echo(json.dumps({"endpoint": endpoint, "model": served, "levels": [r.as_dict() for r in results]}, indent=2))
        else:
            _table(results, served)
        for r in results:
            for e in r.error_examples:
                typer.echo(f"concurrency {r.concurrency}: error: {e}", err=True)
        if all(r.requests == 0 for r in results):
            raise UserError(f"no request to {endpoint} succeeded; nothing measured")

        if no_profile:
            return
        gpu_name = gpu or (replica.gpu if replica else None)
        if not gpu_name:
            typer.echo("no profile written: give --gpu (and --gpus) to say what hardware this endpoint runs on", err=True)
            return
        from orchestrator.bench.to_profile import to_profile, write_profile

        prof = to_profile(
            results,
            model=profile_model or (replica.model if replica else served),
            gpu=gpu_name,
            gpus=gpus or (replica.gpu_count if replica else 1),
            quantization=quantization,
            endpoint=endpoint,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        path = write_profile(prof, profile_out)
        typer.echo(f"wrote measured profile {path}", err=True)
