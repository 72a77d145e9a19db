"""Build typed models from a file that failed validation, keeping every field that is valid.

Semantic checks (unknown model, region, ...) should still run on the parts of a file that are
fine, so that one run reports every problem. Each field is validated on its own (pydantic's
``validate_assignment`` runs the field's validators too); invalid nested models are salvaged
recursively. Fields that stayed invalid or missing are simply not set: checks ask
``CheckInput.ok(path)`` before reading a field.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.spec.problems import _candidates, _is_model


def _model_member(tp: Any) -> type[BaseModel] | None:
    models = [c for c in _candidates(tp) if _is_model(c)]
    return models[0] if len(models) == 1 else None


def _container(tp: Any) -> tuple[str, type[BaseModel]] | None:
    """('list', Model) for list[Model], ('dict', Model) for dict[str, Model], else None."""
    for cand in _candidates(tp):
        origin, args = typing.get_origin(cand), typing.get_args(cand)
        if origin is list and args and _is_model(args[0]):
            return "list", args[0]
        if origin is dict and len(args) == 2 and _is_model(args[1]):
            return "dict", args[1]
    return None


def salvage(cls: type[BaseModel], raw: Any) -> BaseModel | None:
    """``cls`` validated from ``raw``, or a partial instance with only the valid fields set; None if raw is no mapping."""
    try:
        return cls.model_validate(raw)
    except ValidationError:
        pass
    if not isinstance(raw, dict):
        return None
    validator = cls.__pydantic_validator__
    probe = cls.model_construct()
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        key = info.alias or name
        if key not in raw:
            continue
        try:
            validator.validate_assignment(probe, name, raw[key])
            values[name] = getattr(probe, name)
            continue
        except (ValidationError, AttributeError, TypeError, ValueError):
            pass  # invalid here, or a validator needed sibling fields the probe lacks: try the parts below
        model = _model_member(info.annotation)
        if model is not None:
            part = salvage(model, raw[key])
            if part is not None:
                values[name] = part
            continue
        container = _container(info.annotation)
        if container is None:
            continue
        kind, item_cls = container
        if kind == "list" and isinstance(raw[key], list):
            values[name] = [salvage(item_cls, item) for item in raw[key]]
        elif kind == "dict" and isinstance(raw[key], dict):
            values[name] = {k: salvage(item_cls, v) for k, v in raw[key].items()}
    return cls.model_construct(**values)
