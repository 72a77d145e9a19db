"""Write a deployment file with new traffic values, keeping everything else, comments and layout included.

    text, kept = with_traffic(raw_bytes, "deploy.yaml", {"chat": {"requests_per_second": 2.5, "input_tokens": 900}})

Each value is replaced where it is written (PyYAML's node marks give its span in the text), so comments, key
order, quoting and flow/block style elsewhere stay as they were. Where that cannot be done safely (traffic shared
through an anchor or a ``<<`` merge, a field not written in the file) the file is written again from its data
(``kept`` is then False: comments are lost) rather than editing what other deployments share. Either way the
result is read back and checked: it must hold exactly the new values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class _Unsafe(Exception):
    """The text cannot be edited in place."""


def scalar(value: Any) -> str:
    """A YAML plain scalar for a number or a name; floats without an exponent (YAML 1.1 reads 1e-06 as text)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a traffic value: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    return str(value)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return scalar(value)


def _end(node: Node) -> int:
    """Where the node's own text ends: a block collection's end mark lies past trailing comments, so use its last
    child's."""
    if isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(node, MappingNode) else last)
    return node.end_mark.index


def _render(node: Node, value: Any) -> str:
    """New text for ``node``'s span: the same style (flow or block list) at the same indentation."""
    if isinstance(value, list) and isinstance(node, SequenceNode) and not node.flow_style:
        pad = "\n" + " " * node.start_mark.column
        return pad.join(f"- {_flow(v)}" for v in value)
    return _flow(value)


def _child(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        raise _Unsafe("not a mapping")
    for k, v in node.value:
        if k.tag == "tag:yaml.org,2002:merge":
            raise _Unsafe("a << merge")
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _count(node: Node, seen: dict[int, int]) -> None:
    seen[id(node)] = seen.get(id(node), 0) + 1
    if seen[id(node)] > 1:  # an alias: counted, not walked again
        return
    if isinstance(node, MappingNode):
        for k, v in node.value:
            _count(k, seen)
            _count(v, seen)
    elif isinstance(node, SequenceNode):
        for v in node.value:
            _count(v, seen)


def _edits(text: str, changes: dict[str, dict[str, Any]]) -> list[tuple[int, int, str]]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # pure Python: marks index characters (libyaml's, bytes)
    seen: dict[int, int] = {}
    _count(root, seen)
    deps = _child(root, "deployments")
    if not isinstance(deps, SequenceNode):
        raise _Unsafe("no deployments list")
    edits = []
    for item in deps.value:
        name = _child(item, "name")
        if not isinstance(name, ScalarNode) or name.value not in changes:
            continue
        traffic = _child(item, "traffic")
        if traffic is None or seen.get(id(traffic), 0) > 1:
            raise _Unsafe("traffic shared through an anchor")
        for key, value in changes[name.value].items():
            node = _child(traffic, key)
            if node is None or seen.get(id(node), 0) > 1:
                raise _Unsafe(f"{key} not written, or shared")
            edits.append(_aligned(text, node.start_mark.index, _end(node), _render(node, value)))
    return edits


def _aligned(text: str, start: int, end: int, new: str) -> tuple[int, int, str]:
    """The edit, keeping a trailing comment on the line in its column (one space at least)."""
    gap = len(text[end:]) - len(text[end:].lstrip(" "))
    if gap and text[end + gap : end + gap + 1] == "#" and "\n" not in new:
        return start, end + gap, new + " " * max(1, gap - (len(new) - (end - start)))
    return start, end, new


def with_traffic(raw: bytes, file: str, changes: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    """The file's text with ``changes`` (deployment name -> traffic field -> value) applied, and whether comments
    and layout were kept. Raises SpecError when the result is not a valid deployment file with those values."""
    from orchestrator.spec.yaml_source import decode

    text = decode(raw, file)
    try:
        edits = _edits(text, changes)
        out = text
        for start, end, new in sorted(edits, reverse=True):
            out = out[:start] + new + out[end:]
        kept = _check(out, file, changes, strict=False)
    except (_Unsafe, yaml.YAMLError):
        kept = False
    if not kept:
        from orchestrator.spec.yaml_source import parse_yaml

        data = parse_yaml(raw, file).data
        for d in data.get("deployments") or []:
            if isinstance(d, dict) and d.get("name") in changes and isinstance(d.get("traffic"), dict):
                d["traffic"] = {**d["traffic"], **changes[d["name"]]}
        out = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
        _check(out, file, changes, strict=True)
    return out, kept


def _check(text: str, file: str, changes: dict[str, dict[str, Any]], *, strict: bool) -> bool:
    """Read ``text`` back: a valid deployment file holding exactly the new values. ``strict``: raise (SpecError,
    or UserError naming the field) instead of returning False."""
    from orchestrator.errors import SpecError, UserError
    from orchestrator.spec.loader import load_spec_text

    try:
        spec = load_spec_text(text, file).spec
    except SpecError:
        if strict:
            raise
        return False
    for d in spec.deployments:
        for key, value in changes.get(d.name, {}).items():
            got = getattr(d.traffic, key)
            if key == "sources":
                got = [{"region": s.region, "share": s.share} for s in got]
            if got != value:
                if strict:
                    raise UserError(f"{file}: deployments.{d.name}.traffic.{key}: wrote {value!r}, read back {got!r}")
                return False
    return True
