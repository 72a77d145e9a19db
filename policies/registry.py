"""Policy kinds by name. A kind is a class with ``kind`` (its name in the deployment file) and ``Params``
(a pydantic model of its parameters); the spec checks parameters against Params with file:line errors."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import BaseModel

_KINDS: dict[str, Any] = {}


def register(cls: Any) -> Any:
    """Class decorator: make a policy kind known by its ``kind`` attribute."""
    _KINDS[cls.kind] = cls
    return cls


def _load_all() -> None:
    import policies

    for info in pkgutil.iter_modules(policies.__path__):
        if info.name not in ("registry", "base"):
            importlib.import_module(f"policies.{info.name}")


def kinds() -> list[str]:
    _load_all()
    return sorted(_KINDS)


def get_kind(kind: str) -> Any | None:
    _load_all()
    return _KINDS.get(kind)


def params_model(kind: str) -> type[BaseModel] | None:
    cls = get_kind(kind)
    return None if cls is None else cls.Params
