"""Bound-based pruning of one deployment's candidates (cost objective, deployment solved alone).

``lower_bounds`` gives, per candidate c, a lower bound on the monthly cost of any plan that buys a c unit: c's
unit and its region's data egress, plus the cheapest way to buy the rest of the capacity (whole units: a
knapsack over the demand cut into GRID steps, each unit's capacity rounded up to a step, so the bound stays a
bound), with the on-demand floor, the spot spread over several regions (a spot unit of an optimal plan serves
traffic, so the rest then holds a spot unit of its own), and the data egress of every further region it
takes: the rest stays in c's region and the free ones, or pays at least one more region, or the cheapest set
of paid regions that answers the user regions those leave unanswered. The rest's units also cover each user
region's share of the demand with units that answer it. Plus the response egress every plan pays (each user
region served by its cheapest reachable candidate).
A feasible plan gives an upper bound UB: the simple plan below (n units of one on-demand candidate that answers
every user region, or the on-demand floor plus spot over the cheapest regions) or, for the solver, the optimum
over a short list of candidates. If LB(c) > UB, c is in no optimal plan of this deployment alone. Valid only
without coupling rows (quotas, project budget: a quota may force a pricier candidate), so the decomposed solve
uses it for the per-deployment subproblems and the joint MILP keeps every candidate.
"""

from __future__ import annotations

import math

import numpy as np

from orchestrator.catalog.types import HOURS_PER_MONTH, SPOT
from orchestrator.solver.problem import Candidate, DeploymentInput

GRID = 128  # demand steps of the knapsack bound: finer is tighter and slower
MAX_COVER_USERS = 10  # user regions up to which the bound finds the cheapest set of regions that answers them all


def _spot_rule(d: DeploymentInput) -> tuple[float, int]:
    """(on-demand floor, failure domains) of the deployment's spot rows (the first policy that has them); (0, 0)
    without any."""
    for p in d.policies:
        rule = p.spot_rule(d.spec)
        if rule is not None:
            return rule
    return 0.0, 0


def _knapsacks(steps: np.ndarray, price: np.ndarray, groups: list[np.ndarray], grid: int) -> np.ndarray:
    """K[g, j]: the least cost of whole units of group g's candidates whose steps add up to at least j."""
    groups = [_frontier(steps[g], price[g], g) for g in groups]
    width = max([1, *(len(g) for g in groups)])
    st = np.zeros((len(groups), width), np.int64)
    pr = np.full((len(groups), width), math.inf)
    for i, g in enumerate(groups):
        st[i, : len(g)] = steps[g]
        pr[i, : len(g)] = price[g]
    k = np.full((len(groups), grid + 1), math.inf)
    k[:, 0] = 0.0
    rows = np.arange(len(groups))[:, None, None]
    # steps j..j+s-1 depend only on steps below j when every unit spans s steps or more: a block at a time
    block = max(1, int(st[np.isfinite(pr)].min())) if np.isfinite(pr).any() else grid
    for j in range(1, grid + 1, block):
        js = np.arange(j, min(j + block, grid + 1))
        k[:, js] = np.min(pr[:, :, None] + k[rows, np.maximum(0, js[None, None, :] - st[:, :, None])], axis=1)
    return k


