"""Bound-based pruning of one deployment's candidates (cost objective, deployment solved alone).

Any plan that uses candidate c pays at least one c unit, c's region's one-off data egress, and, for the
requirement c's unit does not cover, the best price per req/s of any candidate:
    LB(c) = unit(c) + fixed(region(c)) + max(0, R - cap(c)) x p*        ($/h)
A feasible plan is known: n units of one on-demand candidate that answers every user region,
    UB = min_c ceil(R / rps(c)) x unit(c) + fixed(region(c)) + its response egress.
If LB(c) > UB, c is in no optimal plan of this deployment alone. Valid only without coupling rows
(quotas, project budget: a quota may force a pricier candidate), so the decomposed solve uses it for the
per-deployment subproblems and the joint MILP keeps every candidate.
"""

from __future__ import annotations

import math

import numpy as np

from orchestrator.candidates import HOURS_PER_MONTH
from orchestrator.solver.problem import DeploymentInput

# policy kinds whose rows an all-on-demand plan always satisfies, and that add no objective terms
SAFE_KINDS = frozenset({"residency", "pin", "exclude", "hardware", "spot"})


def _spot_rule(d: DeploymentInput) -> tuple[float, int]:
    """(on-demand floor, failure domains) of the deployment's spot policy; (1, 0) without one."""
    for p in d.policies:
        if getattr(p, "kind", None) == "spot":
            return float(p.floor(d.spec)), int(p.params.min_failure_domains)
    return 1.0, 0


def prune_by_bound(d: DeploymentInput) -> tuple[DeploymentInput, dict[int, int]]:
    """``d`` without the candidates whose LB exceeds UB, and the simple plan that set UB ({candidate idx:
    units}; empty where none applies), a start for the solver.

    With a spot floor f, at least f x R must be on-demand: LB prices that share at the best on-demand
    rate and the rest at the best rate overall; UB also tries f x R on-demand plus (1 - f) x R of spot
    split over the k cheapest spot regions (a plan the floor and spread rows accept)."""
    cands = d.candidates
    if len(cands) < 3 or any(getattr(p, "kind", None) not in SAFE_KINDS for p in d.policies):
        return d, {}
    n_s = len(d.sources)
    req = d.required_rps
    floor, domains = _spot_rule(d)
    unit = np.array([c.usd_per_unit_hour for c in cands])
    rps = np.array([c.rps_per_unit for c in cands])
    spot = np.array([c.market == "spot" for c in cands])
    cap = np.minimum(rps, req)
    per = unit / cap
    p_all = float(np.min(per))
    if (~spot).any():
        p_od = float(np.min(per[~spot]))
    else:
        return d, {}
    fixed = np.array([d.data_egress_usd_month.get(c.region, 0.0) / HOURS_PER_MONTH for c in cands])
    resp = np.asarray(d.response_usd_per_rps_month, float).reshape(n_s, len(cands))
    share = np.array([sh for _, sh in d.sources])
    resp_h = (share[:, None] * d.rps * resp).sum(axis=0) / HOURS_PER_MONTH
    rtt = np.asarray(d.rtt_ms, float).reshape(n_s, len(cands))
    ttft = np.array([c.ttft_ms for c in cands])
    answers_all = np.all(rtt + ttft[None, :] <= d.ttft_slo_ms + 1e-9, axis=0)  # the routing rule of model.py
    od_all = answers_all & ~spot
    if not od_all.any():
        return d, {}
    egress_ub = float(np.max(resp_h[answers_all]))  # any routing pays at most the dearest all-answering candidate

    def units(need: float) -> np.ndarray:
        return np.ceil(need / rps - 1e-9)

    def cover(mask: np.ndarray, need: float) -> np.ndarray:
        return np.where(mask, units(need) * unit + fixed, math.inf)

    all_od = cover(od_all, req)
    best = int(np.argmin(all_od))
    ub = float(all_od[best]) + egress_ub
    plan = {best: int(units(req)[best])}
    if floor < 1.0 and domains >= 1 and (answers_all & spot).any():
        od_cost = cover(od_all, floor * req)
        od_best = int(np.argmin(od_cost))
        od_part = float(od_cost[od_best]) if floor > 0 else 0.0
        per_region: dict[str, tuple[float, int]] = {}
        spot_need = (1.0 - floor) * req / domains
        spot_cost = cover(answers_all & spot, spot_need)
        for i, c in enumerate(cands):
            if math.isfinite(spot_cost[i]) and float(spot_cost[i]) < per_region.get(c.region, (math.inf, -1))[0]:
                per_region[c.region] = (float(spot_cost[i]), i)
        if len(per_region) >= domains:
            cheapest = sorted(per_region.values())[:domains]
            mixed = od_part + sum(cost for cost, _ in cheapest) + egress_ub
            if mixed < ub:
                ub = mixed
                plan = {i: int(units(spot_need)[i]) for _, i in cheapest}
                if floor > 0:
                    plan[od_best] = int(units(floor * req)[od_best])
    od_rem = np.maximum(0.0, floor * req - np.where(spot, 0.0, cap))
    rest = np.maximum(0.0, req - cap - od_rem)
    lb = unit + fixed + od_rem * p_od + rest * p_all
    keep = lb <= ub * (1 + 1e-9) + 1e-9
    start = {cands[i].idx: n for i, n in plan.items()}  # a plan's candidates are never pruned: LB <= its cost
    if keep.all():
        return d, start
    return d.subset(np.nonzero(keep)[0].tolist()), start


def promising(d: DeploymentInput, k: int, regions: set[str] = frozenset()) -> list[int]:
    """Positions of the candidates most likely in a good plan of ``d``: the ``k`` with the lowest LB overall and
    the ``k // 2`` lowest of each market (a spot plan needs spot candidates in more than one region), every
    candidate in ``regions`` (where a known plan already pays the data egress), and the same offerings in the
    other market. A heuristic, for plans B."""
    cands = d.candidates
    if not cands:
        return []
    req = d.required_rps
    unit = np.array([c.usd_per_unit_hour for c in cands])
    cap = np.minimum(np.array([c.rps_per_unit for c in cands]), req)
    fixed = np.array([d.data_egress_usd_month.get(c.region, 0.0) / HOURS_PER_MONTH for c in cands])
    lb = unit + fixed + np.maximum(0.0, req - cap) * float(np.min(unit / cap))
    market = np.array([c.market for c in cands])
    keep = set(np.argsort(lb, kind="stable")[:k].tolist())
    for m in set(market.tolist()):
        idx = np.nonzero(market == m)[0]
        keep |= set(idx[np.argsort(lb[idx], kind="stable")[: k // 2]].tolist())
    keep |= {i for i, c in enumerate(cands) if c.region in regions}
    # and each one's twin in the other market: a region picked for spot often serves the on-demand floor too
    offerings = {(cands[i].region, cands[i].instance_type) for i in keep}
    keep |= {i for i, c in enumerate(cands) if (c.region, c.instance_type) in offerings}
    return sorted(keep)
