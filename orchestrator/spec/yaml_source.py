"""Read a YAML file into plain Python data plus a source map (field path -> line, column).

PyYAML's compose API gives nodes with positions; we construct the data ourselves so that we can
count nodes (aliases can expand a small file into billions of nodes), reject duplicate keys and
remember where every value came from. Only the YAML 1.1 core tags are accepted (no python tags).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import Problem, SpecError

MAX_BYTES = 5 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64  # a deployment file nests about 6 levels

PathKey = str | int
FieldPath = tuple[PathKey, ...]
Position = tuple[int, int]  # 1-based line, column

_NODE_EVENTS = (ScalarEvent, SequenceStartEvent, MappingStartEvent, AliasEvent)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:value",
}


@dataclass
class SourceMap:
    """Where each field of a YAML document is. Paths are tuples of mapping keys and list indices."""

    values: dict[FieldPath, Position] = field(default_factory=dict)  # where the value starts
    keys: dict[FieldPath, Position] = field(default_factory=dict)  # where the mapping key is

    def locate(self, path: FieldPath, prefer_key: bool = False) -> tuple[FieldPath, Position] | None:
        """The position of ``path``, else of its nearest located parent; with the path actually found."""
        p = tuple(path)
        while True:
            if prefer_key and p in self.keys:
                return p, self.keys[p]
            if p in self.values:
                return p, self.values[p]
            if not p:
                return None
            p = p[:-1]


@dataclass
class YamlDocument:
    data: dict[str, Any]
    source_map: SourceMap
    raw: bytes


def _pos(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _fail(file: str, message: str, pos: Position | None = None) -> SpecError:
    line, col = pos if pos else (None, None)
    return SpecError(problems=[Problem(message=message, file=file, line=line, column=col)])


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    return f"a {type(value).__name__}"


class _Builder:
    """Constructs plain data from composed nodes, counting nodes and recording positions."""

    def __init__(self, file: str, max_nodes: int) -> None:
        self.file = file
        self.max_nodes = max_nodes
        self.count = 0
        self.active: set[int] = set()  # ids of nodes being constructed: catches recursive aliases
        self.source_map = SourceMap()
        self._scalars = yaml.constructor.SafeConstructor()

    def build(self, node: Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > self.max_nodes:
            raise _fail(
                self.file,
                f"document expands to more than {self.max_nodes:,} values (YAML aliases/anchors repeated "
                "too often, e.g. a 'billion laughs' bomb); refusing to read it",
                _pos(node),
            )
        self.source_map.values.setdefault(path, _pos(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self.active:
            raise _fail(self.file, "recursive alias: a node contains itself", _pos(node))
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, "tag:yaml.org,2002:seq")
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, MappingNode):
                self._check_tag(node, "tag:yaml.org,2002:map")
                return self._mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise _fail(self.file, f"unsupported YAML node {node.id}", _pos(node))  # pragma: no cover

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            raise _fail(self.file, f"unsupported YAML tag {node.tag!r}", _pos(node))

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag not in _SAFE_SCALAR_TAGS:
            raise _fail(self.file, f"unsupported YAML tag {node.tag!r}", _pos(node))
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _fail(self.file, f"bad value: {getattr(exc, 'problem', None) or exc}", _pos(node)) from None
        except ValueError:  # Python refuses to read an integer of more than 4,300 digits (CVE-2020-10735)
            raise _fail(self.file, f"bad value: a number of {len(node.value):,} characters; expected a number "
                        "of at most 4,300 digits", _pos(node)) from None

    def _key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise _fail(self.file, "mapping keys must be plain values (not lists or mappings)", _pos(node))
        key = self._scalar(node)
        if key is None:
            raise _fail(self.file, "empty mapping key", _pos(node))
        return key

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        seen: dict[Any, Position] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node))
                continue
            key = self._key(key_node)
            if key in seen:
                line, col = seen[key]
                raise _fail(
                    self.file,
                    f"duplicate key {key!r} (first at line {line}, column {col})",
                    _pos(key_node),
                )
            seen[key] = _pos(key_node)
            self.source_map.keys.setdefault((*path, key), _pos(key_node))
            out[key] = self.build(value_node, (*path, key))
        # "<<: *base" merges: explicit keys win, earlier merge sources win over later ones.
        for key_node, value_node in merged:
            key = self._key(key_node)
            if key not in out:
                self.source_map.keys.setdefault((*path, key), _pos(key_node))
                out[key] = self.build(value_node, (*path, key))
        return out

    def _merge_sources(self, node: Node) -> list[tuple[Node, Node]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        pairs: list[tuple[Node, Node]] = []
        for src in sources:
            if not isinstance(src, MappingNode):
                raise _fail(self.file, "'<<' merge needs a mapping or a list of mappings", _pos(src))
            pairs.extend(src.value)
        return pairs


def decode(raw: bytes, file: str) -> str:
    """UTF-8 text (a BOM is allowed); otherwise one clear error naming the byte offset."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise _fail(
            file,
            f"not UTF-8 text: invalid byte 0x{bad} at byte offset {exc.start} (line {line}); save the file as UTF-8",
        ) from None


