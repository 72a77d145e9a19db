"""residency: serve only from regions matching globs ("aws:eu-*", "onprem:*", "gcp:europe-west4")."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from policies.base import Policy, PolicyParams, matches_region
from policies.registry import register


class ResidencyParams(PolicyParams):
    regions: list[str] = Field(min_length=1, description='region globs, e.g. ["aws:eu-*", "onprem:*"]')


@register
class Residency(Policy):
    kind: ClassVar[str] = "residency"
    reads: ClassVar[frozenset[str]] = frozenset({"region"})
    Params: ClassVar[type[PolicyParams]] = ResidencyParams
    bound_safe: ClassVar[bool] = True  # a filter: no rows, no objective terms

    def reject(self, deployment, candidate):  # noqa: ANN001, ANN201
        if matches_region(candidate.region, self.params.regions):
            return None
        return f"residency ({self.name}): {candidate.region} is outside {', '.join(self.params.regions)}"
