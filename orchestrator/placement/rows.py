"""The last stage of candidate generation, on arrays: each (offering, size, quantization, market) that passed
candidates.py's checks is a row of ``Rows``; ``to_candidates`` applies the deployment's policies (one verdict per
distinct combination of the fields they read), keeps the cheapest instance per identical capacity, prunes the
dominated (pruning.py), and makes Candidate objects only for what survives (and, per provider and accelerator, for
the cheapest pruned row, which the explanation prices)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.catalog.types import MARKETS, Offering
from orchestrator.placement.offerings import OfferingTable
from orchestrator.placement.pruning import (
    CandidateRows,
    DominanceColumns,
    codes,
    pareto,
)
from orchestrator.solver.problem import CLOUD_PUE, Candidate

if TYPE_CHECKING:
    from orchestrator.placement.candidates import (
        CandidateContext,
        CandidateRequest,
        DeploymentCandidates,
    )

POLICY = "policy"  # the reason of a row a policy rejects


class Rows:
    """Candidate figures as parallel arrays (one entry per offering x size x quantization x market); offerings
    (positions in the table) and estimates are referred to by position."""

    def __init__(self, table: OfferingTable, spot_ok: bool) -> None:
        self.table = table
        self.spot_price = table.spot_price if spot_ok else np.full(len(table.offerings), math.nan)
        self.ests: list[Any] = []
        self.qs: list[str] = []
        self._parts: list[tuple[np.ndarray, int, int, np.ndarray]] = []  # (positions, g, quantization, reach)

    def extend(self, pos: np.ndarray, g: int, q: str, est: Any, reach: np.ndarray) -> None:
        """The offerings at positions ``pos`` at one size and quantization (estimate ``est``)."""
        if q not in self.qs:
            self.qs.append(q)
        self.ests.append(est)
        self._parts.append((pos, g, self.qs.index(q), reach))

    def finish(self) -> None:
        """All rows as arrays, in one pass: each part's on-demand (on-prem) rows, then its spot rows."""
        parts = self._parts or [(np.zeros(0, np.int64), 0, 0, np.zeros(0, np.int64))]
        part = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
        pos = np.concatenate([p[0] for p in parts])
        rows = np.r_[np.arange(len(pos)), np.nonzero(~np.isnan(self.spot_price[pos]))[0]]
        is_spot = np.arange(len(rows)) >= len(pos)
        order = np.argsort(2 * part[rows] + is_spot, kind="stable")
        rows, is_spot = rows[order], is_spot[order]
        self.est = part[rows]
        self.off = pos[rows]
        self.g = np.array([p[1] for p in parts], np.int64)[self.est]
        self.q = np.array([p[2] for p in parts], np.int64)[self.est]
        self.reach = np.concatenate([p[3] for p in parts]).astype(np.int64)[rows]
        od = np.where(self.table.onprem[self.off], MARKETS.index("onprem"), MARKETS.index("on_demand"))
        self.market = np.where(is_spot, MARKETS.index("spot"), od)
        self.price = np.where(is_spot, self.spot_price[self.off], self.table.od_price[self.off]).astype(float)

    def __len__(self) -> int:
        return len(self.off)

    def offering(self, i: int) -> Offering:
        return self.table.offerings[int(self.off[i])]

    def candidate(self, i: int, deployment: str, ctx: CandidateContext) -> Candidate:
        o, e = self.offering(i), self.ests[int(self.est[i])]
        return Candidate(
            deployment=deployment, offering=o, gpus_per_replica=int(self.g[i]), quantization=self.qs[int(self.q[i])],
            market=MARKETS[int(self.market[i])], rps_per_replica=float(e.requests_per_s), ttft_ms=float(e.ttft_ms),
            tpot_ms=float(e.tpot_ms), usd_per_instance_hour=float(self.price[i]),
            grid_g_per_kwh=ctx.carbon_by_region.get(o.region, getattr(ctx.regions.get(o.region), "carbon_g_per_kwh", 0.0)),
            pue=ctx.pue_by_region.get(o.region, 1.0 if o.provider == "local" else CLOUD_PUE),
            gpu_tdp_w=ctx.gpus[o.gpu].tdp_w, reach=int(self.reach[i]),
        )


