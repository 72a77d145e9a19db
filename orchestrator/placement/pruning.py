"""The pipeline's pruning rules, in one place: each drops candidates that another dominates, so an optimum stays.

- per group (region, market, GPU type when a quota counts it): ``pareto``, run by build_candidates;
- across regions, counting the one-off data egress of another region: ``beaten_across_regions`` (build_candidates'
  ``region_prune``, from placement/inputs.py) and ``prune_across_regions`` on a finished DeploymentInput.

Bound pruning (orchestrator/solver/bounds.py) stays the solver's: it runs inside the decomposed solve on each
subproblem (the other deployments' GPUs and the incumbent's cost), gives the warm starts their first plan
and feeds the narrowing's short lists, so it is a step of the solve, not of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.catalog.types import HOURS_PER_MONTH, ON_DEMAND, SPOT
from orchestrator.solver.problem import DeploymentInput

BLOCK = 512  # candidates per block of the cross-region dominance check (bounds its memory)


@dataclass
class CandidateRows:
    """One deployment's candidates as arrays, for a pruning rule that needs more than the catalog knows
    (the solver's egress prices): see ``build_candidates(region_prune=)``."""

    region: np.ndarray  # region id per row
    market: np.ndarray  # on_demand | spot | onprem
    unit_usd_per_hour: np.ndarray
    capacity: np.ndarray  # req/s per unit, capped at the deployment's requirement
    reach: np.ndarray  # bit s set: answers user region s within the TTFT SLO
    co2: np.ndarray  # g per unit-hour (zeros unless the carbon objective)
    counted: np.ndarray  # on-prem, or a quota counts its GPUs


RegionPrune = Callable[[CandidateRows], np.ndarray]  # rows -> keep mask


def codes(*cols: np.ndarray) -> np.ndarray:
    """One integer per row, equal exactly where every column is equal (not compact: 0..k-1 takes np.unique)."""
    key = np.zeros(len(cols[0]), np.int64)
    if len(key) == 0:
        return key
    for c in cols:
        c = np.asarray(c)
        if c.dtype.kind in "iub":  # integers need no sorting: shift them to start at 0
            code = c.astype(np.int64) - int(c.min())
        else:
            code = np.unique(c, return_inverse=True)[1].astype(np.int64)
        base = int(code.max()) + 1
        if int(key.max()) >= (1 << 62) // base:  # keep the mixed key in range
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        key = key * base + code
    return key


@dataclass(frozen=True)
class DominanceColumns:
    """What the per-group rule (``pareto``) compares, one entry per candidate row: arrays, not rows."""

    unit: np.ndarray  # $/h per unit
    capacity: np.ndarray  # req/s per unit, capped at the deployment's requirement
    co2: np.ndarray  # g per unit-hour (zeros unless the carbon objective)
    gpus: np.ndarray  # GPUs per unit
    ttft: np.ndarray  # ms
    reach: np.ndarray  # bit s set: answers user region s within the TTFT SLO
    counted: np.ndarray  # a quota or inventory counts its GPUs: its group keeps GPU types apart


def pareto(sel: np.ndarray, group: np.ndarray, cols: DominanceColumns, *, exact_ttft: bool, carbon: bool) -> np.ndarray:
    """The positions in ``sel`` that no other candidate of the same group (region, market, and GPU type when
    a quota or inventory counts it) dominates.

    B dominates A when k = ceil(cap A / cap B) units of B cost no more than one unit of A (and, with
    ``carbon``, emit no more; in a GPU-counted group, use no more GPUs), and B is no slower: TTFT itself with
    ``exact_ttft`` (latency objective), else B answers every user region A answers within the SLO. Any plan
    then stays feasible and no dearer with each A unit swapped for k B units in the same region, so pruning
    A keeps an optimum. ``cols.capacity`` is capacity capped at the deployment's whole requirement: one unit never
    serves more than that, so a huge instance is replaced by enough smaller ones to serve everything."""
    if len(sel) < 2:
        return sel
    # one padded [group, dominator, dominated] block per batch of similar group sizes: no Python loop per group
    # within a group, a dominator comes first
    order = np.lexsort((cols.ttft[sel], -cols.capacity[sel], cols.unit[sel], group[sel]))
    rows = sel[order]
    g = group[rows]
    start = np.nonzero(np.r_[True, g[1:] != g[:-1]])[0]
    size = np.diff(np.r_[start, len(rows)])
    pos = np.arange(len(rows)) - np.repeat(start, size)  # position within its group
    gid = np.repeat(np.arange(len(start)), size)
    dropped = np.zeros(len(rows), bool)
    for lo, hi in ((2, 8), (9, 32), (33, 128), (129, 1 << 30)):
        pick = np.nonzero((size >= lo) & (size <= hi))[0]
        if len(pick) == 0:
            continue
        if hi > 128:  # rare huge groups: one at a time
            for j in pick.tolist():
                at = np.arange(start[j], start[j] + size[j])
                dropped[at] = _dominated(rows[at][None, :], np.ones((1, len(at)), bool), cols,
                                         exact_ttft=exact_ttft, carbon=carbon)[0]
            continue
        m = int(size[pick].max())
        local = np.full(len(start), -1)
        local[pick] = np.arange(len(pick))
        members = local[gid] >= 0
        idx = np.zeros((len(pick), m), np.int64)
        valid = np.zeros((len(pick), m), bool)
        idx[local[gid[members]], pos[members]] = rows[members]
        valid[local[gid[members]], pos[members]] = True
        dom = _dominated(idx, valid, cols, exact_ttft=exact_ttft, carbon=carbon)
        dropped[members] = dom[local[gid[members]], pos[members]]
    return np.sort(rows[~dropped])


def _dominated(idx: np.ndarray, valid: np.ndarray, cols: DominanceColumns, *, exact_ttft: bool, carbon: bool) -> np.ndarray:
    """[group, position]: dominated by an earlier valid row of its group (rows ``idx``, padded where not ``valid``)."""
    eps = 1 + 1e-9
    u, c, t, r = cols.unit[idx], cols.capacity[idx], cols.ttft[idx], cols.reach[idx]
    k = np.ceil(c[:, None, :] / np.where(valid, c, 1.0)[:, :, None] - 1e-9)  # dominator units per dominated unit
    dom = k * u[:, :, None] <= u[:, None, :] * eps
    if exact_ttft:
        dom &= t[:, :, None] <= t[:, None, :]
    else:
        dom &= (r[:, :, None] & r[:, None, :]) == r[:, None, :]
    if carbon:
        dom &= k * cols.co2[idx][:, :, None] <= cols.co2[idx][:, None, :] * eps
    counted = cols.counted[idx[:, 0]]
    if counted.any():
        gp = cols.gpus[idx]
        dom &= ~counted[:, None, None] | (k * gp[:, :, None] <= gp[:, None, :])
    m = idx.shape[1]
    dom &= np.arange(m)[:, None] < np.arange(m)[None, :]  # only earlier rows dominate later ones
    dom &= valid[:, :, None] & valid[:, None, :]
    return dom.any(axis=1)



def prune_across_regions(d: DeploymentInput, limited: Callable[[Any], bool], *, carbon: bool = False) -> DeploymentInput:
    """``d`` without the candidates ``beaten_across_regions`` finds (build_inputs prunes this way before it
    builds the DeploymentInput)."""
    cands = d.candidates
    if len(cands) < 2:
        return d
    rows = CandidateRows(
        np.array([c.region for c in cands]), np.array([c.market for c in cands]), np.array([c.usd_per_unit_hour for c in cands]),
        np.minimum(np.array([c.rps_per_unit for c in cands]), d.required_rps), np.array([c.reach for c in cands], np.int64),
        np.array([c.carbon_g_per_unit_hour for c in cands]), np.array([c.market == "onprem" or limited(c) for c in cands]))
    data = np.array([d.data_egress_usd_month.get(c.region, 0.0) for c in cands])
    resp = np.asarray(d.response_usd_per_rps_month, float).reshape(len(d.sources), len(cands))
    drop = beaten_across_regions(rows, data, resp, carbon=carbon)
    return d if not drop.any() else d.subset(np.nonzero(~drop)[0].tolist())


def beaten_across_regions(rows: CandidateRows, data_usd_month: np.ndarray, resp: np.ndarray, *, carbon: bool = False) -> np.ndarray:
    """Which candidates one in another region beats, counting that region's one-off data egress.

    B (region r') beats A (region r) when k = ceil(cap A / cap B) B units plus r' data egress (once) cost
    no more than one A unit, B answers every user region A answers at no higher response egress (``resp``:
    [user region, candidate] $/month per req/s), and no quota counts B's GPUs (A's may: dropping A only
    loosens them). Swapping every A unit for k B units then keeps the plan feasible at no higher cost. A spot
    candidate needs such dominators in two other regions (its spread counts regions). Not for the latency
    objective (RTT differs by region).
    """
    n = len(rows.region)
    drop = np.zeros(n, bool)
    if n < 2:
        return drop
    unit, cap, reach, market = rows.unit_usd_per_hour, rows.capacity, rows.reach, rows.market
    fixed = np.asarray(data_usd_month, float) / HOURS_PER_MONTH  # $/h
    eps = 1 + 1e-9
    _, reg_code = np.unique(rows.region, return_inverse=True)

    def beats(b: np.ndarray, a: np.ndarray) -> np.ndarray:
        """[b, a]: b (another region) beats a on every count. Where two would beat each other (equal prices
        within eps), only the one listed first does, so that what is dropped always has a kept dominator."""
        k = np.ceil(cap[a][None, :] / cap[b][:, None] - 1e-9)  # B units per A unit
        blk = ((reg_code[b][:, None] != reg_code[a][None, :]) & (k * unit[b][:, None] + fixed[b][:, None] <= unit[a][None, :] * eps)
               & ((reach[b][:, None] & reach[a][None, :]) == reach[a][None, :]))
        blk &= (unit[b][:, None] * eps < unit[a][None, :]) | (b[:, None] < a[None, :])
        for s in range(resp.shape[0]):
            blk &= resp[s][b][:, None] <= resp[s][a][None, :] + 1e-12
        if carbon:
            blk &= k * rows.co2[b][:, None] <= rows.co2[a][None, :] * eps
        return blk

    def dominated(b: np.ndarray, a: np.ndarray, two_regions: bool) -> np.ndarray:
        """For each of ``a``: beaten by one of ``b`` (by two in different regions with ``two_regions``).
        Blocks of the cheapest first: only a B whose unit plus data egress costs no more than A's unit can
        beat A, so each block of A meets a prefix of the B sorted by that sum."""
        out = np.zeros(len(a), bool)
        if len(b) == 0 or len(a) == 0:
            return out
        b = b[np.argsort(unit[b] + fixed[b], kind="stable")]
        key = (unit + fixed)[b]
        order = np.argsort(unit[a], kind="stable")
        for lo in range(0, len(a), BLOCK):
            cols = order[lo:lo + BLOCK]
            nb = int(np.searchsorted(key, unit[a[cols]].max() * eps, side="right"))
            if nb == 0:
                continue
            blk = beats(b[:nb], a[cols])
            if two_regions:
                first = np.argmax(blk, axis=0)
                blk &= reg_code[b[:nb]][:, None] != reg_code[b[:nb]][first][None, :]
            out[cols] = blk.any(axis=0)
        return out

    # Per market (on-prem is never dominated). An on-demand candidate needs one dominator: if that one is
    # dominated too, the chain ends at a kept candidate at least as good on every count (k1 C units replace
    # a B unit, k2 B units an A unit: k1 k2 C units plus C's region's data egress cost no more than k2 B units,
    # so no more than one A unit). A spot candidate needs undominated dominators in two other regions, so a
    # spread over failure domains survives the swap.
    for m in (ON_DEMAND, SPOT):
        a = np.nonzero(market == m)[0]  # ascending, as ``beats`` breaks ties by position
        b = a[~rows.counted[a]]
        hit = dominated(b, a, two_regions=False)
        if m == SPOT and hit.any():
            free = b[~hit[np.searchsorted(a, b)]]  # undominated dominators
            hit[hit] = dominated(free, a[hit], two_regions=True)
        drop[a] = hit
    return drop
