"""exclude: never use these providers or regions (globs)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from policies.base import Policy, PolicyParams, matches_region
from policies.registry import register


class ExcludeParams(PolicyParams):
    providers: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description='region globs, e.g. ["azure:*", "aws:us-west-2"]')

    @model_validator(mode="after")
    def _something(self) -> ExcludeParams:
        if not self.providers and not self.regions:
            raise ValueError("give providers or regions to exclude")
        return self


@register
class Exclude(Policy):
    kind: ClassVar[str] = "exclude"
    reads: ClassVar[frozenset[str]] = frozenset({"region"})
    Params: ClassVar[type[PolicyParams]] = ExcludeParams
    bound_safe: ClassVar[bool] = True  # a filter: no rows, no objective terms

    def reject(self, deployment, candidate):  # noqa: ANN001, ANN201
        if candidate.provider in self.params.providers:
            return f"exclude ({self.name}): provider {candidate.provider} is excluded"
        if self.params.regions and matches_region(candidate.region, self.params.regions):
            return f"exclude ({self.name}): region {candidate.region} is excluded"
        return None
