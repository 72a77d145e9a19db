"""Which policies apply where: each deployment's named policies, plus the spot policy its ``spot:`` field implies
when it names none, and the project-wide ``budget:`` as a budget policy over every deployment."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UserError
from policies.base import Policy, from_ref, make_policy
from policies.budget import Budget
from policies.spot import Spot


def policies_for(spec: Any) -> tuple[dict[str, list[Policy]], list[Policy]]:
    """Per deployment: its named policies plus the implicit spot policy; and the project-wide budget."""
    named = {name: from_ref(name, ref) for name, ref in spec.policies.items()}
    out: dict[str, list[Policy]] = {}
    for d in spec.deployments:
        ps = []
        for pname in d.policies:
            if pname not in named:
                from orchestrator.suggest import did_you_mean

                raise UserError(f"deployment {d.name!r}: unknown policy {pname!r}{did_you_mean(pname, named)}")
            ps.append(named[pname])
        if d.spot != "forbid" and not any(isinstance(p, Spot) for p in ps):
            ps.append(Spot.implied_by(d))
        out[d.name] = ps
    glob = [make_policy("project budget", Budget.kind, {"monthly_usd": spec.budget.monthly_usd})] if spec.budget else []
    return out, glob
