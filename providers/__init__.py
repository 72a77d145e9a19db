"""Providers: launch, describe and terminate containers on one kind of infrastructure each.
Providers know nothing of placement. SDKs are imported inside each module, only when it is used.
Each kind registers itself in providers.registry (its settings model and abilities)."""

from __future__ import annotations

from typing import Any

from providers.base import Provider


def get_provider(kind: str, **config: Any) -> Provider:
    """The provider for ``kind`` (providers.registry.kinds(): aws, gcp, azure, kubernetes, baremetal, local), built
    from its settings (validated by its model) and wiring."""
    from providers import registry

    return registry.create(kind, **config)  # type: ignore[no-any-return]
