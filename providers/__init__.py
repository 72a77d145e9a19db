"""Providers: launch, describe and terminate containers on one kind of infrastructure each.
Providers know nothing of placement. SDKs are imported inside each module, only when it is used."""

from __future__ import annotations

import importlib
from typing import Any

from providers.base import Provider

KINDS = ("aws", "gcp", "azure", "kubernetes", "baremetal", "local")


def get_provider(kind: str, **config: Any) -> Provider:
    """The provider for ``kind`` (aws, gcp, azure, kubernetes, baremetal, local), built from config."""
    if kind not in KINDS:
        from orchestrator.errors import UserError

        raise UserError(f"unknown provider {kind!r}; known: {', '.join(KINDS)}")
    module = importlib.import_module(f"providers.{kind}")
    return module.create(**config)
