"""`orch init [FILE]`: write a commented starter deployment file."""

from __future__ import annotations

from pathlib import Path

import typer


def starter_text() -> str:
    from importlib import resources

    return resources.files("orchestrator.data").joinpath("starter.yaml").read_text(encoding="utf-8")


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        file: Path = typer.Argument(Path("deploy.yaml"), help="where to write the starter file"),
        force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing file"),
    ) -> None:
        """Write a commented starter deployment file (default deploy.yaml)."""
        from orchestrator.errors import UserError

        if file.exists() and not force:
            raise UserError(f"{file} already exists; use --force to overwrite it")
        if file.is_dir():
            raise UserError(f"{file} is a directory")
        try:
            file.write_text(starter_text(), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {file}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {file}; next: orch validate {file}, then orch place {file}", err=True)
