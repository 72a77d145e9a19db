"""`orch validate FILE...`: check deployment files and report every problem with file:line:column."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _plural(n: int, word: str, plural: str) -> str:
    return f"{n} {word if n == 1 else plural}"


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        files: list[Path] = typer.Argument(..., help="deployment files to check (- reads stdin)", show_default=False),
        structure_only: bool = typer.Option(
            False, "--structure-only", help="skip checks that need the catalog, model registry and performance model"
        ),
        json_out: bool = typer.Option(False, "--json", help="print results as JSON on stdout"),
    ) -> None:
        """Check deployment files: YAML, fields and types, models, regions, GPUs, policies, reachable SLOs."""
        from orchestrator.errors import SpecError
        from orchestrator.spec.loader import load_spec, load_spec_text
        from orchestrator.spec.yaml_source import MAX_BYTES

        results = []
        failed = 0
        for file in files:
            try:
                if str(file) == "-":  # read the file from stdin (at most the size limit, plus one byte to tell)
                    loaded = load_spec_text(sys.stdin.buffer.read(MAX_BYTES + 1), "<stdin>", check=not structure_only)
                else:
                    loaded = load_spec(file, check=not structure_only)
            except SpecError as exc:
                failed += 1
                results.append({"file": str(file), "ok": False, "problems": [vars(p) for p in exc.problems]})
                if not json_out:
                    for p in exc.problems:
                        typer.echo(str(p), err=True)
                continue
            spec = loaded.spec
            n_dep, n_pol = len(spec.deployments), len(spec.policies)
            results.append(
                {"file": str(file), "ok": True, "deployments": n_dep, "policies": n_pol, "sha256": loaded.sha256}
            )
            if loaded.warnings:
                results[-1]["warnings"] = [vars(p) for p in loaded.warnings]
            if not json_out:
                summary = f"{_plural(n_dep, 'deployment', 'deployments')}, {_plural(n_pol, 'policy', 'policies')}"
                typer.echo(f"ok: {summary} ({file})")
                for w in loaded.warnings:
                    typer.echo(f"warning: {w}", err=True)
        if json_out:
            typer.echo(json.dumps(results, indent=2))
        if failed:
            n_problems = sum(len(r["problems"]) for r in results if not r["ok"])
            typer.echo(
                f"error: {_plural(n_problems, 'problem', 'problems')} in {_plural(failed, 'file', 'files')}", err=True
            )
            raise typer.Exit(1)
