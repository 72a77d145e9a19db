"""spot: how much spot capacity a deployment may use, and how it must be spread.

- on-demand floor: on-demand/on-prem capacity >= on_demand_floor x the planned capacity (demand x (1 +
  headroom)), so losing every spot instance at once still leaves that share, headroom included, served. Default by the deployment's ``spot`` rule:
  allow 0.5, prefer 0.2.
- spread: when spot serves any traffic, spot units sit in at least ``min_failure_domains`` regions
  (one binary per region, one for "spot used", defined by spot traffic so the LP relaxation is tight).

A deployment with ``spot: allow|prefer`` and no spot policy of its own gets one implicitly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from pydantic import Field

from policies.base import Policy, PolicyParams
from policies.registry import register

DEFAULT_FLOOR = {"allow": 0.5, "prefer": 0.2, "forbid": 1.0}


class SpotParams(PolicyParams):
    on_demand_floor: float | None = Field(None, ge=0, le=1, description="default: 0.5 (allow), 0.2 (prefer)")
    min_failure_domains: int = Field(2, ge=1, le=10)


@register
class Spot(Policy):
    kind: ClassVar[str] = "spot"
    reads: ClassVar[frozenset[str]] = frozenset({"market"})
    Params: ClassVar[type[PolicyParams]] = SpotParams
    adds_rows: ClassVar[bool] = True
    bound_safe: ClassVar[bool] = True  # an all-on-demand plan meets the floor; the spread binds only spot units
    difficulty_factor: ClassVar[float] = 4.0  # the spread's binaries (scaling benchmark: spot outweighs 3x the candidates)

    def floor(self, deployment) -> float:  # noqa: ANN001
        if self.params.on_demand_floor is not None:
            return self.params.on_demand_floor
        return DEFAULT_FLOOR.get(getattr(deployment, "spot", "allow"), 0.5)

    def spot_rule(self, deployment):  # noqa: ANN001, ANN201
        return float(self.floor(deployment)), int(self.params.min_failure_domains)

    def declared_at(self, deployment_index: int) -> tuple:
        return ("deployments", deployment_index, "spot") if self.implicit else super().declared_at(deployment_index)

    def explain_note(self, deployment, candidate):  # noqa: ANN001, ANN201
        if candidate.market != "spot" or self.floor(deployment) <= 0:
            return None
        k = self.params.min_failure_domains
        return (f"it is spot, and the spot policy ({self.name}) keeps {self.floor(deployment):.0%} of capacity on demand"
                + (f" and spreads spot over at least {k} regions" if k > 1 else ""))

    @classmethod
    def implied_by(cls, deployment):  # noqa: ANN001, ANN206
        """The spot policy a deployment with ``spot: allow|prefer`` and none of its own gets."""
        return cls(f"spot: {deployment.spot}", SpotParams(), implicit=True)

    def reject(self, deployment, candidate):  # noqa: ANN001, ANN201
        if candidate.market == "spot" and self.floor(deployment) >= 1.0:
            return f"spot ({self.name}): on-demand floor is 100%"
        return None

    def add_constraints(self, builder, deployment, candidates):  # noqa: ANN001, ANN201
        from orchestrator.solver.model import RowTag

        spot = [c for c in candidates if c.market == "spot" and builder.has_units(c)]
        if not spot or deployment is None:
            return
        name = deployment.name
        floor = self.floor(deployment)
        if floor > 0:
            need = floor * builder.demand_rps(name)
            # a unit counts at most the whole floor: exact for whole units, tighter for the LP relaxation
            steady = {col: min(v, need) for col, v in builder.capacity_terms([c for c in candidates if c.market != "spot"]).items()}
            builder.add_row(steady, need, float("inf"),
                            RowTag("spot_floor", f"{name}: on-demand floor {floor:.0%} of capacity", name))
        k = self.params.min_failure_domains
        if k <= 1:
            return
        used = builder.add_binary()  # spot serves some traffic
        # spot traffic <= demand x used: exact (traffic never exceeds the demand), and the LP relaxation feels
        # the spread in proportion to the traffic spot carries
        builder.add_row({**{col: 1.0 for c in spot for col in builder.traffic(c)}, used: -builder.demand_rps(name)},
                        float("-inf"), 0.0, RowTag("spot_spread", f"{name}: spot used", name))
        by_region: dict[str, list] = defaultdict(list)
        for c in spot:
            by_region[c.region].append(c)
        zs = []
        for region, cs in by_region.items():
            z = builder.add_binary()  # 1 only if this region really has a spot unit (and serves the deployment)
            zs.append(z)
            builder.add_row({z: 1.0, **{builder.units(c): -1.0 for c in cs}}, float("-inf"), 0.0,
                            RowTag("spot_spread", f"{name}: spot in {region}", name))
            builder.add_row({z: 1.0, used: -1.0}, float("-inf"), 0.0, RowTag("spot_spread", f"{name}: spot domain", name))
            y = builder.region_used(name, region)
            if y is not None:
                builder.add_row({z: 1.0, y: -1.0}, float("-inf"), 0.0, RowTag("spot_spread", f"{name}: domain {region} served", name))
        builder.add_row({**{z: 1.0 for z in zs}, used: -float(k)}, 0.0, float("inf"),
                        RowTag("spot_spread", f"{name}: spot spread over >= {k} regions", name))
