"""`orch catalog refresh --provider aws|gcp|azure [--region R ...]`: live prices and instance types into the user cache.

Each region is fetched through the provider's own offerings() (AWS Pricing + EC2, GCP Billing Catalog + Compute,
Azure Retail Prices). The full list is built first and written once, atomically: regions that failed (or were not
asked for) keep their previous cached or snapshot rows, and failed ones are named in a warning. Exit 3 when every
requested region failed; missing credentials stop the refresh at once.
"""

from __future__ import annotations

import json
import os
from datetime import date
from typing import TYPE_CHECKING, Optional

import typer

from orchestrator.errors import AuthError, OrchError, ProviderError, UserError
from orchestrator.fmt import wrap_cells

if TYPE_CHECKING:
    from orchestrator.catalog.types import Offering
    from providers.base import Provider

CLOUDS = ("aws", "gcp", "azure")


def make_provider(kind: str, project: str | None = None) -> Provider:
    """The provider whose offerings() fetch live prices (credentials from the SDK's standard chain)."""
    from providers import get_provider

    if kind == "gcp":
        return get_provider("gcp", project=project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT"))
    return get_provider(kind)


def previous_rows(kind: str) -> list[Offering]:
    """What the catalog holds for ``kind`` now: the user cache if there is one, else the embedded snapshot."""
    from orchestrator.catalog.offerings import cached_offerings, snapshot_offerings

    cached = cached_offerings(kind)
    return cached if cached is not None else [o for o in snapshot_offerings() if o.provider == kind]


def default_regions(kind: str) -> list[str]:
    """The regions the catalog already covers for ``kind`` (snapshot or cache), bare names, in order."""
    seen: dict[str, None] = {}
    for o in previous_rows(kind):
        seen.setdefault(o.region.split(":", 1)[1], None)
    return list(seen)


_NETWORK_DOWN = ("Name or service not known", "Temporary failure in name resolution", "nodename nor servname",
                 "Could not connect to the endpoint", "Connection refused", "Network is unreachable",
                 "No route to host", "getaddrinfo failed")


def asked_regions(kind: str, asked: list[str]) -> list[str]:
    """Bare region names, in order, once each ("aws:us-east-1" and "us-east-1" alike); another cloud's is an error."""
    regions: list[str] = []
    for r in asked:
        name = r.split(":", 1)[1] if r.startswith(f"{kind}:") else r
        if ":" in name:
            raise UserError(f"region {r!r} is not a {kind} region")
        if name not in regions:
            regions.append(name)
    return regions


def _no_network(message: str) -> bool:
    """The error of a request that never reached the provider (DNS, connection): every region would fail alike."""
    return any(s in message for s in _NETWORK_DOWN)


def refresh_regions(provider: Provider, kind: str, regions: list[str]) -> tuple[dict[str, list[Offering]], dict[str, str]]:
    """Fetch each region with a progress bar on stderr: (offerings per region, error message per failed region)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from orchestrator.cli.console import err

    fetched: dict[str, list[Offering]] = {}
    failed: dict[str, str] = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err(), transient=False) as progress:
        task = progress.add_task(f"{kind}: refreshing", total=len(regions))
        for region in regions:
            progress.update(task, description=f"{kind}:{region}")
            try:
                rows = provider.offerings([f"{kind}:{region}"])
            except AuthError:
                raise  # no credentials: every region would fail the same way
            except OrchError as exc:
                from orchestrator.catalog.keyless import NetworkDown

                if not fetched and not failed and (isinstance(exc, NetworkDown) or _no_network(str(exc))):  # the first region could not even connect
                    raise ProviderError(f"{kind}: cannot reach the price API ({exc}); is this machine offline? "
                                        "The catalog is unchanged") from None
                failed[region] = str(exc)
            else:
                if rows:
                    fetched[region] = rows
                else:
                    failed[region] = f"{kind}: no GPU offerings returned for {region}"
            progress.advance(task)
    return fetched, failed


def merge(previous: list[Offering], fetched: dict[str, list[Offering]], kind: str) -> list[Offering]:
    """Fresh rows for the regions fetched; every other region keeps its previous rows."""
    fresh = {f"{kind}:{r}" for r in fetched}
    kept = [o for o in previous if o.region not in fresh]
    return kept + [o for rows in fetched.values() for o in rows]


def register(catalog_app: typer.Typer) -> None:
    from orchestrator.cli import catalog_import

    catalog_import.register(catalog_app)

    @catalog_app.command("refresh")
    def refresh(
        provider: str = typer.Option(..., "--provider", help="aws | gcp | azure (--source gpuhunt also: lambdalabs | "
                                     "runpod | nebius)"),
        region: Optional[list[str]] = typer.Option(
            None, "--region", help="region to refresh (repeatable), e.g. us-east-1; default: the regions the catalog covers"
        ),
        project: Optional[str] = typer.Option(None, "--project", help="GCP project (default: GOOGLE_CLOUD_PROJECT or the ADC project)"),
        as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
        source: Optional[str] = typer.Option(
            None, "--source", help="api (the provider's SDK, credentials) | public (no credentials: Azure Retail "
            "Prices, AWS public price list; GCP has none) | gpuhunt (dstack's catalog, extra orch[gpuhunt]). "
            "Default: public for azure, api for aws and gcp"),
        base_url: Optional[str] = typer.Option(
            None, "--base-url", help="price host for --source public (default: ORCH_AZURE_PRICES_URL / "
            "ORCH_AWS_PRICING_URL, else the cloud's own); for --source gpuhunt its catalog: a URL or a local "
            "directory (default: GPUHUNT_CATALOG_DIR / GPUHUNT_CATALOG_URL, else dstack's bucket)"),
        offline: bool = typer.Option(
            False, "--offline", help="fail at once: a refresh needs the network (--source gpuhunt: a local --base-url only)"),
    ) -> None:
        """Fetch live prices and GPU instance types into the user-level catalog cache (~/.cache/orch/catalog)."""
        from orchestrator.catalog.offerings import cache_path, write_cache
        from orchestrator.suggest import did_you_mean

        kind = provider.strip().lower()
        if (source or "").strip().lower() == "gpuhunt":
            return refresh_from_gpuhunt(kind, region or [], base_url, offline, as_json)
        if kind not in CLOUDS:
            raise UserError(f"unknown provider {provider!r}{did_you_mean(kind, list(CLOUDS))}; catalog refresh knows: {', '.join(CLOUDS)}")
        if offline:
            raise ProviderError(f"{kind}: --offline: a refresh fetches prices over the network; the catalog is "
                                "unchanged (`orch catalog import DIR` reads a SkyPilot catalog from disk)")
        mode = (source or ("public" if kind == "azure" else "api")).strip().lower()
        if mode not in ("api", "public"):
            raise UserError(f"--source must be api, public or gpuhunt, found {source!r}")
        regions = asked_regions(kind, region or default_regions(kind))
        if not regions:
            raise UserError(f"no regions to refresh for {kind}; pass --region")

        if mode == "public":
            from orchestrator.catalog.keyless import public_source

            prov = public_source(kind, base_url)
        else:
            prov = make_provider(kind, project)
        fetched, failed = refresh_regions(prov, kind, regions)
        if not fetched:
            detail = "; ".join(f"{r}: {msg}" for r, msg in failed.items())
            raise ProviderError(f"{kind}: refresh failed in every region ({detail}); the catalog is unchanged")

        previous = previous_rows(kind)
        rows = merge(previous, fetched, kind)
        origin = f"catalog refresh --source {mode} on {date.today().isoformat()}"
        path = write_cache(kind, rows, origin=origin)  # one atomic write of the complete list

        for r, msg in failed.items():
            kept = sum(1 for o in previous if o.region == f"{kind}:{r}")
            typer.echo(f"warning: {kind}:{r} not refreshed ({msg}); kept its {kept} previous row(s)", err=True)
        summary = [
            {
                "region": f"{kind}:{r}",
                "status": "refreshed" if r in fetched else "failed",
                "offerings": len(fetched[r]) if r in fetched else sum(1 for o in previous if o.region == f"{kind}:{r}"),
                "error": failed.get(r),
            }
            for r in regions
        ]
        if as_json:
            typer.echo(json.dumps({"provider": kind, "cache": str(path), "rows": len(rows), "regions": summary}, indent=2))
        else:
            _print_summary(kind, summary)
        typer.echo(f"{kind}: {len(rows)} offerings written to {cache_path(kind)}", err=True)


def refresh_from_gpuhunt(kind: str, asked: list[str], where: str | None, offline: bool, as_json: bool) -> None:
    """`--source gpuhunt`: the regions gpuhunt prices (or those asked for) replace their rows, written once."""
    from orchestrator.catalog.gpuhunt_source import gpuhunt_offerings
    from orchestrator.catalog.offerings import write_cache

    wanted = asked_regions(kind, asked)
    mapped = gpuhunt_offerings(kind, where, offline=offline)
    fetched = {r: rows for r, rows in mapped.by_region.items() if not wanted or r in wanted}
    skipped = mapped.skipped_text()
    if not fetched:
        raise ProviderError(f"{kind}: gpuhunt's catalog has no row orch can use"
                            f"{' in ' + ', '.join(wanted) if wanted else ''}"
                            f"{' (skipped: ' + skipped + ')' if skipped else ''}; the catalog is unchanged")
    previous = previous_rows(kind)
    rows = merge(previous, fetched, kind)
    path = write_cache(kind, rows, origin=f"catalog refresh --source gpuhunt on {date.today().isoformat()}")
    regions = list(dict.fromkeys([*(wanted or default_regions(kind)), *fetched]))
    summary = []
    for r in regions:
        kept = sum(1 for o in previous if o.region == f"{kind}:{r}")
        if r not in fetched:
            typer.echo(f"warning: {kind}:{r} not refreshed (gpuhunt has no row orch can use there); kept its "
                       f"{kept} previous row(s)", err=True)
        summary.append({"region": f"{kind}:{r}", "status": "refreshed" if r in fetched else "kept",
                        "offerings": len(fetched[r]) if r in fetched else kept,
                        "error": None if r in fetched else "no usable gpuhunt row"})
    if skipped:
        typer.echo(f"{kind}: skipped gpuhunt rows: {skipped}", err=True)
    if as_json:
        typer.echo(json.dumps({"provider": kind, "source": "gpuhunt", "cache": str(path), "rows": len(rows),
                               "regions": summary, "skipped": dict(mapped.skipped),
                               "unknown_gpus": dict(mapped.unknown_gpus)}, indent=2))
    else:
        _print_summary(kind, summary)
    typer.echo(f"{kind}: {len(rows)} offerings written to {path}", err=True)


def _print_summary(kind: str, summary: list[dict[str, object]]) -> None:
    from rich.table import Table

    from orchestrator.cli.console import out

    console = out()
    table = Table(title=f"catalog refresh: {kind}")
    for col in ("region", "status", "offerings"):
        table.add_column(col, justify="right" if col == "offerings" else "left")
    for row in summary:
        table.add_row(str(row["region"]), str(row["status"]), str(row["offerings"]))
    console.print(wrap_cells(table))
