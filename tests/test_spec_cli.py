"""`orch validate`, `orch schema`, `orch init` through the real typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.spec.loader import load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "spec"
runner = CliRunner()


def _bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_validate_ok_files() -> None:
    design = FIXTURES / "design_example.yaml"
    result = runner.invoke(app, ["validate", str(design), str(FIXTURES / "minimal.yaml")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"ok: 2 deployments, 1 policy ({design})",
        f"ok: 1 deployment, 0 policies ({FIXTURES / 'minimal.yaml'})",
    ]
    # the design example declares clouds without their launch settings: warned, not refused
    assert all(ln.startswith("warning: ") and "orch apply " in ln for ln in result.stderr.splitlines())


def test_validate_reports_every_problem_with_file_line_column() -> None:
    bad = FIXTURES / "three_problems.yaml"
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:5:12: deployments[0].model: unknown model 'llama-3.1-8c'")
    assert lines[1] == f'{bad}:6:5: deployments[0].quantisation: unknown field "quantisation" (did you mean "quantization"?)'
    assert lines[2] == f"{bad}:8:28: deployments[0].traffic.requests_per_second: expected a valid number, found 'lots'"
    assert lines[3] == "error: 3 problems in 1 file"
    assert len(lines) == 4
    assert result.stdout == ""


def test_validate_mixed_good_and_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((FIXTURES / "minimal.yaml").read_text().replace("share: 0.5}\n        - {region: gcp", "share: 0.4}\n        - {region: gcp"))
    result = runner.invoke(app, ["validate", str(FIXTURES / "minimal.yaml"), str(bad)])
    assert result.exit_code == 1
    assert result.stdout.startswith("ok: 1 deployment")
    assert f"{bad}:11:9: deployments[0].traffic.sources: traffic shares sum to 0.9" in result.stderr
    assert result.stderr.endswith("error: 1 problem in 1 file\n")


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"project: [demo\n", ":2:1: YAML syntax error"),
        (b"", "file is empty"),
        (b"project: \xff\xfe\n", "not UTF-8 text: invalid byte 0xff at byte offset 9"),
        (b"#" * (5 * 1024 * 1024 + 1), "the limit is 5,242,880 bytes"),
        (_bomb().encode(), "more than 100,000 values"),
        (b"project: a\nproject: b\n", ":2:1: duplicate key 'project'"),
        (b"- 1\n", "top level must be a mapping"),
    ],
    ids=["syntax", "empty", "non-utf8", "too-big", "bomb", "duplicate-key", "not-a-mapping"],
)
def test_validate_bad_input_is_one_clear_line(tmp_path: Path, content: bytes, expect: str) -> None:
    p = tmp_path / "deploy.yaml"
    p.write_bytes(content)
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(p)) and expect in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)  # typer.Exit(1), not a crash


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nope.yaml'}: file not found"


def test_validate_json() -> None:
    result = runner.invoke(app, ["validate", "--json", str(FIXTURES / "minimal.yaml"), str(FIXTURES / "three_problems.yaml")])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out[0]["ok"] is True and out[0]["deployments"] == 1 and len(out[0]["sha256"]) == 64
    assert out[1]["ok"] is False
    assert [(p["line"], p["column"], p["path"]) for p in out[1]["problems"]] == [
        (5, 12, "deployments[0].model"),
        (6, 5, "deployments[0].quantisation"),
        (8, 28, "deployments[0].traffic.requests_per_second"),
    ]


def test_validate_structure_only_skips_semantic_checks(tmp_path: Path) -> None:
    p = tmp_path / "deploy.yaml"
    p.write_text((FIXTURES / "minimal.yaml").read_text().replace("llama-3.1-8b", "my-private-model"))
    assert runner.invoke(app, ["validate", str(p)]).exit_code == 1
    assert runner.invoke(app, ["validate", "--structure-only", str(p)]).exit_code == 0


def test_schema_is_valid_json_schema_and_accepts_valid_files() -> None:
    import jsonschema
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "orch deployment file"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ["design_example.yaml", "minimal.yaml"]:
        data = yaml.safe_load((FIXTURES / name).read_text())
        assert list(validator.iter_errors(data)) == [], name
    starter = yaml.safe_load((Path(__file__).parents[1] / "orchestrator" / "data" / "starter.yaml").read_text())
    assert list(validator.iter_errors(starter)) == []
    # one quantization value is accepted, as the loader accepts it
    data = yaml.safe_load((FIXTURES / "minimal.yaml").read_text())
    data["deployments"][0]["quantization"] = "fp8"
    assert list(validator.iter_errors(data)) == []
    # and the schema rejects what the loader rejects
    data["deployments"][0]["quantisation"] = "fp8"
    data["deployments"][0]["spot"] = "sometimes"
    assert len(list(validator.iter_errors(data))) == 2


def test_schema_out(tmp_path: Path) -> None:
    out = tmp_path / "orch.schema.json"
    result = runner.invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["title"] == "orch deployment file"
    assert str(out) in result.stderr


def test_init_writes_a_starter_that_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "deploy.yaml").read_text()
    assert text.count("\n#") + text.count("  # ") > 10  # it is commented
    loaded = load_spec(tmp_path / "deploy.yaml")
    assert loaded.spec.deployments[0].name == "chat"
    check = runner.invoke(app, ["validate", "deploy.yaml"])
    assert check.exit_code == 0 and check.stdout.startswith("ok: 1 deployment")


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("keep me")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 1
    assert "already exists; use --force" in result.stderr
    assert target.read_text() == "keep me"
    forced = runner.invoke(app, ["init", str(target), "--force"])
    assert forced.exit_code == 0
    assert target.read_text().startswith("# orch deployment file")


def test_starter_with_every_commented_section_enabled_validates(tmp_path: Path) -> None:
    """The commented-out examples in the starter are valid too: uncomment everything after `version:`."""
    from orchestrator.cli.init import starter_text

    lines = starter_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("version:"))
    out = lines[:start]
    for ln in lines[start:]:
        stripped = ln.lstrip(" ")
        if stripped.startswith("# "):
            ln = ln[: len(ln) - len(stripped)] + stripped[2:]
        out.append(ln)
    full = tmp_path / "full.yaml"
    full.write_text("\n".join(out) + "\n")
    loaded = load_spec(full)
    spec = loaded.spec
    assert spec.deployments[0].policies == ["eu-only"] and spec.deployments[0].data
    assert spec.providers.onprem is not None and spec.providers.local is not None and spec.providers.azure is not None


def test_validate_stdin() -> None:
    text = (FIXTURES / "minimal.yaml").read_text()
    result = runner.invoke(app, ["validate", "-"], input=text)
    assert result.exit_code == 0 and result.stdout == "ok: 1 deployment, 0 policies (-)\n"
    bad = runner.invoke(app, ["validate", "-"], input=text.replace("share: 0.5}", "share: 0.25}"))
    assert bad.exit_code == 1
    assert bad.stderr.startswith("<stdin>:11:9: deployments[0].traffic.sources: traffic shares sum to 0.5")
