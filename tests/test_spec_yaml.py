"""Bad YAML input: every case is one clear located error, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec
from orchestrator.spec.yaml_source import MAX_BYTES, parse_yaml, read_yaml


def _problem(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    return str(info.value.problems[0])


def _write(tmp_path: Path, content: bytes | str, name: str = "deploy.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


def test_source_map_positions_are_one_based() -> None:
    doc = parse_yaml(b"a: 1\nb:\n  - x: 2\n    y: [1, 2]\n", "f")
    assert doc.data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}]}
    sm = doc.source_map
    assert sm.values[("a",)] == (1, 4)
    assert sm.keys[("b",)] == (2, 1)
    assert sm.values[("b", 0)] == (3, 5)
    assert sm.keys[("b", 0, "y")] == (4, 5)
    assert sm.values[("b", 0, "y", 1)] == (4, 12)
    # unknown paths fall back to the nearest located parent
    assert sm.locate(("b", 0, "nope", "deeper")) == (("b", 0), (3, 5))


def test_merge_keys_and_anchors_are_expanded() -> None:
    doc = parse_yaml(b"base: &b {k: 1, j: 2}\nd:\n  <<: *b\n  j: 3\n", "f")
    assert doc.data["d"] == {"k": 1, "j": 3}


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    msg = _problem(_write(tmp_path, "version: 1\nproject: [demo\ndeployments: []\n"))
    assert msg.startswith(f"{tmp_path / 'deploy.yaml'}:3:")
    assert "YAML syntax error" in msg


def test_bad_indentation(tmp_path: Path) -> None:
    msg = _problem(_write(tmp_path, "version: 1\n  project: demo\n"))
    assert ":2:" in msg and "YAML syntax error" in msg


@pytest.mark.parametrize("content", ["", "   \n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    assert "file is empty" in _problem(_write(tmp_path, content))


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    msg = _problem(_write(tmp_path, b"version: 1\nproject: caf\xe9\n"))
    assert "not UTF-8" in msg and "byte offset 23" in msg and "line 2" in msg


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    doc = read_yaml(_write(tmp_path, "\ufeffa: 1\n".encode()))
    assert doc.data == {"a": 1}


def test_file_over_5_mb_is_refused_without_parsing(tmp_path: Path) -> None:
    p = _write(tmp_path, b"# " + b"x" * MAX_BYTES + b"\n")
    start = time.perf_counter()
    msg = _problem(p)
    assert "limit is 5,242,880 bytes" in msg
    assert time.perf_counter() - start < 1.0
    with pytest.raises(SpecError, match="5 MB"):
        parse_yaml(b"#" * (MAX_BYTES + 1), "mem")


def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_billion_laughs_stops_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    msg = _problem(_write(tmp_path, _billion_laughs()))
    assert time.perf_counter() - start < 2.0
    assert "more than 100,000 values" in msg and "billion laughs" in msg


def test_recursive_alias(tmp_path: Path) -> None:
    assert "recursive alias" in _problem(_write(tmp_path, "a: &x [1, *x]\n"))


def test_duplicate_keys(tmp_path: Path) -> None:
    msg = _problem(_write(tmp_path, "version: 1\nproject: a\nproject: b\n"))
    assert msg.endswith(":3:1: duplicate key 'project' (first at line 2, column 1)")


def test_duplicate_keys_nested(tmp_path: Path) -> None:
    text = "project: a\ndeployments:\n  - name: x\n    slo: {ttft_p95_ms: 1, ttft_p95_ms: 2}\n"
    msg = _problem(_write(tmp_path, text))
    assert ":4:" in msg and "duplicate key 'ttft_p95_ms'" in msg


@pytest.mark.parametrize(
    ("content", "found"), [("- a\n- b\n", "found a list"), ("just text\n", "found text ('just text')"), ("42\n", "found a number (42)")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, content: str, found: str) -> None:
    msg = _problem(_write(tmp_path, content))
    assert "top level must be a mapping" in msg
    assert msg.endswith(found)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    msg = _problem(_write(tmp_path, "project: !!python/object/apply:os.system ['true']\n"))
    assert "unsupported YAML tag" in msg


def test_multiple_documents(tmp_path: Path) -> None:
    assert "single document" in _problem(_write(tmp_path, "a: 1\n---\nb: 2\n"))


def test_complex_keys_are_refused(tmp_path: Path) -> None:
    assert "mapping keys must be plain values" in _problem(_write(tmp_path, "? [a, b]\n: 1\n"))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _problem(tmp_path / "nope.yaml").endswith("file not found")
    assert "is a directory" in _problem(tmp_path)


def test_flood_of_values_is_refused_fast(tmp_path: Path) -> None:
    p = _write(tmp_path, "a: [" + ",".join(["1"] * 1_000_000) + "]\n")
    start = time.perf_counter()
    msg = _problem(p)
    assert time.perf_counter() - start < 2.0
    # value 100,001 is the mapping, its key, the list, then list item 99,998 (0-based 99,997)
    col = len("a: [") + 2 * 99_997 + 1
    assert msg.endswith(f":1:{col}: file has more than 100,000 values; a deployment file needs far fewer")


@pytest.mark.parametrize("depth", [65, 300_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    msg = _problem(_write(tmp_path, "a: " + "[" * depth + "]" * depth + "\n"))
    # the top-level mapping is level 1, so the 64th "[" (column 4 + 63) is level 65
    assert msg.endswith(":1:67: YAML nested more than 64 levels deep")
