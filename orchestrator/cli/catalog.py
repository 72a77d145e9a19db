"""`orch catalog list|models|gpus`: what orch knows about clouds, GPUs and models (refresh lives in catalog_refresh)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

import typer

from orchestrator.errors import UserError
from orchestrator.fmt import wrap_cells
from orchestrator.suggest import did_you_mean

if TYPE_CHECKING:
    from orchestrator.catalog.types import Offering

catalog_app = typer.Typer(
    help="Browse the catalog: GPU offerings and prices, GPU specs, model architectures.",
    no_args_is_help=True,
)


def _filter(offerings: list[Offering], gpu: str | None, provider: str | None, region: str | None) -> list[Offering]:
    from orchestrator.catalog.gpus import get_gpu
    from orchestrator.catalog.regions import all_regions

    if provider is not None:
        providers = sorted({o.provider for o in offerings})
        if provider not in providers:
            raise UserError(f"unknown provider {provider!r}{did_you_mean(provider, providers)}; known: {', '.join(providers)}")
        offerings = [o for o in offerings if o.provider == provider]
    if gpu is not None:
        name = get_gpu(gpu).name  # UserError with a suggestion when unknown
        offerings = [o for o in offerings if o.gpu == name]
    if region is not None:
        known = set(all_regions()) | {o.region for o in offerings}
        short = {rid.split(":", 1)[1] for rid in known}
        if region not in known and region not in short:
            raise UserError(f"unknown region {region!r}{did_you_mean(region, sorted(known | short))}")
        offerings = [o for o in offerings if region in (o.region, o.region.split(":", 1)[1])]
    return offerings


def _as_json(o: Offering) -> dict[str, object]:
    from orchestrator.catalog.freshness import is_stale

    return {
        "provider": o.provider,
        "region": o.region,
        "instance_type": o.instance_type,
        "gpu": o.gpu,
        "gpu_count": o.gpu_count,
        "vcpus": o.vcpus,
        "memory_gb": o.memory_gb,
        "usd_per_hour": o.usd_per_hour,
        "spot_usd_per_hour": o.spot_usd_per_hour,
        "source": o.source,
        "as_of": o.as_of,
        "stale": is_stale(o.as_of),
    }


def _console():  # type: ignore[no-untyped-def]
    """stdout console; when piped, wide enough that rows are not cut."""
    from orchestrator.cli.console import out

    return out()


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.3f}" if x < 10 else f"{x:,.2f}"


@catalog_app.command("list")
def list_offerings(
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU type or alias, e.g. H100"),
    provider: Optional[str] = typer.Option(None, "--provider", help="aws | gcp | azure"),
    region: Optional[str] = typer.Option(None, "--region", help="region, e.g. aws:us-east-1 or us-east-1"),
    spot: bool = typer.Option(False, "--spot", help="rank by spot price; only offerings sold as spot"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list on stdout"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="show at most N offerings"),
) -> None:
    """GPU offerings sorted by price per GPU-hour (the snapshot, or your refreshed cache)."""
    from orchestrator.catalog.offerings import effective_offerings

    rows = _filter(effective_offerings(), gpu, provider, region)
    if spot:
        rows = [o for o in rows if o.spot_usd_per_hour is not None]
        rows.sort(key=lambda o: (o.spot_usd_per_hour or 0.0) / o.gpu_count)
    else:
        rows.sort(key=lambda o: o.usd_per_gpu_hour)
    if limit is not None:
        rows = rows[:limit]
    if as_json:
        typer.echo(json.dumps([_as_json(o) for o in rows], indent=2))
        return
    if not rows:
        typer.echo("no offerings match", err=True)
        return
    from rich.table import Table

    from orchestrator.catalog.freshness import STALE_AFTER_DAYS, is_stale, stale_cutoff

    stale = sum(1 for o in rows if is_stale(o.as_of))
    table = Table(title="GPU offerings (USD, list prices)" + (" by spot price" if spot else ""))
    for col, justify in [
        ("provider", "left"),
        ("region", "left"),
        ("instance type", "left"),
        ("GPUs", "right"),
        ("$/h", "right"),
        ("$/GPU-h", "right"),
        ("spot $/h", "right"),
        ("as of", "left"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in rows:
        per_gpu = (o.spot_usd_per_hour or 0.0) / o.gpu_count if spot else o.usd_per_gpu_hour
        table.add_row(
            o.provider,
            o.region,
            o.instance_type,
            f"{o.gpu_count}x {o.gpu}",
            _money(o.usd_per_hour),
            _money(per_gpu),
            _money(o.spot_usd_per_hour),
            f"{o.as_of} STALE" if is_stale(o.as_of) else o.as_of,
        )
    if stale:
        table.caption = (f"STALE: {stale} of {len(rows)} row(s) priced before {stale_cutoff()} (more than "
                         f"{STALE_AFTER_DAYS} days ago); `orch catalog refresh` or `orch catalog import` replaces them")
        table.caption_justify = "left"
    _console().print(wrap_cells(table))


@catalog_app.command("models")
def list_models(as_json: bool = typer.Option(False, "--json", help="print a JSON list on stdout")) -> None:
    """The model registry: architectures orch can size without a config.json."""
    from orchestrator.model_registry import all_models

    models = all_models()
    if as_json:
        out = [
            {
                "name": m.name,
                "hf_id": m.hf_id,
                "family": m.family,
                "attention": m.attention,
                "params_b": m.params_b,
                "active_params_b": m.active_params_b,
                "layers": m.layers,
                "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0),
                "kv_bytes_8192_tokens_bf16": m.kv_bytes(8192, 2.0),
                "kv_lora_rank": m.kv_lora_rank,
                "qk_rope_head_dim": m.qk_rope_head_dim,
                "sliding_window": m.sliding_window,
                "sliding_layers": m.sliding_layers,
                "max_context": m.max_context,
                "experts": m.experts,
                "experts_per_token": m.experts_per_token,
                "weight_format": m.weight_format,
                "native_weights_gb": round(m.native_weights_gb, 2),
                "source": m.source,
            }
            for m in models
        ]
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.table import Table

    table = Table(
        title="Model registry",
        caption="KV at bf16; KV KiB/token with every layer holding the token; sliding-window (SWA) layers hold at "
        "most their window, so an 8K-token sequence can take less. MLA: one latent per layer, not split by tensor "
        "parallelism. experts: routed per token / total.",
    )
    for col in ["name", "family", "attention", "params (B)", "active (B)", "experts", "KV KiB/token",
                "KV MiB @8K", "context", "weights"]:
        table.add_column(col, justify="left" if col in ("name", "family", "attention", "weights") else "right",
                         no_wrap=col == "name")
    # grouped by family (gemma3 and gemma3_text, qwen3 and qwen3_moe together), smallest first
    for m in sorted(models, key=lambda m: (m.family.split("_")[0], m.params_b, m.name)):
        table.add_row(
            m.name,
            m.family,
            m.attention,
            f"{m.params_b:g}",
            f"{m.active_params_b:g}",
            f"{m.experts_per_token}/{m.experts}" if m.experts else "-",
            f"{m.kv_bytes_per_token(2.0) / 1024:,.4g}",
            f"{m.kv_bytes(8192, 2.0) / 2**20:,.0f}",
            f"{m.max_context:,}",
            m.weight_format,
        )
    _console().print(wrap_cells(table))


@catalog_app.command("gpus")
def list_gpus(as_json: bool = typer.Option(False, "--json", help="print a JSON list on stdout")) -> None:
    """GPU specs (dense peak figures) with their sources."""
    import dataclasses

    from orchestrator.catalog.gpus import all_gpus

    gpus = all_gpus()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(g) for g in gpus], indent=2))
        return
    from rich.table import Table

    table = Table(title="GPUs (dense peak figures)")
    for col in ["name", "vendor", "family", "memory GB", "TB/s", "BF16 TFLOPS", "FP8 TFLOPS", "TDP W", "link GB/s"]:
        table.add_column(col, justify="left" if col in ("name", "vendor", "family") else "right")
    for g in gpus:
        table.add_row(
            g.name,
            g.vendor,
            g.family,
            f"{g.memory_gb:g}",
            f"{g.bandwidth_tbps:g}",
            f"{g.bf16_tflops:g}",
            "-" if g.fp8_tflops is None else f"{g.fp8_tflops:g}",
            f"{g.tdp_w:g}",
            f"{g.link_gbps:g}",
        )
    _console().print(wrap_cells(table))


def register(app: typer.Typer) -> None:
    from orchestrator.cli import catalog_refresh

    app.add_typer(catalog_app, name="catalog")
    catalog_refresh.register(catalog_app)