def _frontier(steps: np.ndarray, price: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The items of ``idx`` no other item beats (as many steps or more, for no more): the only ones a cheapest
    cover needs (the knapsack's width, and so its time, shrinks several-fold)."""
    if len(idx) <= 1:
        return idx
    order = np.lexsort((price, -steps))  # most steps first, the cheapest first among equals
    cheapest_so_far = np.minimum.accumulate(price[order])
    keep = np.ones(len(order), bool)
    keep[1:] = price[order][1:] < cheapest_so_far[:-1]
    return idx[order[keep]]


def _rest(k_od: np.ndarray, k_spot: np.ndarray, group: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate (its row of the knapsacks k_od/k_spot, on-demand need a, total need b, in steps): the least
    cost of the rest of a plan without spot units, and with at least one. Once per distinct (row, a, b): many
    candidates share them."""
    grid = k_od.shape[1] - 1
    key = (group.astype(np.int64) * (grid + 1) + a) * (grid + 1) + b
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    g, a, b = group[first], a[first], b[first]
    j = np.arange(grid + 1)
    no_spot = k_od[g, np.maximum(a, b)]
    with_spot = k_od[g] + k_spot[g[:, None], np.maximum(1, b[:, None] - j[None, :])]
    with_spot[j[None, :] < a[:, None]] = math.inf
    return no_spot[inv], with_spot.min(axis=1)[inv]


def lower_bounds(d: DeploymentInput, grid: int = GRID) -> np.ndarray:
    """$ per month: a lower bound on the cost of any plan of ``d`` alone that buys a unit of each candidate
    (module docstring). Valid for plans the model accepts: it relaxes routing, unit limits and the policies of
    policies that say ``bound_safe``, and keeps only what every such plan pays."""
    cands = d.candidates
    n = len(cands)
    demand = d.rps
    if n == 0 or demand <= 0:
        return np.array([c.usd_per_unit_hour * HOURS_PER_MONTH for c in cands])
    floor, domains = _spot_rule(d)
    cap = np.minimum(np.array([c.rps_per_unit for c in cands]) / (1.0 + d.headroom), demand)
    price = np.array([c.usd_per_unit_hour for c in cands]) * HOURS_PER_MONTH
    spot = np.array([c.market == SPOT for c in cands])
    names = sorted({c.region for c in cands})
    region = np.searchsorted(np.array(names), np.array([c.region for c in cands]))
    charge_r = np.array([d.data_egress_usd_month.get(r, 0.0) for r in names])
    free_r = charge_r <= 0
    spot_r = np.zeros(len(names), bool)
    spot_r[region[spot]] = True
    steps = np.ceil(cap * grid / demand - 1e-9).astype(np.int64)
    need_od = math.ceil(floor * grid - 1e-6) if floor > 0 else 0

    # knapsacks over every candidate, and per region r over r and the free regions (where the rest pays no data egress)
    home = free_r[region]
    k_all, k_near = {}, {}
    for m, mask in (("od", ~spot), (SPOT, spot)):
        k_all[m] = _knapsacks(steps, price, [np.nonzero(mask)[0]], grid)
        k_near[m] = _knapsacks(steps, price, [np.nonzero(mask & ((region == r) | home))[0] for r in range(len(names))], grid)
    a = np.maximum(0, need_od - np.where(spot, 0, steps))
    b = np.maximum(0, grid - steps)
    near_n, near_s = _rest(k_near["od"], k_near[SPOT], region, a, b)
    # the rest can stay near only if c's region and the free ones answer every user region
    ok = _routable(d)
    answered = np.zeros((len(d.sources), len(names)), bool)
    for s, row in enumerate(ok):
        answered[s, region[row]] = True
    near_ok = (answered | answered[:, free_r].any(axis=1)[:, None]).all(axis=0)[region]
    far_n, far_s = _rest(k_all["od"], k_all[SPOT], np.zeros(n, np.int64), a, b)
    units = _per_user_units(d, ok, steps, price, grid)

    # data egress of further regions, and the spot regions a spread needs beyond those near; users that neither c's
    # region nor a free one answers need paid regions that do: the cheapest such set
    spread = domains >= 2
    near_spot = int((spot_r & free_r).sum()) + (spot_r & ~free_r)[region]
    short = np.where(spread, np.maximum(0, domains - near_spot), 0)
    one_more, more_spot = _further_charges(region, spot_r, free_r, charge_r, short)
    more = np.where(near_ok, one_more, _cover_charges(answered, charge_r, free_r)[region])
    far_spot_charge = np.maximum(more, more_spot)

    spread_near = near_spot >= domains if spread else np.ones(n, bool)
    # with a spread, a spot unit of an optimal plan serves traffic (else the plan is dearer by it than without it),
    # so the spread applies and the rest has a spot unit of its own, in another region
    near_n, far_n = np.maximum(near_n, units), np.maximum(far_n, units)
    near_s, far_s = np.maximum(near_s, units), np.maximum(far_s, units)
    spot_rest_n = near_s if spread else np.minimum(near_n, near_s)
    near_od = np.minimum(near_n, np.where(spread_near, near_s, math.inf))
    near = np.where(spot, np.where(spread_near, spot_rest_n, math.inf), near_od)
    near = np.where(near_ok, near, math.inf)
    spot_rest_f = far_s if spread else np.minimum(far_n, far_s)
    far = np.where(spot, far_spot_charge + spot_rest_f, np.minimum(more + far_n, far_spot_charge + far_s))
    rest = np.maximum(np.minimum(near, far), _fractional_rest(price, cap, spot, floor * demand, demand))
    return price + charge_r[region] + rest + _response_floor(d, ok)


def _further_charges(region: np.ndarray, spot_r: np.ndarray, free_r: np.ndarray, charge_r: np.ndarray,
                     short: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate (in ``region``), the data egress of further regions: the cheapest paid region other than its
    own, and the cheapest ``short`` paid spot regions other than its own (the failure domains a spot plan needs
    beyond those it has near). ``*_r``: per region, spot offered, free (no data egress), the data egress."""
    paid = np.nonzero(~free_r)[0]
    order = paid[np.argsort(charge_r[paid], kind="stable")]
    one_more = np.full(len(region), math.inf)
    if len(order):
        first, second = order[0], (order[1] if len(order) > 1 else -1)
        one_more = np.where(region != first, charge_r[first], charge_r[second] if second >= 0 else math.inf)
    spot_order = order[spot_r[order]]
    cum = np.concatenate([[0.0], np.cumsum(charge_r[spot_order])])
    rank = np.full(len(charge_r), len(spot_order))
    rank[spot_order] = np.arange(len(spot_order))
    mine = rank[region] < short  # c's own region is among the cheapest: skip it
    top = np.minimum(short + mine, len(spot_order))
    more_spot = np.where(short + mine > len(spot_order), math.inf, cum[top] - np.where(mine, charge_r[region], 0.0))
    return one_more, more_spot


def _fractional_rest(price: np.ndarray, cap: np.ndarray, spot: np.ndarray, od_need: float, demand: float) -> np.ndarray:
    """The rest of a plan with fractional units, per candidate: tighter than whole units where units are small
    against a knapsack step. ``od_need``: the on-demand floor in req/s."""
    per = price / cap
    best_all = float(per.min())
    od_left = np.maximum(0.0, od_need - np.where(spot, 0.0, cap))
    left = np.maximum(0.0, demand - cap - od_left)
    od_cost = od_left * float(per[~spot].min()) if (~spot).any() else np.where(od_left > 0, math.inf, 0.0)
    return od_cost + left * best_all


def _per_user_units(d: DeploymentInput, ok: np.ndarray, steps: np.ndarray, price: np.ndarray, grid: int) -> np.ndarray:
    """Per candidate c: the least the rest of a plan spends on units, from each user region's own need: its share
    of the demand in units that answer it (the cover rows of model.py), less what c's unit covers if it answers."""
    n_s = ok.shape[0]
    if n_s <= 1:  # one user region: the knapsack over every candidate already says it
        return np.zeros(len(steps))
    share = np.array([sh for _, sh in d.sources])
    need = np.ceil(share * grid - 1e-6).astype(np.int64)
    k = _knapsacks(steps, price, [np.nonzero(row)[0] for row in ok], grid)
    left = np.maximum(0, need[:, None] - np.where(ok, steps[None, :], 0))
    return k[np.arange(n_s)[:, None], left].max(axis=0)


def _cover_charges(answered: np.ndarray, charge_r: np.ndarray, free_r: np.ndarray) -> np.ndarray:
    """Per region r: the least data egress of further paid regions that answer every user region that neither r
    nor a free region answers (a set cover over user regions; inf where none can; 0 where r needs none)."""
    n_s, n_r = answered.shape
    if n_s > MAX_COVER_USERS:  # too many subsets: the weaker rule (one more region) stands
        return np.zeros(n_r)
    bits = (answered.astype(np.int64) << np.arange(n_s)[:, None]).sum(axis=0)
    full = (1 << n_s) - 1
    paid = ~free_r
    best = np.full(1 << n_s, math.inf)
    best[0] = 0.0
    for mask in range(1, 1 << n_s):
        helps = paid & ((bits & mask) != 0)
        if helps.any():
            best[mask] = float(np.min(charge_r[helps] + best[mask & ~bits[helps]]))
    home = int(np.bitwise_or.reduce(bits[free_r])) if free_r.any() else 0
    return best[full & ~(bits | home)]


def _routable(d: DeploymentInput) -> np.ndarray:
    """[user region, candidate]: the pair meets the TTFT SLO (the routing rule of model.py)."""
    n_s, n_c = len(d.sources), len(d.candidates)
    rtt = np.asarray(d.rtt_ms, float).reshape(n_s, n_c)
    ttft = np.array([c.ttft_ms for c in d.candidates])
    return rtt + ttft[None, :] <= d.ttft_slo_ms + 1e-9


def _response_floor(d: DeploymentInput, ok: np.ndarray) -> float:
    """Response egress every plan pays: each user region's traffic at its cheapest reachable candidate."""
    if len(d.sources) == 0:
        return 0.0
    resp = np.where(ok, np.asarray(d.response_usd_per_rps_month, float).reshape(ok.shape), math.inf)
    share = np.array([sh for _, sh in d.sources])
    best = resp.min(axis=1)
    return float((share * d.rps * np.where(np.isfinite(best), best, 0.0)).sum())


def prune_by_bound(d: DeploymentInput) -> tuple[DeploymentInput, dict[Candidate, int], np.ndarray | None]:
    """``d`` without the candidates whose LB exceeds UB, the simple plan that set UB ({candidate: units};
    empty where none applies), a start for the solver, and the kept candidates' LB ($ per month; None where the
    deployment's policies do not allow the bound).

    UB: the cheapest of n units of one on-demand candidate that answers every user region and, with a spot
    floor f < 1, f x R on-demand plus (1 - f) x R of spot split over the k cheapest spot regions (a plan the
    floor and spread rows accept)."""
    cands = d.candidates
    if len(cands) < 3 or not all(p.bound_safe for p in d.policies):
        return d, {}, None
    lb = lower_bounds(d)
    n_s = len(d.sources)
    req = d.required_rps
    floor, domains = _spot_rule(d)
    unit = np.array([c.usd_per_unit_hour for c in cands])
    rps = np.array([c.rps_per_unit for c in cands])
    spot = np.array([c.market == SPOT for c in cands])
    fixed = np.array([d.data_egress_usd_month.get(c.region, 0.0) / HOURS_PER_MONTH for c in cands])
    resp = np.asarray(d.response_usd_per_rps_month, float).reshape(n_s, len(cands))
    share = np.array([sh for _, sh in d.sources])
    resp_h = (share[:, None] * d.rps * resp).sum(axis=0) / HOURS_PER_MONTH
    answers_all = _routable(d).all(axis=0)
    od_all = answers_all & ~spot
    if not od_all.any():
        return d, {}, lb
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
    keep = lb <= ub * HOURS_PER_MONTH * (1 + 1e-9) + 1e-6  # UB is $/h, LB $/month
    start = {cands[i]: n for i, n in plan.items()}  # a plan's candidates are never pruned: LB <= its cost
    if keep.all():
        return d, start, lb
    return d.subset(np.nonzero(keep)[0].tolist()), start, lb[keep]


def promising(d: DeploymentInput, k: int, regions: set[str] = frozenset()) -> list[int]:
    """Positions of the candidates most likely in a good plan of ``d``: the ``k`` with the lowest LB overall and
    the ``k // 2`` lowest of each market (a spot plan needs spot candidates in more than one region), every
    candidate in ``regions`` (where a known plan already pays the data egress), and the same offerings in the
    other market. A heuristic, for plans B."""
    cands = d.candidates
    if not cands:
        return []
    lb = lower_bounds(d)
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
