"""The lexicographic stages of one placement MILP, solved with HiGHS: an optional policy preference first, then the
chosen objective, then the other objectives (weighted, normalised) as tie-breakers with the earlier stages'
optima held within a relative LEX_TOL (for cost: among the chosen instances and those that tie them on price).
How a solve is sped up (decomposition, narrowing, warm starts, time budgets) is solve.py's and strategy.py's."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from orchestrator.solver.model import OBJECTIVES, ModelBuilder, build
from orchestrator.solver.problem import NOTHING_HELD, Candidate, Held, SolverInput
from orchestrator.solver.strategy import DEFAULT, SolveStrategy

MIP_REL_GAP = 1e-4
TIME_LIMIT_S = 60.0
LEX_TOL = 1e-6
_BANNER_LOCK = threading.Lock()


@dataclass
class Solution:
    status: str  # optimal | time_limit (feasible, gap not closed) | infeasible | timeout (none found in time) | error
    objective: str
    units: dict[Candidate, int] = field(default_factory=dict)  # candidate -> units (only > 0)
    traffic: dict[Candidate, list[tuple[int, float]]] = field(default_factory=dict)  # candidate -> [(source, rps)]
    values: dict[str, float] = field(default_factory=dict)  # objective name -> value at the solution
    solve_seconds: float = 0.0
    gap: float = 0.0
    binding: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, label, deployment)
    builder: ModelBuilder | None = None
    x: np.ndarray | None = None
    parts: dict[str, Solution] = field(default_factory=dict)  # per deployment, when solved decomposed

    def part(self, deployment: str) -> Solution:
        """The solution whose builder/x hold this deployment's columns."""
        return self.parts.get(deployment, self)

    @property
    def ok(self) -> bool:
        return self.status == "optimal"


