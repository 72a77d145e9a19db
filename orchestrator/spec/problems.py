"""Turn pydantic validation errors into located, readable problems.

pydantic's error ``loc`` mixes data keys with validator names (union members, ``[key]`` for dict
keys); we walk it against the input data to get the real field path, and walk the model classes to
find which fields an unknown key could have meant.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.spec.models import NAME, REGION_ID
from orchestrator.spec.yaml_source import FieldPath
from orchestrator.suggest import did_you_mean

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PATTERN_HINTS = {
    NAME: "a lowercase name of letters, digits and '-' (at most 63, starting and ending with a letter or digit)",
    REGION_ID: "a provider-qualified region such as aws:us-east-1 or onprem:dc-frankfurt",
}


@dataclass(frozen=True)
class Issue:
    """A problem before it is located: the field path, the message, and whether to point at the key."""

    path: FieldPath
    message: str
    at_key: bool = False


def dotted(path: FieldPath) -> str:
    """('deployments', 0, 'slo', 'ttft_p95_ms') -> 'deployments[0].slo.ttft_p95_ms'."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif isinstance(key, str) and _IDENT.match(key):
            out += f".{key}" if out else key
        else:
            out += f"[{str(key)!r}]"
    return out


def found(value: Any, limit: int = 60) -> str:
    """A short description of an input value for "found ..." messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def data_path(loc: tuple[Any, ...], data: Any) -> FieldPath:
    """The part of a pydantic ``loc`` that names real data (drops union tags, '[key]' and the like)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _looks_internal(part):
            path.append(part)  # a missing or unknown field: name it, there is no data below
            node = None
        # else: a validator name (union member, function-after[...], [key]): skip it
    return tuple(path)


def _looks_internal(part: str) -> bool:
    return part.startswith("[") or "[" in part and part.endswith("]")


def _candidates(tp: Any) -> list[Any]:
    """Unwrap Annotated / Optional / unions into the member types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _candidates(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            if arg is not type(None):
                out.extend(_candidates(arg))
        return out
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field(cls: type[BaseModel], key: Any) -> Any:
    for name, info in cls.model_fields.items():
        if key == name or key == info.alias:
            return info.annotation
    return None


def model_at(root: type[BaseModel], path: FieldPath) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at ``path``, if it is a model."""

    def walk(tp: Any, rest: FieldPath) -> type[BaseModel] | None:
        for cand in _candidates(tp):
            if not rest:
                if _is_model(cand):
                    return cand
                continue
            key, tail = rest[0], rest[1:]
            origin, args = typing.get_origin(cand), typing.get_args(cand)
            if _is_model(cand):
                sub = _field(cand, key)
                if sub is not None and (hit := walk(sub, tail)) is not None:
                    return hit
            elif origin in (list, tuple, set, frozenset) and isinstance(key, int) and args:
                if (hit := walk(args[0], tail)) is not None:
                    return hit
            elif origin is dict and len(args) == 2:
                if (hit := walk(args[1], tail)) is not None:
                    return hit
        return None

    return walk(root, tuple(path))


def field_names(cls: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in cls.model_fields.items()]


def _expected(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if msg.startswith("Input should be "):
        rest = msg.removeprefix("Input should be ")
        rest = rest.split(", unable to")[0]
        return "expected " + rest
    return msg[:1].lower() + msg[1:]


def issue_from_error(err: dict[str, Any], root: type[BaseModel], data: Any, base: FieldPath = ()) -> Issue:
    """One pydantic error (from ``ValidationError.errors()``) as an Issue."""
    kind = err["type"]
    path = data_path(tuple(err["loc"]), data)
    value = err.get("input")
    full = (*base, *path)
    if kind == "missing":
        name = str(path[-1]) if path else "?"
        owner = model_at(root, path[:-1])
        info = owner.model_fields.get(name) if owner else None
        about = f" ({info.description})" if info is not None and info.description else ""
        return Issue(full, f'missing required field "{name}"{about}', at_key=True)
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        owner = model_at(root, path[:-1])
        names = field_names(owner) if owner else []
        hint = did_you_mean(name, names)
        if not hint and names:
            hint = "; valid fields: " + ", ".join(names)
        return Issue(full, f'unknown field "{name}"{hint}', at_key=True)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = re.findall(r"'([^']*)'", expected)
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return Issue(full, f"expected one of {expected}, found {found(value)}{hint}")
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        want = _PATTERN_HINTS.get(pattern, f"text matching {pattern}")
        return Issue(full, f"expected {want}, found {found(value)}")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Issue(full, f"expected a mapping (key: value fields), found {found(value)}")
    if kind in ("list_type", "tuple_type", "set_type"):
        return Issue(full, f"expected a list, found {found(value)}")
    message = _expected(err["msg"])
    if kind.endswith("_type") or not isinstance(value, (dict, type(None))):
        message += f", found {found(value)}"  # a dict input means a model-level validator: its message says it
    return Issue(full, message)


def issues_from_validation(
    exc: ValidationError, root: type[BaseModel], data: Any, base: FieldPath = ()
) -> list[Issue]:
    return [issue_from_error(dict(e), root, data, base) for e in exc.errors()]
