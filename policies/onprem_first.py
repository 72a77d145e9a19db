"""onprem-first: use on-prem (and local) capacity before any cloud.

Done as a lexicographic preference, not a penalty mixed into the cost: the solver first minimises the
share of this deployment's traffic served by clouds, holds that optimum, then optimises the user's
objective. So clouds take only what on-prem inventory (or the SLO from on-prem) cannot serve.
"""

from __future__ import annotations

from typing import ClassVar

from orchestrator.catalog.types import ONPREM_PROVIDERS
from policies.base import Policy, PolicyParams
from policies.registry import register

ONPREM = ONPREM_PROVIDERS


@register
class OnPremFirst(Policy):
    kind: ClassVar[str] = "onprem-first"
    Params: ClassVar[type[PolicyParams]] = PolicyParams
    reads: ClassVar[frozenset[str]] = frozenset()
    prefers: ClassVar[bool] = True

    def explain_note(self, deployment, candidate):  # noqa: ANN001, ANN201
        return f"policy {self.name} (onprem-first) puts on-prem capacity first"

    def objective_terms(self, builder, deployment, candidates):  # noqa: ANN001, ANN201
        for c in candidates:
            if c.provider in ONPREM:
                continue
            rps = builder.deployments[c.deployment].rps
            for col in builder.traffic(c):
                builder.add_objective(col, 1.0 / rps, "preference")
