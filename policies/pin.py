"""pin: serve only from the listed providers (e.g. patient data stays on-prem)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from policies.base import Policy, PolicyParams
from policies.registry import register


class PinParams(PolicyParams):
    providers: list[str] = Field(min_length=1, description="aws | gcp | azure | onprem | local")


@register
class Pin(Policy):
    kind: ClassVar[str] = "pin"
    reads: ClassVar[frozenset[str]] = frozenset({"region"})
    Params: ClassVar[type[PolicyParams]] = PinParams
    bound_safe: ClassVar[bool] = True  # a filter: no rows, no objective terms

    def reject(self, deployment, candidate):  # noqa: ANN001, ANN201
        if candidate.provider in self.params.providers:
            return None
        return f"pin ({self.name}): provider {candidate.provider} not in {', '.join(self.params.providers)}"
