"""`orch schema`: the JSON Schema of the deployment file, for editors."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("schema")
    def schema(
        out: Path | None = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
    ) -> None:
        """Print the JSON Schema of deployment files (point your editor's YAML plugin at it)."""
        from orchestrator.errors import UserError
        from orchestrator.spec.schema import deployment_schema

        text = json.dumps(deployment_schema(), indent=2) + "\n"
        if out is None:
            typer.echo(text, nl=False)
            return
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {out}; in VS Code add `# yaml-language-server: $schema={out}` to a deployment file", err=True)
