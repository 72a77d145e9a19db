"""`orch bench ENDPOINT|DEPLOYMENT`: measure TTFT/TPOT/throughput per concurrency; write a Profile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from orchestrator.fmt import wrap_cells

if TYPE_CHECKING:
    from orchestrator.bench.loadgen import LoadSettings


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


def _headers(api_key_env: str | None) -> dict[str, str]:
    """The Authorization header: from the named environment variable, else the key orch keeps for this machine."""
    import os

    from orchestrator.errors import UserError

    if api_key_env:
        if not os.environ.get(api_key_env):
            raise UserError(f"--api-key-env {api_key_env}: that environment variable is not set")
        return {"Authorization": f"Bearer {os.environ[api_key_env]}"}
    from orchestrator.serve.keys import local_api_key

    key = local_api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _measure(endpoint: str, levels: list[int], load: LoadSettings, model: str | None, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """(served model, results) of every level, with a progress bar on stderr; a failure to reach it is one error."""
    import asyncio

    import httpx
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestrator.bench.loadgen import run_bench
    from orchestrator.cli.console import err
    from orchestrator.errors import UserError

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} requests"),
        TimeElapsedColumn(), console=err(), transient=False,
    )
    current: list[int] = []

    def level_start(c: int, served: str) -> None:
        if current:
            progress.stop_task(current[0])
        current[:] = [progress.add_task(f"concurrency {c:>4} ({served})", total=load.max_requests)]

    def on_result(_r) -> None:  # type: ignore[no-untyped-def]
        progress.advance(current[0])

    try:
        with progress:
            return asyncio.run(run_bench(endpoint, levels, load, model=model, headers=headers,
                                         on_level_start=level_start, on_result=on_result))
    except httpx.HTTPError as exc:
        raise UserError(f"cannot benchmark {endpoint}: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"cannot benchmark {endpoint}: {exc}") from None


def _show(endpoint: str, served: str, results, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """The results (JSON on stdout or a table), each level's error examples; an error when nothing succeeded."""
    from orchestrator.errors import UserError

    if as_json:
        typer.echo(json.dumps({"endpoint": endpoint, "model": served, "levels": [r.as_dict() for r in results]}, indent=2))
    else:
        _table(results, served)
    for r in results:
        for e in r.error_examples:
            typer.echo(f"concurrency {r.concurrency}: error: {e}", err=True)
    if all(r.requests == 0 for r in results):
        raise UserError(f"no request to {endpoint} succeeded; nothing measured")


@dataclass(frozen=True)
class _ProfileTarget:
    """What the measured profile is for: the options that name it (None: the replica's, else the default)."""

    model: str | None
    gpu: str | None
    gpus: int | None
    quantization: str
    out_dir: Path | None


def _save_profile(results, load: LoadSettings, endpoint: str, served: str, replica, target: _ProfileTarget) -> None:  # type: ignore[no-untyped-def]
    """Write the results as a profile the perf model reads, or say why none was written."""
    gpu_name = target.gpu or (replica.gpu if replica else None)
    if not gpu_name:
        typer.echo("no profile written: give --gpu (and --gpus) to say what hardware this endpoint runs on", err=True)
        return
    from orchestrator.bench.to_profile import to_profile, write_profile

    prof = to_profile(
        results,
        load,
        model=target.model or (replica.model if replica else served),
        gpu=gpu_name,
        gpus=target.gpus or (replica.gpu_count if replica else 1),
        quantization=target.quantization,
        endpoint=endpoint,
    )
    path = write_profile(prof, target.out_dir)
    typer.echo(f"wrote measured profile {path}", err=True)


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
        from orchestrator.bench.loadgen import LoadSettings

        levels = _levels(concurrency)
        headers = _headers(api_key_env)
        endpoint, replica = _target(target, state)
        load = LoadSettings(input_tokens, output_tokens, duration, max_requests=max_requests)
        served, results = _measure(endpoint, levels, load, model, headers)
        _show(endpoint, served, results, as_json)
        if not no_profile:
            _save_profile(results, load, endpoint, served, replica,
                          _ProfileTarget(profile_model, gpu, gpus, quantization, profile_out))
