"""The CLI's own promises: --version, -h, help that names commands that exist (issue 20, item 19)."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestrator.cli.main import app


def test_version_and_short_help() -> None:
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("orch ")
    for args in (["-h"], ["apply", "-h"], ["autoscale", "-h"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0 and "Usage:" in r.stdout, args


def test_apply_help_names_a_place_option_that_exists() -> None:
    apply_help = CliRunner().invoke(app, ["apply", "-h"]).stdout
    place_help = CliRunner().invoke(app, ["place", "-h"]).stdout
    assert "orch place FILE --out plan.json" in " ".join(apply_help.split())
    assert "--out" in place_help and "-o," not in apply_help


def test_shell_completion_is_offered() -> None:
    r = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="orch")
    assert r.exit_code == 0 and "complete" in r.stdout and "orch" in r.stdout