@contextlib.contextmanager
def _quiet_stdout():  # noqa: ANN202
    """HiGHS prints a banner from C++ on construction, to fd 1: keep it off stdout (JSON goes there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _highs(time_limit: float):  # noqa: ANN202
    import highspy

    with _BANNER_LOCK, _quiet_stdout():  # fd 1 is process-wide: one redirection at a time
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    # presolve costs more than it saves on these models (per-deployment subproblems of the scaling benchmark:
    # 29 s -> 17 s in total, same optima), and reduced-cost fixing after the first incumbent does its work
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    h.setOptionValue("time_limit", float(time_limit))
    # one thread: the parallelism is in the workers solving deployments side by side (5,000 x 50: 11.3 -> 8.7 s
    # of CPU, 6.0 -> 4.3-4.6 s), and HiGHS's thread pool is process-wide (a later solve cannot ask for another size)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    # RINS/RENS sub-MIPs cost more than they find on these models (placement benchmarks: 20-30% faster off)
    h.setOptionValue("mip_heuristic_run_rins", False)
    h.setOptionValue("mip_heuristic_run_rens", False)
    # a small cut pool: the root's cut rounds are most of the time on these models, and their narrowed forms
    # need few cuts (scaling benchmark 5,000 x 50, the deployments one by one: 10.3-11.3 s -> 7.7-9.3 s)
    h.setOptionValue("mip_pool_soft_limit", 50)
    # branch on pseudocosts from the start: strong branching was two thirds of the LP iterations on the slowest
    # deployments (scaling benchmark 5,000 x 50, the deployments one by one: 7.4-8.3 s -> 6.6-7.6 s of HiGHS)
    h.setOptionValue("mip_pscost_minreliable", 0)
    return h, highspy


def _pass(h, hs, b: ModelBuilder, cost: np.ndarray) -> None:  # noqa: ANN001
    lp = hs.HighsLp()
    lp.num_col_ = b.num_cols
    lp.num_row_ = b.num_rows
    lp.col_cost_ = cost
    lp.col_lower_ = np.asarray(b.lower, float)
    lp.col_upper_ = np.asarray(b.upper, float)
    lp.row_lower_ = np.asarray(b.row_lower, float)
    lp.row_upper_ = np.asarray(b.row_upper, float)
    start, index, value = b.matrix()
    lp.a_matrix_.format_ = hs.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.a_matrix_.num_col_ = b.num_cols
    lp.a_matrix_.num_row_ = b.num_rows
    lp.integrality_ = [hs.HighsVarType.kInteger if i else hs.HighsVarType.kContinuous for i in b.integer]
    h.passModel(lp)


def _run(h, hs) -> str:  # noqa: ANN001
    h.run()
    st = h.getModelStatus()
    if st == hs.HighsModelStatus.kOptimal:
        return "optimal"
    if st in (hs.HighsModelStatus.kInfeasible, hs.HighsModelStatus.kUnboundedOrInfeasible):
        return "infeasible"
    if st == hs.HighsModelStatus.kTimeLimit:
        return "time_limit" if h.getInfo().primal_solution_status == 2 else "timeout"
    return "error"


def _carry(b: ModelBuilder, part: Solution, x: np.ndarray) -> np.ndarray:
    """Write a solution's units, traffic and region columns into ``x``, a vector of ``b``'s columns (those of
    candidates ``b`` does not have are left out)."""
    pb, px = part.builder, part.x
    assert pb is not None and px is not None
    for c, col in pb.unit_col.items():
        if c in b.unit_col:
            x[b.unit_col[c]] = px[col]
    for c, pairs in pb.traffic_cols.items():
        full = dict(b.traffic_cols.get(c, ()))
        for s_, col in pairs:
            if s_ in full:
                x[full[s_]] = px[col]
    for key, col in pb.region_col.items():
        if key in b.region_col:
            x[b.region_col[key]] = px[col]
    return x


@dataclass(frozen=True)
class WarmStart:
    """Where one MILP's primary stage starts (the first that applies; none: HiGHS's own search). ``x``: a vector of
    this model's columns (a joint plan assembled from the parts); ``plan``: a solution of the same deployment from
    another model (a short list, an earlier pass), its units, traffic and regions carried over; ``units``: a known
    plan's units ({candidate: units}), HiGHS completes the rest. ``proven``: a solution of this very input
    already proven optimal for the objective, so that only the tie-break stage runs."""

    x: np.ndarray | None = None
    plan: Solution | None = None
    units: dict[Candidate, int] | None = None
    proven: Solution | None = None


COLD = WarmStart()


def _solve_full(
    inp: SolverInput,
    objective: str = "cost",
    *,
    time_limit: float = TIME_LIMIT_S,
    held: Held = NOTHING_HELD,
    tie_break: bool = True,
    warm: WarmStart = COLD,
    strategy: SolveStrategy = DEFAULT,
) -> Solution:
    """One MILP (a deployment alone, or several with their coupling rows), stage by stage, from ``warm``.
    ``strategy``: the tie-break stage's weights and time."""
    t0 = time.perf_counter()
    b = build(inp, held=held)
    if b.num_cols == 0:
        return Solution("infeasible", objective, solve_seconds=time.perf_counter() - t0, builder=b)
    h, hs = _highs(time_limit)
    vecs = {k: b.objective_vector(k) for k in (*OBJECTIVES, "preference")}
    stages: list[np.ndarray] = []
    if np.any(vecs["preference"] != 0):
        stages.append(vecs["preference"])
    stages.append(vecs[objective])
    _pass(h, hs, b, stages[0])
    if len(stages) == 1:
        _start(h, hs, b, warm)
    status, x, gap = "optimal", None, math.inf
    known = warm.proven
    if known is not None and known.ok and known.x is not None and len(known.x) == b.num_cols and len(stages) == 1:
        x, gap = known.x, known.gap  # proven optimal by the caller on this very model: no primary solve
        _hold(h, stages[0], float(stages[0] @ x))
        stages = []
    for i, c in enumerate(stages):
        if i > 0:
            h.changeColsCost(len(c), np.arange(len(c), dtype=np.int32), c)
            if x is not None:
                _warm_start(h, hs, x)
        status = _run(h, hs)
        if status not in ("optimal", "time_limit"):
            break
        x = np.asarray(h.getSolution().col_value)
        gap = h.getInfo().mip_gap  # of this stage (the last one is the chosen objective); read before the model changes
        _hold(h, c, float(c @ x))
    if status in ("optimal", "time_limit") and tie_break and x is not None:
        w = np.zeros(b.num_cols)
        for k, wt in strategy.tie_weights.items():
            if k == objective:
                continue
            v = float(vecs[k] @ x)
            w += wt * vecs[k] / max(abs(v), 1e-9 if v else 1.0)
        spent = time.perf_counter() - t0
        if np.any(w) and status == "optimal" and spent < time_limit:
            # best effort: any solution here keeps the primary optimum (held above), so a short limit is honest
            h.setOptionValue("time_limit", float(min(strategy.tie_break_max_s, max(strategy.tie_break_min_s, spent), time_limit - spent)))
            h.changeColsCost(len(w), np.arange(len(w), dtype=np.int32), w)
            off = _untied_units(b, inp.candidates, x) if objective == "cost" else np.zeros(0, np.int32)
            if len(off):
                h.changeColsBounds(len(off), off, np.zeros(len(off)), np.zeros(len(off)))
            _warm_start(h, hs, x)
            st2 = _run(h, hs)
            if st2 in ("optimal", "time_limit"):
                x = np.asarray(h.getSolution().col_value)
    sol = Solution("optimal" if status == "optimal" else status, objective, builder=b, x=x)
    sol.solve_seconds = time.perf_counter() - t0
    if x is None:
        return sol
    sol.gap = float(gap) if math.isfinite(gap) else (0.0 if status == "optimal" else math.inf)
    _read(sol, b, x, vecs)
    return sol


