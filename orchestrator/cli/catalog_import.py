"""`orch catalog import DIR`: prices from a SkyPilot catalog directory into the user cache (replacing, per region
it covers, what the snapshot or an earlier refresh had; other regions keep their rows)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer


def register(catalog_app: typer.Typer) -> None:
    @catalog_app.command("import")
    def import_cmd(
        directory: Path = typer.Argument(..., help="SkyPilot catalog dir: <dir>/<cloud>/vms.csv (e.g. ~/.sky/catalogs/v7)",
                                         show_default=False),
        provider: list[str] | None = typer.Option(None, "--provider", help="aws | gcp | azure (repeatable); default: every cloud found"),
        as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
    ) -> None:
        """Import a SkyPilot catalog (its published vms.csv layout) as the prices `orch place` uses."""
        from orchestrator.catalog.offerings import snapshot_offerings, write_cache
        from orchestrator.catalog.regions import all_regions
        from orchestrator.catalog.skypilot import CLOUDS, find_files, parse
        from orchestrator.cli.catalog_refresh import merge, previous_rows
        from orchestrator.errors import UserError

        wanted = [p.strip().lower() for p in provider] if provider else None
        for p in wanted or []:
            if p not in CLOUDS:
                raise UserError(f"--provider must be one of {', '.join(CLOUDS)}, found {p!r}")
        files = find_files(directory.expanduser(), wanted)
        known, snap = set(all_regions()), snapshot_offerings()
        parsed = {}
        for kind, path in files.items():  # parse everything first: nothing is written when one file is bad
            rows, skipped = parse(kind, path, known, snap)
            if not rows:
                raise UserError(f"{path}: no GPU offering orch can use (GPU types and regions orch knows); nothing imported")
            parsed[kind] = (path, rows, skipped)
        summary = []
        for kind, (path, rows, skipped) in parsed.items():
            by_region: dict[str, list] = {}
            for o in rows:
                by_region.setdefault(o.region.split(":", 1)[1], []).append(o)
            merged = merge(previous_rows(kind), by_region, kind)
            cache = write_cache(kind, merged, origin=f"SkyPilot catalog import of {path.resolve()} on {date.today().isoformat()}")
            summary.append({"provider": kind, "file": str(path), "imported": len(rows), "regions": len(by_region),
                            "skipped_rows": skipped, "cache": str(cache), "rows": len(merged)})
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        for s in summary:
            typer.echo(f"{s['provider']}: {s['imported']} offerings in {s['regions']} regions from {s['file']} "
                       f"({s['skipped_rows']} rows skipped: GPU, region or price orch cannot use) -> {s['cache']}")
