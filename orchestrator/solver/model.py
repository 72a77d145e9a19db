"""Builds the placement MILP as arrays (numpy, handed to HiGHS in one passModel).

Columns: integer units per candidate; continuous traffic x[s,c] (req/s from user region s to candidate c,
created only where RTT + TTFT meets the SLO); binary y[d,r] "deployment d serves from region r" where
moving d's data to r costs something. Policies add rows and objective terms through the public methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.solver.problem import (
    NOTHING_HELD,
    Candidate,
    DeploymentInput,
    Held,
    SolverInput,
)

OBJECTIVES = ("cost", "latency", "egress", "carbon")
_ALL_OBJ = OBJECTIVES + ("preference",)


@dataclass
class RowTag:
    kind: str  # demand | capacity | data_link | limit | budget | spot_floor | spot_spread | policy
    label: str
    deployment: str | None = None


@dataclass
class ModelBuilder:
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    obj: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _ALL_OBJ})
    _rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # (row, col, val)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    row_tags: list[RowTag] = field(default_factory=list)
    unit_col: dict[Candidate, int] = field(default_factory=dict)  # candidate -> its units column (insertion: column order)
    unit_ub: dict[Candidate, int] = field(default_factory=dict)
    traffic_cols: dict[Candidate, list[tuple[int, int]]] = field(default_factory=dict)  # candidate -> [(source, col)]
    region_col: dict[tuple[str, str], int] = field(default_factory=dict)  # (deployment, region) -> y column
    deployments: dict[str, DeploymentInput] = field(default_factory=dict)
    used_gpus: dict[str, float] = field(default_factory=dict)  # limit name -> GPUs used by fixed deployments
    fixed_usd_per_month: float = 0.0  # cost of deployments held fixed (fallback subproblems)
    first_coupling_row: int = 0

    # ---- columns -------------------------------------------------------------------------------
    @property
    def num_cols(self) -> int:
        return len(self.lower)

    def add_cols(self, n: int, lower: float | np.ndarray, upper: float | np.ndarray, integer: bool) -> np.ndarray:
        start = self.num_cols
        self.lower.extend(np.broadcast_to(np.asarray(lower, float), (n,)).tolist())
        self.upper.extend(np.broadcast_to(np.asarray(upper, float), (n,)).tolist())
        self.integer.extend([integer] * n)
        for k in _ALL_OBJ:
            self.obj[k].extend([0.0] * n)
        return np.arange(start, start + n)

    def add_col(self, lower: float = 0.0, upper: float = math.inf, integer: bool = False) -> int:
        return int(self.add_cols(1, lower, upper, integer)[0])

    def add_binary(self) -> int:
        return self.add_col(0.0, 1.0, True)

    def add_objective(self, col: int, coef: float, objective: str = "cost") -> None:
        self.obj[objective][col] += coef

    # ---- rows ----------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return len(self.row_lower)

    def add_rows(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, lower, upper, tags: list[RowTag]) -> None:
        """Bulk rows: ``rows`` are local indices 0..len(tags)-1 of the new rows."""
        base = self.num_rows
        n = len(tags)
        self._rows.append((np.asarray(rows, np.int64) + base, np.asarray(cols, np.int64), np.asarray(vals, float)))
        self.row_lower.extend(np.broadcast_to(np.asarray(lower, float), (n,)).tolist())
        self.row_upper.extend(np.broadcast_to(np.asarray(upper, float), (n,)).tolist())
        self.row_tags.extend(tags)

    def add_row(self, coefs: dict[int, float], lower: float, upper: float, tag: RowTag) -> int:
        cols = np.fromiter(coefs.keys(), np.int64, len(coefs))
        vals = np.fromiter(coefs.values(), float, len(coefs))
        self.add_rows(np.zeros(len(cols), np.int64), cols, vals, lower, upper, [tag])
        return self.num_rows - 1

    # ---- expressions policies use ---------------------------------------------------------------
    def has_units(self, c: Candidate) -> bool:
        """Whether ``c`` is in this model (a narrowed subproblem has only some of a deployment's candidates)."""
        return c in self.unit_col

    def units(self, c: Candidate) -> int:
        return self.unit_col[c]

    def traffic(self, c: Candidate) -> list[int]:
        return [col for _, col in self.traffic_cols.get(c, [])]

    def region_used(self, deployment: str, region: str) -> int | None:
        """The binary "deployment serves from region" column, where the region's data egress created one."""
        return self.region_col.get((deployment, region))

    def units_upper(self, c: Candidate) -> int:
        return self.unit_ub[c]

    def demand_rps(self, deployment: str) -> float:
        """The deployment's demand in req/s, before headroom: what ``capacity_terms`` are measured against."""
        return self.deployments[deployment].rps

    def capacity_terms(self, candidates: list[Candidate]) -> dict[int, float]:
        """The demand (req/s, headroom kept in reserve) these candidates' units can serve."""
        out: dict[int, float] = {}
        for c in candidates:
            if c in self.unit_col:
                h = self.deployments[c.deployment].headroom
                out[self.unit_col[c]] = c.rps_per_unit / (1.0 + h)
        return out

    def cost_terms(self, candidates: list[Candidate]) -> dict[int, float]:
        """$ per month of these candidates: compute, response egress, and their deployments' data egress."""
        out: dict[int, float] = {}
        deps: set[str] = set()
        for c in candidates:
            if c not in self.unit_col:
                continue
            deps.add(c.deployment)
            for col in [self.unit_col[c], *self.traffic(c)]:
                out[col] = out.get(col, 0.0) + self.obj["cost"][col]
        for (d, _r), col in self.region_col.items():
            if d in deps:
                out[col] = out.get(col, 0.0) + self.obj["cost"][col]
        return out

    # ---- assembly ------------------------------------------------------------------------------
    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row-wise CSR (start, index, value)."""
        if self._rows:
            r = np.concatenate([b[0] for b in self._rows])
            c = np.concatenate([b[1] for b in self._rows])
            v = np.concatenate([b[2] for b in self._rows])
        else:
            r = c = np.zeros(0, np.int64)
            v = np.zeros(0)
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        start = np.zeros(self.num_rows + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=self.num_rows), out=start[1:])
        return start, c, v

    def objective_vector(self, name: str) -> np.ndarray:
        return np.asarray(self.obj[name], float)


def build(inp: SolverInput, *, held: Held = NOTHING_HELD, coupling_only: bool = False) -> ModelBuilder:
    """The placement MILP; ``held``: what deployments outside it hold (GPUs against the limits, $ against a budget).
    ``coupling_only``: every column and objective, but of the rows only those that couple deployments (limits,
    project-wide policies): enough to check and price a plan assembled from per-deployment solutions, at a
    fraction of the cost."""
    b = ModelBuilder(used_gpus=dict(held.used_gpus), fixed_usd_per_month=held.usd_per_month)
    for d in inp.deployments:
        b.deployments[d.name] = d
        _add_deployment(b, d, rows=not coupling_only)
    for d in inp.deployments:
        for p in d.policies:
            if not coupling_only:
                p.add_constraints(b, d.spec, d.candidates)
            p.objective_terms(b, d.spec, d.candidates)
    b.first_coupling_row = b.num_rows  # rows from here on couple deployments (limits, project-wide policies)
    _add_limits(b, inp)
    allc = inp.candidates
    for p in inp.global_policies:
        p.add_constraints(b, None, allc)
        p.objective_terms(b, None, allc)
    return b


@dataclass
class _Columns:
    """One deployment's columns in the model, and the figures its rows are written from (arrays per candidate c
    and user region s)."""

    ok: np.ndarray  # [s, c]: routable (RTT + TTFT within the SLO)
    share: np.ndarray  # [s]: share of the demand
    reach: np.ndarray  # [c]: the most traffic c can take
    ub: np.ndarray  # [c]: the most units c may buy
    rps_unit: np.ndarray  # [c]
    ucols: np.ndarray  # [c]: units columns
    s_idx: np.ndarray  # per traffic column: its user region
    c_idx: np.ndarray  # per traffic column: its candidate
    xcols: np.ndarray  # traffic columns
    linked: list[tuple[int, Candidate]]  # (position, candidate) of those in a region with data egress (and units)


def _add_deployment(b: ModelBuilder, d: DeploymentInput, rows: bool = True) -> None:
    """One deployment's columns (units, traffic, regions served) and, with ``rows``, its rows by family: demand,
    capacity, cover, data links."""
    if not d.candidates:
        if rows:  # no candidate: demand rows with no columns make the model infeasible (diagnosed separately)
            demand = [d.rps * sh for _, sh in d.sources] or [d.rps]
            b.add_rows(np.zeros(0), np.zeros(0), np.zeros(0), demand, demand,
                       [RowTag("demand", f"{d.name} users in {s}", d.name) for s, _ in d.sources]
                       or [RowTag("demand", d.name, d.name)])
        return
    cols = _add_columns(b, d)
    if not rows:
        return
    # demand: sum_c x[s,c] = rps * share_s
    demand = cols.share * d.rps
    b.add_rows(cols.s_idx, cols.xcols, np.ones(len(cols.xcols)), demand, demand,
               [RowTag("demand", f"{d.name}: users in {s}", d.name) for s, _ in d.sources])
    _add_capacity_rows(b, d, cols)
    _add_cover_rows(b, d, cols.ok, cols.ucols, cols.rps_unit / (1.0 + d.headroom), demand)
    if cols.linked:
        _add_data_links(b, d, cols)


def _add_columns(b: ModelBuilder, d: DeploymentInput) -> _Columns:
    """Units u[c] (integer, up to what c's reachable traffic needs), traffic x[s,c] (created only where RTT + TTFT
    meets the SLO) and, where moving the data costs something, y[d,r] "serves from region r", each with its
    objective terms."""
    cands = d.candidates
    n_c, n_s = len(cands), len(d.sources)
    rtt = np.asarray(d.rtt_ms, float).reshape(n_s, n_c)
    resp = np.asarray(d.response_usd_per_rps_month, float).reshape(n_s, n_c)
    ttft = np.array([c.ttft_ms for c in cands])
    rps_unit = np.array([c.rps_per_unit for c in cands])
    share = np.array([sh for _, sh in d.sources])
    ok = rtt + ttft[None, :] <= d.ttft_slo_ms + 1e-9  # [S, C] routable pairs
    reach = (ok * share[:, None]).sum(axis=0) * d.rps  # max traffic a candidate can take
    ub = np.maximum(1, np.ceil(reach * (1.0 + d.headroom) / rps_unit - 1e-9)).astype(int)
    ub[reach <= 0] = 0

    ucols = b.add_cols(n_c, 0.0, ub.astype(float), True)
    for c, col, u in zip(cands, ucols, ub):
        b.unit_col[c] = int(col)
        b.unit_ub[c] = int(u)
        b.obj["cost"][col] = c.usd_per_unit_hour * HOURS_PER_MONTH
        b.obj["carbon"][col] = c.carbon_g_per_unit_hour * HOURS_PER_MONTH / 1000.0  # kg/month

    s_idx, c_idx = np.nonzero(ok)
    xcols = b.add_cols(len(s_idx), 0.0, (share[s_idx] * d.rps), False)
    for s, ci, col in zip(s_idx.tolist(), c_idx.tolist(), xcols.tolist()):
        c = cands[ci]
        b.traffic_cols.setdefault(c, []).append((s, col))
        egress = resp[s, ci]
        b.obj["cost"][col] = egress
        b.obj["egress"][col] = egress
        b.obj["latency"][col] = (rtt[s, ci] + ttft[ci]) / d.rps  # traffic-weighted mean, ms

    linked = [(i, c) for i, c in enumerate(cands) if d.data_egress_usd_month.get(c.region, 0.0) > 0 and ub[i] > 0]
    if linked:  # y[d,r]: the deployment serves from r (its data egress is charged once per region)
        regions = sorted({c.region for _, c in linked})
        ycols = b.add_cols(len(regions), 0.0, 1.0, True)
        for r, col in zip(regions, ycols.tolist()):
            b.region_col[(d.name, r)] = col
            usd = d.data_egress_usd_month[r]
            b.obj["cost"][col] = usd
            b.obj["egress"][col] = usd
    return _Columns(ok, share, reach, ub, rps_unit, ucols, s_idx, c_idx, xcols, linked)


def _add_capacity_rows(b: ModelBuilder, d: DeploymentInput, cols: _Columns) -> None:
    """sum_s x[s,c] - units_c * min(rps_unit_c / (1 + headroom), reach_c) <= 0. Capping a unit's capacity at the
    most traffic c can get is exact for whole units and keeps the LP relaxation from buying a sliver of an
    instance far larger than the deployment."""
    n_c = len(d.candidates)
    rows = np.concatenate([cols.c_idx, np.arange(n_c)])
    idx = np.concatenate([cols.xcols, cols.ucols])
    vals = np.concatenate([np.ones(len(cols.xcols)), -np.minimum(cols.rps_unit / (1.0 + d.headroom), cols.reach)])
    b.add_rows(rows, idx, vals, -np.inf, 0.0, [RowTag("capacity", c.describe(), d.name) for c in d.candidates])


def _add_data_links(b: ModelBuilder, d: DeploymentInput, cols: _Columns) -> None:
    """Data egress: y[d,r] >= units_c / ub_c for every candidate in r; and the strong (per user region) form of
    the same link, traffic of users s served in r <= d_s * y[r]: redundant for integers, but it makes the LP
    relaxation pay the fixed charge in proportion to traffic."""
    linked, cands = cols.linked, d.candidates
    k = len(linked)
    rows = np.concatenate([np.arange(k), np.arange(k)])
    idx = np.concatenate([[cols.ucols[i] for i, _ in linked], [b.region_col[(d.name, c.region)] for _, c in linked]])
    vals = np.concatenate([np.ones(k), [-float(cols.ub[i]) for i, _ in linked]])
    b.add_rows(rows, idx, vals, -np.inf, 0.0, [RowTag("data_link", f"{d.name} data to {c.region}", d.name) for _, c in linked])
    in_region: dict[tuple[int, str], list[int]] = {}
    for s, ci, col in zip(cols.s_idx.tolist(), cols.c_idx.tolist(), cols.xcols.tolist()):
        r = cands[ci].region
        if (d.name, r) in b.region_col:
            in_region.setdefault((s, r), []).append(col)
    if in_region:
        rr, cc, vv, tags = [], [], [], []
        for j, ((s, r), xs) in enumerate(in_region.items()):
            rr += [j] * (len(xs) + 1)
            cc += xs + [b.region_col[(d.name, r)]]
            vv += [1.0] * len(xs) + [-float(cols.share[s] * d.rps)]
            tags.append(RowTag("data_link", f"{d.name} users {d.sources[s][0]} via {r}", d.name))
        b.add_rows(np.array(rr), np.array(cc), np.array(vv), -np.inf, 0.0, tags)


def _add_cover_rows(b: ModelBuilder, d: DeploymentInput, ok: np.ndarray, ucols: np.ndarray, cap: np.ndarray,
                    demand: np.ndarray) -> None:
    """Units alone must cover the demand: sum_c cap_c units_c >= rps, and per user region s that not every
    candidate answers, sum over the candidates that answer s >= s's demand. Implied by the demand and capacity
    rows through the traffic columns, but stated on the integer units they give HiGHS knapsack rows to cut
    from (cover/MIR cuts close much of the unit-rounding gap: scaling benchmark 5,000 x 50, solve ~35% faster).
    Coefficients are capped at the right-hand side (exact for whole units, tighter for the LP)."""
    masks = [np.ones(len(ucols), bool)] + [ok[s] for s in range(ok.shape[0]) if not ok[s].all()]
    rhs = [float(demand.sum())] + [float(demand[s]) for s in range(ok.shape[0]) if not ok[s].all()]
    rr, cc, vv = [], [], []
    for j, m in enumerate(masks):
        idx = np.nonzero(m & (cap > 0))[0]
        rr.append(np.full(len(idx), j))
        cc.append(ucols[idx])
        vv.append(np.minimum(cap[idx], rhs[j]))  # a unit covers at most the whole right-hand side
    b.add_rows(np.concatenate(rr), np.concatenate(cc), np.concatenate(vv), rhs, np.inf,
               [RowTag("capacity", f"{d.name}: units cover demand", d.name) for _ in masks])


def _add_limits(b: ModelBuilder, inp: SolverInput) -> None:
    # a limit matches on provider, region and GPU: ask it once per combination, not once per candidate
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for c in inp.candidates:
        if c in b.unit_col:
            groups.setdefault((c.provider, c.region, c.gpu), []).append(c)
    for lim in inp.limits:
        coefs = {b.unit_col[c]: float(c.gpus_per_unit) for cs in groups.values() if lim.match(cs[0]) for c in cs}
        if not coefs:
            continue
        cap = lim.max_gpus - b.used_gpus.get(lim.name, 0.0)
        b.add_row(coefs, -np.inf, cap, RowTag("limit", lim.name))
