"""Entry point of the `orch` console script."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from orchestrator.errors import OrchError

# One module per command (or command group), each with register(app).
COMMANDS = ["init", "validate", "schema", "catalog", "estimate", "place", "apply", "autoscale", "status", "destroy", "bench", "meter",
            "report", "recommend", "check"]


class _OrchGroup(TyperGroup):
    """Turns orch's typed errors into one clear line on stderr and the design's exit codes."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except OrchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_OrchGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Place LLM deployments across clouds and on-prem, run them with vLLM, and report cost per token.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"orch {version('orch')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("orch (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print orch's version and exit"),
) -> None:
    """Place LLM deployments across clouds and on-prem, run them with vLLM, and report cost per token."""


def _register_all() -> None:
    for name in COMMANDS:
        importlib.import_module(f"orchestrator.cli.{name}").register(app)
    from orchestrator.cli.examples import add_examples

    add_examples(app)


_register_all()


def main() -> None:
    try:
        app()
    except OrchError as exc:  # raised outside a command (should not happen, but never a traceback)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