def _count_nodes(text: str, loader: Any, file: str, max_nodes: int) -> None:
    """Refuse a document with too many values, or nested too deeply, before building a node tree."""
    n = depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                pos = (event.start_mark.line + 1, event.start_mark.column + 1)
                raise _fail(file, f"YAML nested more than {MAX_DEPTH} levels deep", pos)
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            depth -= 1
        if isinstance(event, _NODE_EVENTS):
            n += 1
            if n > max_nodes:
                pos = (event.start_mark.line + 1, event.start_mark.column + 1)
                raise _fail(file, f"file has more than {max_nodes:,} values; a deployment file needs far fewer", pos)


def parse_yaml(raw: bytes, file: str, *, max_nodes: int = MAX_NODES) -> YamlDocument:
    """Parse bytes of one YAML document whose top level is a mapping."""
    if len(raw) > MAX_BYTES:
        raise _fail(file, f"file is {len(raw):,} bytes; the limit is {MAX_BYTES:,} bytes (5 MB)")
    text = decode(raw, file)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5x faster
    try:
        try:
            _count_nodes(text, loader, file, max_nodes)
        except yaml.MarkedYAMLError as exc:
            # libyaml (PyYAML >= 6.0.4) refuses nesting past 1,000 levels while it scans ahead, before the events
            # that count levels reach MAX_DEPTH: the pure-Python parser finds where the limit is crossed
            if loader is yaml.SafeLoader or "nesting depth" not in str(exc.problem):
                raise
            _count_nodes(text, yaml.SafeLoader, file, max_nodes)
            raise
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else None
        what = ", ".join(filter(None, [exc.context, exc.problem])) or "invalid YAML"
        raise _fail(file, f"YAML syntax error: {what}", pos) from None
    except yaml.YAMLError as exc:
        raise _fail(file, f"YAML syntax error: {exc}") from None
    except RecursionError:
        raise _fail(file, "YAML nested too deeply") from None
    if root is None:
        raise _fail(file, "file is empty; expected a deployment file (run `orch init` for a starter)")
    builder = _Builder(file, max_nodes)
    try:
        data = builder.build(root, ())
    except RecursionError:
        raise _fail(file, "YAML nested too deeply") from None
    if not isinstance(data, dict):
        raise _fail(
            file,
            f"the top level must be a mapping of fields (version, project, deployments, ...), found {_kind(data)}",
            _pos(root),
        )
    return YamlDocument(data=data, source_map=builder.source_map, raw=raw)


def read_yaml(path: Path, *, max_nodes: int = MAX_NODES) -> YamlDocument:
    """Read and parse a YAML file; every failure is a SpecError with one located problem."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:  # do not even read it
            raise _fail(file, f"file is {size:,} bytes; the limit is {MAX_BYTES:,} bytes (5 MB)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(file, "file not found") from None
    except IsADirectoryError:
        raise _fail(file, "is a directory, expected a YAML file") from None
    except PermissionError:
        raise _fail(file, "permission denied") from None
    except OSError as exc:
        raise _fail(file, f"cannot read: {exc.strerror or exc}") from None
    return parse_yaml(raw, file, max_nodes=max_nodes)