def to_candidates(out: DeploymentCandidates, rows: Rows, req: CandidateRequest, ctx: CandidateContext) -> DeploymentCandidates:
    """Policies, then dominance pruning on arrays; Candidate objects only for what survives (and, per
    provider, the cheapest pruned option, which the explanation prices)."""
    rows.finish()
    n = len(rows)
    name, policies = req.deployment.name, req.policies
    t = req.deployment.traffic
    need = t.requests_per_second * (1 + t.headroom)

    def make(i: int) -> Candidate:
        return rows.candidate(i, name, ctx)

    table = rows.table
    off = rows.off
    region, gpu, count, max_gpus = table.region[off], table.gpu[off], table.count[off], table.max_gpus[off]
    ok = _policy_verdicts(out, rows, req, make) if n else np.ones(n, bool)
    idx = np.nonzero(ok)[0]
    if n == 0 or len(idx) == 0:
        out.candidates = []
        return out
    g, cnt, market = rows.g[idx], count[idx], rows.market[idx]
    inst = np.maximum(1, g // cnt)
    reps = np.maximum(1, cnt // g)
    unit = rows.price[idx] * inst
    est = rows.est[idx]
    rps = np.array([float(e.requests_per_s) for e in rows.ests])[est] * reps
    ttft = np.array([float(e.ttft_ms) for e in rows.ests])[est]
    gpus_unit = cnt * inst
    reach = rows.reach[idx]
    co2 = np.zeros(len(idx))
    if ctx.carbon:
        co2 = np.array([make(i).carbon_g_per_unit_hour for i in idx.tolist()])
    # the cheapest instance per (region, market, shape, size, quantization): identical capacity
    inv = codes(region[idx], market, gpu[idx], cnt, g, rows.q[idx], max_gpus[idx])
    order = np.lexsort((unit, inv))
    first_of = np.ones(len(order), bool)
    first_of[1:] = inv[order][1:] != inv[order][:-1]
    sel = np.sort(order[first_of])
    if not ctx.prune:
        out.candidates = [make(i) for i in idx[sel].tolist()]
        return out
    lim = table.counted(ctx.limited)[off[idx]]
    if any(getattr(p, "per_gpu_type", False) for p in policies):  # rows tie the choice to GPU types
        lim = np.ones(len(idx), bool)
    group = codes(region[idx], market, np.where(lim, gpu[idx], -1))
    cols = DominanceColumns(unit=unit, capacity=np.minimum(rps, need), co2=co2, gpus=gpus_unit, ttft=ttft, reach=reach,
                            counted=lim)
    kept = pareto(sel, group, cols, exact_ttft=ctx.exact_ttft, carbon=ctx.carbon)
    if req.region_prune is not None and len(kept) > 1:
        keep = req.region_prune(CandidateRows(table.region_names[region[idx[kept]]], np.array(MARKETS)[market[kept]], unit[kept],
                                              cols.capacity[kept], reach[kept], co2[kept], lim[kept]))
        kept = kept[keep]
    out.candidates = [make(i) for i in idx[kept].tolist()]
    dropped = np.setdiff1d(sel, kept)
    out.pruned += len(dropped)
    cover = np.ceil(need / rps - 1e-9) * unit
    _cheapest_pruned(out, rows, idx[dropped], cover[dropped], make)
    return out


def _policy_verdicts(out: DeploymentCandidates, rows: Rows, req: CandidateRequest, make: Callable[[int], Candidate]) -> np.ndarray:
    """Which rows the deployment's policies accept (the others rejected in ``out``): one verdict per distinct
    combination of the fields the policies read."""
    table, off = rows.table, rows.off
    fields = {"region": table.region[off], "gpu": table.gpu[off], "market": rows.market, "quantization": rows.q}
    reads = sorted(set().union(*(getattr(p, "reads", fields) for p in req.policies)))
    if not reads:
        return np.ones(len(rows), bool)
    _, first, key = np.unique(codes(*(fields[f] for f in reads)), return_index=True, return_inverse=True)
    verdict = [next((r for p in req.policies if (r := p.reject(req.deployment, make(int(i))))), None) for i in first]
    ok = np.array([v is None for v in verdict])[key]
    bad = np.nonzero(~ok)[0]
    why = {k: verdict[key[i]] for i, k in zip(bad.tolist(), off[bad].tolist())}  # an offering's reason (the last one)
    out.reject_at(table, off[bad], POLICY, lambda k: why[k])
    return ok


def _cheapest_pruned(out: DeploymentCandidates, rows: Rows, dropped: np.ndarray, cover: np.ndarray,
                     make: Callable[[int], Candidate]) -> None:
    """Per provider and per accelerator, the pruned row (of ``dropped``) that covers the requirement cheapest
    (``cover``: $/h with its units alone), which the explanation prices."""
    off = rows.off[dropped]
    for key, into, attr in ((rows.table.provider[off], out.dominated, "provider"), (rows.table.gpu[off], out.dominated_gpu, "gpu")):
        order = np.lexsort((cover, key))  # per provider (accelerator), the cheapest cover first
        first = np.r_[True, key[order][1:] != key[order][:-1]] if len(order) else np.zeros(0, bool)
        for j in dropped[order[first]].tolist():
            into[getattr(rows.offering(j), attr)] = make(int(j))