def _start(h, hs, b: ModelBuilder, warm: WarmStart) -> None:  # noqa: ANN001
    """Hand HiGHS the warm start's plan, the first of its forms that applies."""
    if warm.x is not None and len(warm.x) == b.num_cols:
        _warm_start_partial(h, hs, b, warm.x)
    elif warm.plan is not None and warm.plan.x is not None:
        # a plan of the same deployment from another model (a short list, an earlier pass): units, traffic and
        # regions as they were; HiGHS completes only the policies' columns (milliseconds, where completing
        # from the units alone can take longer than a short share: its own first plan, 3-6x dearer, comes back)
        _warm_start_partial(h, hs, b, _carry(b, warm.plan, np.zeros(b.num_cols)))
    elif warm.units:  # a known plan's units: HiGHS completes the rest, and starts from it
        idx = np.array([b.unit_col[c] for c in warm.units], dtype=np.int32)
        h.setSolution(len(idx), idx, np.array([float(v) for v in warm.units.values()]))


def _untied_units(b: ModelBuilder, candidates: list[Candidate], x: np.ndarray) -> np.ndarray:
    """Unit columns the tie-break stage of a cost solve leaves out: every candidate but the chosen ones and those
    that tie one of them (same deployment and market, the same unit price, at least its capacity), the same
    offering in another region, say. The stage then re-routes traffic and swaps tied units in milliseconds instead of searching the
    whole model again for plans of equal cost (scaling benchmark, 5,000 x 50: +14 s of CPU; no unit ever changed)."""
    chosen = [c for c in candidates if c in b.unit_col and x[b.unit_col[c]] > 0.5]
    ties: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for c in chosen:
        ties.setdefault((c.deployment, c.market), []).append((c.usd_per_unit_hour, c.rps_per_unit))
    off = [b.unit_col[c] for c in candidates if c in b.unit_col and x[b.unit_col[c]] <= 0.5
           and not any(abs(c.usd_per_unit_hour - u) <= 1e-9 * u and c.rps_per_unit >= r * (1 - 1e-9)
                       for u, r in ties.get((c.deployment, c.market), ()))]
    return np.asarray(off, dtype=np.int32)


def _hold(h, c: np.ndarray, value: float) -> None:  # noqa: ANN001
    """Keep an earlier stage's optimum: c·x <= value (1 + tol)."""
    nz = np.nonzero(c)[0]
    if len(nz) == 0:
        return
    h.addRow(-math.inf, value + LEX_TOL * max(1.0, abs(value)), len(nz), nz.astype(np.int32), c[nz])


def _warm_start_partial(h, hs, b: ModelBuilder, x: np.ndarray) -> None:  # noqa: ANN001
    """Hand HiGHS a feasible plan on the units/traffic/region columns; it completes the policy columns."""
    cols = sorted([*b.unit_col.values(), *(c for pairs in b.traffic_cols.values() for _, c in pairs), *b.region_col.values()])
    idx = np.asarray(cols, dtype=np.int32)
    try:
        h.setSolution(len(idx), idx, x[idx])
    except TypeError:  # older highspy: full vectors only
        _warm_start(h, hs, x)


def _warm_start(h, hs, x: np.ndarray) -> None:  # noqa: ANN001
    sol = hs.HighsSolution()
    sol.col_value = list(x)
    sol.value_valid = True
    h.setSolution(sol)


def _read(sol: Solution, b: ModelBuilder, x: np.ndarray, vecs: dict[str, np.ndarray]) -> None:
    for c, col in b.unit_col.items():
        u = int(round(x[col]))
        if u > 0:
            sol.units[c] = u
    for c, pairs in b.traffic_cols.items():
        flows = [(s, float(x[col])) for s, col in pairs if x[col] > 1e-9]
        if flows:
            sol.traffic[c] = flows
    sol.values = {k: float(vecs[k] @ x) for k in OBJECTIVES}
    sol.binding = _binding(b, x)


def _binding(b: ModelBuilder, x: np.ndarray, first_row: int = 0) -> list[tuple[str, str, str | None]]:
    """Rows (other than demand/capacity/links) with no slack at x."""
    out: list[tuple[str, str, str | None]] = []
    start, index, value = b.matrix()
    rows = np.repeat(np.arange(b.num_rows), np.diff(start))
    act = np.zeros(b.num_rows)
    np.add.at(act, rows, value * x[index])
    for i in range(first_row, b.num_rows):
        tag = b.row_tags[i]
        if tag.kind in ("demand", "capacity", "data_link"):
            continue
        lo, hi = b.row_lower[i], b.row_upper[i]
        scale = max(1.0, abs(hi) if math.isfinite(hi) else abs(lo))
        if (math.isfinite(hi) and hi - act[i] <= 1e-6 * scale + 1e-9) or (math.isfinite(lo) and act[i] - lo <= 1e-6 * scale + 1e-9):
            out.append((tag.kind, tag.label, tag.deployment))
    return out
