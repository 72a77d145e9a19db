"""budget: this deployment's total $/month (compute + egress) is at most monthly_usd.

The project-wide ``budget:`` of the deployment file is this same policy with deployment None (all
candidates); in fallback subproblems the cost of the deployments held fixed is subtracted.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from policies.base import Policy, PolicyParams
from policies.registry import register


class BudgetParams(PolicyParams):
    monthly_usd: float = Field(gt=0)


@register
class Budget(Policy):
    kind: ClassVar[str] = "budget"
    Params: ClassVar[type[PolicyParams]] = BudgetParams
    adds_rows: ClassVar[bool] = True
    reads: ClassVar[frozenset[str]] = frozenset()

    def over_limit(self, need_usd_month: float) -> tuple[tuple, str] | None:
        cap = self.params.monthly_usd
        if need_usd_month <= cap:
            return None
        return (("budget", "monthly_usd"),
                f"budget: the cheapest plan meeting every SLO needs ${need_usd_month:,.0f}/month, the budget is "
                f"${cap:,.0f}/month; raise budget.monthly_usd by ${need_usd_month - cap:,.0f} or relax SLOs/traffic")

    def relax_hint(self, need_usd_month: float) -> str:
        cap = self.params.monthly_usd
        return f": needs ${need_usd_month:,.0f}/month, the policy allows ${cap:,.0f}" if cap else ""

    def add_constraints(self, builder, deployment, candidates):  # noqa: ANN001, ANN201
        from orchestrator.solver.model import RowTag

        terms = builder.cost_terms(candidates)
        if not terms:
            return
        cap = self.params.monthly_usd
        if deployment is None:
            cap -= builder.fixed_usd_per_month
        label = f"budget {self.name}: ${self.params.monthly_usd:,.0f}/month"
        builder.add_row(terms, float("-inf"), cap, RowTag("budget", label, getattr(deployment, "name", None)))
