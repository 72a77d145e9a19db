"""The examples at the end of each command's --help name options the command has, and every command has some."""

from __future__ import annotations

import shlex

import typer
from typer.testing import CliRunner

from orchestrator.cli.examples import EXAMPLES
from orchestrator.cli.main import app


def _commands() -> dict[str, object]:
    root = typer.main.get_command(app)
    out = {}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        if subs:
            out.update(subs)
        else:
            out[name] = cmd
    return out


def test_every_command_has_examples_that_use_its_real_options() -> None:
    commands = _commands()
    assert set(commands) == set(EXAMPLES), set(commands) ^ set(EXAMPLES)
    for name, lines in EXAMPLES.items():
        opts = {o for p in commands[name].params for o in p.opts + p.secondary_opts}  # type: ignore[attr-defined]
        for line in lines:
            words = shlex.split(line.split("#")[0].split("&&")[-1].split(">")[0])
            assert words[0] == "orch" and name in words[:3], line
            for w in words:
                if w.startswith("--"):
                    assert w.split("=")[0] in opts, f"{line}: {name} has no {w}"


def test_help_shows_them() -> None:
    r = CliRunner().invoke(app, ["place", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout and "orch place examples/quickstart.yaml" in r.stdout
