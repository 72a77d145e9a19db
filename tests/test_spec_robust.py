"""Any damage to a valid file yields SpecError with located problems, never a crash in the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec_text

FIXTURE = Path(__file__).parent / "fixtures" / "spec" / "design_example.yaml"
BASE = yaml.safe_load(FIXTURE.read_text())
REPLACEMENTS = [None, -1, 0, 1.5, "x", "aws:nowhere", "", [], [1, "a"], {}, {"zzz": 1}, True]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)


def _damaged(edits: list[tuple[int, int, bool]]) -> dict:
    data = yaml.safe_load(FIXTURE.read_text())
    for path_i, repl_i, delete in edits:
        path = PATHS[path_i % len(PATHS)]
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = REPLACEMENTS[repl_i % len(REPLACEMENTS)]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    return data


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 100), st.booleans()), min_size=1, max_size=4))
def test_damaged_files_give_located_problems(edits: list[tuple[int, int, bool]]) -> None:
    text = yaml.safe_dump(_damaged(edits), sort_keys=False)
    try:
        load_spec_text(text, FIXTURE)
    except SpecError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == str(FIXTURE)
            assert p.line is not None and p.line >= 1 and p.column is not None
            assert p.message


def test_every_single_field_replacement() -> None:
    for i in range(len(PATHS)):
        for j in (0, 1, 10):  # null, a negative number, an unknown mapping
            try:
                load_spec_text(yaml.safe_dump(_damaged([(i, j, False)]), sort_keys=False), FIXTURE)
            except SpecError as exc:
                assert all(p.line for p in exc.problems)


def test_a_number_too_long_for_python_is_a_located_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Python refuses int() of more than 4,300 digits: once an uncaught ValueError in validate and place."""
    from orchestrator.errors import SpecError
    from orchestrator.spec.loader import load_spec

    path = tmp_path / "big.yaml"
    path.write_text("version: " + "9" * 5000 + "\nproject: p\n")
    try:
        load_spec(path)
    except SpecError as exc:
        (p,) = exc.problems
        assert (p.line, p.column) == (1, 10) and "5,000 characters" in p.message
    else:
        raise AssertionError("no error")
