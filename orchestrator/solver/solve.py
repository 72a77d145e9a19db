"""Solves the placement MILP with HiGHS, lexicographically: an optional policy preference first, then the
chosen objective, then the other objectives (weighted, normalised) as tie-breakers with the earlier
stages' optima held within a relative 1e-6 (for cost: among the chosen instances and those that tie them on
price)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from orchestrator.solver.model import OBJECTIVES, ModelBuilder, build
from orchestrator.solver.problem import DeploymentInput, SolverInput

MIP_REL_GAP = 1e-4
TIME_LIMIT_S = 60.0
PART_RESERVE_S = 0.05  # the least time a deployment solved alone gets (most need a few ms)
ASSEMBLY_S_PER_DEPLOYMENT = 0.004  # model building and merging around the solver, per deployment
LATE_S, LATE_SHARE = 1.0, 0.5  # how far past the time limit deployments still get started: max(1 s, half the limit)
# a deployment with less time than this starts HiGHS from the simple plan of bounds.py: a good plan early when
# time is short; with time to prove optimality the start only slows HiGHS (scaling benchmark: 9.8 s -> 12.7 s)
START_BELOW_S = 5.0
# a deployment with more than SHORT_FROM candidates left after the simple bound first solves over SHORT_LIST of them
# (those with the lowest lower bounds on the FINE_GRID) for a second, tighter upper bound, within SHORT_SHARE of
# its time (scaling benchmark, 5,000 x 50: 40 by the coarse bound -> 25 by the fine one, 34,000 -> 24,000 LP
# iterations and 5.1-5.5 s -> 4.2-4.5 s of HiGHS, the deployments one by one)
SHORT_FROM, SHORT_LIST, SHORT_SHARE = 80, 25, 0.25
FINE_GRID = 1024
LEX_TOL = 1e-6
# weights of the tie-break stage, each objective normalised by its value at the primary optimum
TIE_BREAK_MIN_S, TIE_BREAK_MAX_S = 0.2, 2.0  # time for the tie-break stage: as long as the earlier stages, within these
TIE_WEIGHTS = {"cost": 1.0, "latency": 0.1, "egress": 0.1, "carbon": 0.1}
_BANNER_LOCK = threading.Lock()
# independent subproblems solved side by side: HiGHS releases the GIL while it runs
WORKERS = max(1, min(2, os.cpu_count() or 1))


@dataclass
class Solution:
    status: str  # optimal | time_limit (feasible, gap not closed) | infeasible | timeout (none found in time) | error
    objective: str
    units: dict[int, int] = field(default_factory=dict)  # candidate idx -> units (only > 0)
    traffic: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # candidate idx -> [(source, rps)]
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


def solve(
    inp: SolverInput,
    objective: str = "cost",
    *,
    time_limit: float = TIME_LIMIT_S,
    used_gpus: dict[str, float] | None = None,
    fixed_usd_per_month: float = 0.0,
    tie_break: bool = True,
    decompose: bool = True,
    early: EarlyNarrowing | None = None,
    hard_deadline: float | None = None,
) -> Solution:
    """Solve the placement MILP within ``time_limit`` seconds in all (``early``: the deployments' narrowing, started
    while their inputs were built). Past ``time_limit`` a deployment with no plan yet may still be started, but
    never past ``hard_deadline`` (a time.perf_counter() instant; the caller's own limit).

    Deployments interact only through coupling rows (quotas, inventory, the project budget). With
    ``decompose``, each deployment is first solved alone; when the union of those optima satisfies every
    coupling row it is optimal for the whole problem too (the objective is a sum over deployments, and
    dropping rows can only lower the optimum), so the joint MILP is skipped. Otherwise the joint MILP runs.
    A deployment cut short by the time limit keeps its best plan: the result is then "time_limit", with the
    relative gap of the whole (each part's bound is its value x (1 - its gap); the bounds add up like the values).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}")
    deadline = time.perf_counter() + time_limit
    start: np.ndarray | None = None
    if decompose and inp.deployments:
        sol, alone = _solve_decomposed(inp, objective, deadline, used_gpus, fixed_usd_per_month, tie_break,
                                       early if objective == "cost" else None, hard_deadline)
        if sol is not None:
            return sol
        if alone is not None and len(inp.deployments) > 1:
            seq = _sequential(inp, objective, _left(deadline), used_gpus, fixed_usd_per_month, alone)
            if seq is not None:
                b = build(inp, used_gpus=used_gpus, fixed_usd_per_month=fixed_usd_per_month)
                start = _merge(b, seq)
    return _solve_full(inp, objective, time_limit=_left(deadline), used_gpus=used_gpus, fixed_usd_per_month=fixed_usd_per_month,
                       tie_break=tie_break, start=start)


def _left(deadline: float) -> float:
    """Seconds to the deadline; never below what HiGHS needs to find a first plan."""
    return max(PART_RESERVE_S, deadline - time.perf_counter())


def _solve_decomposed(inp: SolverInput, objective: str, deadline: float, used_gpus: dict[str, float] | None,
                      fixed: float, tie_break: bool, early: EarlyNarrowing | None = None,
                      hard_deadline: float | None = None) -> tuple[Solution | None, dict[str, Solution] | None]:
    """(solution, None) when the per-deployment optima together respect the coupling rows; (None, the
    per-deployment solutions) when they violate one; (None, None) when decomposition does not apply."""
    t0 = time.perf_counter()
    parts: dict[str, Solution] = {}
    weight = {d.name: _difficulty(d) for d in inp.deployments}
    # past the deadline each deployment still gets its least time, so that every one has a plan; but not when
    # that would keep the caller waiting much longer than asked (many deployments, a very short limit)
    give_up = deadline + max(LATE_S, LATE_SHARE * (deadline - t0))
    if hard_deadline is not None:
        give_up = min(give_up, hard_deadline)
    # the parts stop early enough to leave time for the Python around them and for assembling the whole plan
    n = len(inp.deployments)
    deadline -= min(0.15 * max(0.0, deadline - t0), ASSEMBLY_S_PER_DEPLOYMENT * n + 0.1)
    lock = threading.Lock()
    subs: dict[str, Narrowed] = {}

    def run(batch: list[DeploymentInput], share: bool, starts: dict[str, Solution]) -> dict[str, Solution]:
        """Solve each deployment of the batch alone, hardest first. ``share``: each gets a share of the time left
        in proportion to its expected work (what it leaves unused flows on); else all that is left. Either way
        the least time stays kept for each deployment still waiting."""
        waiting = [sum(weight[d.name] for d in batch), len(batch)]

        def alone(d: DeploymentInput) -> Solution:
            with lock:
                if time.perf_counter() >= give_up:  # well past the time: no plan for this one, and no waiting on it
                    return Solution("timeout", objective)
                waiting[1] -= 1
                left = deadline - time.perf_counter() - PART_RESERVE_S * waiting[1] / WORKERS
                limit = max(PART_RESERVE_S, min(left, left * WORKERS * weight[d.name] / max(waiting[0], 1e-9)) if share else left)
                waiting[0] -= weight[d.name]
            t = time.perf_counter()
            if d.name not in subs:  # each deployment is in one worker's hands at a time
                started = early.take(d) if early is not None else None
                subs[d.name] = started or (_narrow(d, limit) if objective == "cost" else Narrowed(d))
            n = subs[d.name]
            limit = max(PART_RESERVE_S, limit - (time.perf_counter() - t))
            if n.proven:  # the short list's plan; a model of it again only for the tie-break stage
                assert n.short is not None and n.short_input is not None
                return _solve_full(n.short_input, objective, time_limit=limit, known=n.short) if tie_break else n.short
            plan = starts.get(d.name, n.short)  # a whole plan (no completing it: that can outlast a short share)
            use = limit < START_BELOW_S or d.name in starts or (n.short is not None and n.short.ok)
            return _solve_full(SolverInput([n.sub], [], [], renumber=False), objective, time_limit=limit,
                               tie_break=tie_break, start_units=n.start if use and plan is None else None,
                               start_from=plan if use else None)

        ordered = sorted(batch, key=lambda d: -weight[d.name])
        if WORKERS > 1 and len(ordered) > 1:
            with ThreadPoolExecutor(WORKERS) as pool:
                return dict(zip([d.name for d in ordered], pool.map(alone, ordered)))
        return {d.name: alone(d) for d in ordered}

    # first every deployment with its share of the time; then those cut short again, from their best plan so
    # far, with all the time left (a generous limit proves them; a tight one leaves nothing for this)
    done = run(list(inp.deployments), True, {})
    again = [d for d in inp.deployments if done[d.name].status == "time_limit"]
    if again and deadline - time.perf_counter() > PART_RESERVE_S * (1 + len(again) / WORKERS):
        retry = run(again, False, {d.name: done[d.name] for d in again})
        for name, part in retry.items():
            if part.status in ("optimal", "time_limit") and (part.ok or part.values[objective] <= done[name].values[objective]):
                done[name] = part
    solved = [done[d.name] for d in inp.deployments]
    for d, part in zip(inp.deployments, solved):
        if part.status in ("infeasible", "timeout"):  # infeasible (or none found) alone: the same together
            return Solution(part.status, objective, solve_seconds=time.perf_counter() - t0), None
        if part.status not in ("optimal", "time_limit"):
            return None, None
        parts[d.name] = part
    # the coupling rows over the candidates the parts' models had (the narrowed ones): the rest are 0 in any case
    narrowed = SolverInput([_in_model(d, parts[d.name]) for d in inp.deployments], inp.limits, inp.global_policies, renumber=False)
    b = build(narrowed, used_gpus=used_gpus, fixed_usd_per_month=fixed, coupling_only=True)
    x = _merge(b, parts)
    lo_row = b.first_coupling_row
    if x is None:
        return None, None
    if not _coupling_ok(b, x):
        return None, parts  # the deployments must be solved together
    sol = Solution("optimal" if all(p.ok for p in parts.values()) else "time_limit", objective, builder=b, x=x, parts=parts)
    sol.solve_seconds = time.perf_counter() - t0
    sol.gap = _sum_gap([(p.values[objective], p.gap) for p in parts.values()])
    for p in parts.values():
        sol.units.update(p.units)
        sol.traffic.update(p.traffic)
        sol.binding.extend(p.binding)
    vecs = {k: b.objective_vector(k) for k in OBJECTIVES}
    sol.values = {k: float(vecs[k] @ x) for k in OBJECTIVES}
    sol.binding.extend(_binding(b, x, first_row=lo_row))
    return sol, None


def _in_model(d: DeploymentInput, part: Solution) -> DeploymentInput:
    """``d`` with only the candidates that have columns in ``part``'s model."""
    cols = part.builder.unit_col if part.builder is not None else {}
    keep = [i for i, c in enumerate(d.candidates) if c.idx in cols]
    return d if len(keep) == len(d.candidates) else d.subset(keep)


@dataclass
class Narrowed:
    """One deployment ready for its solve alone: ``sub`` (its candidates that may be in an optimal plan), a plan's
    units to start from ({} when none), and the short list's input and solution where there was one. ``proven``:
    every candidate of ``sub`` was on the short list and the short list's plan is optimal, so it is optimal for
    the deployment (no second solve)."""

    sub: DeploymentInput
    start: dict[int, int] = field(default_factory=dict)
    short_input: SolverInput | None = None
    short: Solution | None = None

    @property
    def proven(self) -> bool:
        if self.short is None or not self.short.ok or self.short_input is None:
            return False
        listed = {c.idx for c in self.short_input.candidates}
        return all(c.idx in listed for c in self.sub.candidates)


def _narrow(d: DeploymentInput, limit: float) -> Narrowed:
    """``d`` without the candidates that are in no optimal plan of it alone (cost objective). Two upper bounds
    prune by the lower bounds of bounds.py: the simple plan, then, for a deployment with many candidates left,
    the best plan over the SHORT_LIST with the lowest bounds (scaling benchmark, 5,000 x 50: 13,771 candidates
    -> 1,089 in all, 22 of the 29 short lists proving their deployment alone)."""
    from orchestrator.solver.bounds import lower_bounds, prune_by_bound

    sub, start, lb = prune_by_bound(d)
    if lb is None or len(sub.candidates) <= SHORT_FROM:
        return Narrowed(sub, start)
    lb = lower_bounds(sub, FINE_GRID)  # tighter: it ranks the short list better and prunes more
    idx = {c.idx for c in sub.candidates}
    first = set(np.argsort(lb, kind="stable")[:SHORT_LIST].tolist())
    first |= {i for i, c in enumerate(sub.candidates) if c.idx in start}
    listed = SolverInput([sub.subset(sorted(first))], [], [], renumber=False)
    short = _solve_full(listed, "cost", time_limit=max(PART_RESERVE_S, SHORT_SHARE * limit), tie_break=False,
                        start_units={i: n for i, n in start.items() if i in idx} or None)
    if short.status not in ("optimal", "time_limit"):
        return Narrowed(sub, start)
    ub = short.values["cost"] * (1 + 1e-7) + 1e-6
    # bounds over fewer candidates are tighter (the rest of a plan has less to choose from), and still valid: what
    # was pruned is in no optimal plan. So prune, bound again over what is left, until nothing more goes (5,000 x 50:
    # 1,186 -> 1,089 candidates kept, 22 deployments proven instead of 21, 7% fewer LP iterations in the solves)
    while len(keep := np.nonzero(lb <= ub)[0]) < len(sub.candidates):
        sub = sub.subset(keep.tolist())
        lb = lower_bounds(sub, FINE_GRID)
    # the short list's plan is kept (no bound exceeds its cost); the simple plan may not be
    return Narrowed(sub, {}, listed, short)


class EarlyNarrowing:
    """Each deployment's narrowing (``_narrow``: its bounds and its short list, cost objective), started on a worker
    thread as soon as its input is built, while the caller builds the next ones: HiGHS releases the GIL, so the
    short lists run beside candidate generation (scaling benchmark, 5,000 x 50, 2026-12-02: 0.5-1 s less in
    all). Hand ``submit`` to ``build_inputs`` and the object to ``solve``; a context manager (leaving it drops
    what was not taken). The worker takes the hardest deployment waiting first, and ``take`` narrows a deployment
    not yet started itself, so that the hardest ones, whose solves take longest, start soonest. A short list gets
    at most SHORT_SHARE of half of ``time_limit``: what the solve would give one of the hardest deployments (an
    even share starved them: 5,000 x 20 given 5 s was no longer optimal)."""

    def __init__(self, time_limit: float = TIME_LIMIT_S) -> None:
        self._limit = max(PART_RESERVE_S, time_limit / 2)
        # one worker beside the caller, who builds the inputs on the other core: with two, three threads contended
        # for two cores and the GIL (scaling benchmark, 5,000 x 50, with the hardest first: candidates and solve
        # 4.6-4.9 s -> 3.6-4.3 s); the solve's own workers narrow what is still waiting (``take``). With one worker,
        # a longer GIL switch interval no longer helps (20 ms against the default 5 ms: 3.9-4.8 s against 3.8-4.7 s)
        self._pool = ThreadPoolExecutor(max(1, WORKERS - 1))
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._waiting: list[tuple[float, int, DeploymentInput]] = []  # a heap: the hardest first, then the earliest
        self._started: dict[str, tuple[DeploymentInput, Future[Narrowed]]] = {}

    def submit(self, d: DeploymentInput) -> None:
        with self._lock:
            self._started[d.name] = (d, Future())
            heapq.heappush(self._waiting, (-_difficulty(d), next(self._order), d))
        self._pool.submit(self._next)

    def _next(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            d = heapq.heappop(self._waiting)[2]
            future = self._started[d.name][1]
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(_narrow(d, self._limit))
            except BaseException as e:  # noqa: BLE001 - handed to whoever takes it
                future.set_exception(e)

    def take(self, d: DeploymentInput) -> Narrowed | None:
        """``d``'s narrowing: done now if no worker has started it, else waited for; None if it was not submitted
        for this input."""
        with self._lock:
            started = self._started.pop(d.name, None)
            if started is None or started[0] is not d:
                return None
            mine = [w for w in self._waiting if w[2] is d]
            if mine:
                self._waiting.remove(mine[0])
                heapq.heapify(self._waiting)
        return _narrow(d, self._limit) if mine else started[1].result()

    def __enter__(self) -> EarlyNarrowing:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _sum_gap(parts: list[tuple[float, float]]) -> float:
    """The relative gap of a sum of minimisations from each term's (value, relative gap): the terms' lower bounds
    value x (1 - gap) add up to a lower bound of the sum."""
    if any(not math.isfinite(g) for _, g in parts):
        return math.inf
    total = sum(abs(v) for v, _ in parts)
    return sum(abs(v) * g for v, g in parts) / total if total > 0 else 0.0


def _difficulty(d: DeploymentInput) -> float:
    """Expected solve work, roughly: it grows slowly with the candidates and much more with spot spread and
    data-egress region charges (scaling benchmark: a 300-candidate spot deployment with region charges can take
    longer than a 1,000-candidate one)."""
    harder = max([1.0, *(p.difficulty_factor for p in d.policies)])  # spot's spread: x4
    return math.sqrt(len(d.candidates)) * harder * (2.0 if d.data_egress_usd_month else 1.0)


def _merge(b: ModelBuilder, parts: dict[str, Solution]) -> np.ndarray | None:
    """The full model's column vector from per-deployment solutions (None if a part has unknown columns)."""
    x = np.zeros(b.num_cols)
    known = np.zeros(b.num_cols, bool)  # units, traffic and region columns: 0 unless a part sets them
    known[list(b.unit_col.values())] = True
    known[[c for pairs in b.traffic_cols.values() for _, c in pairs]] = True
    known[list(b.region_col.values())] = True
    for part in parts.values():
        _carry(b, part, x)
    start, index, _ = b.matrix()
    lo = b.first_coupling_row
    if lo < b.num_rows and not known[index[start[lo]:start[b.num_rows]]].all():
        return None  # a project-wide policy added its own columns
    return x


def _carry(b: ModelBuilder, part: Solution, x: np.ndarray) -> np.ndarray:
    """Write a solution's units, traffic and region columns into ``x``, a vector of ``b``'s columns (those of
    candidates ``b`` does not have are left out)."""
    pb, px = part.builder, part.x
    assert pb is not None and px is not None
    for idx, col in pb.unit_col.items():
        if idx in b.unit_col:
            x[b.unit_col[idx]] = px[col]
    for idx, pairs in pb.traffic_cols.items():
        full = dict(b.traffic_cols.get(idx, ()))
        for s_, col in pairs:
            if s_ in full:
                x[full[s_]] = px[col]
    for key, col in pb.region_col.items():
        if key in b.region_col:
            x[b.region_col[key]] = px[col]
    return x


def _coupling_ok(b: ModelBuilder, x: np.ndarray) -> bool:
    start, index, value = b.matrix()
    lo = b.first_coupling_row
    if lo >= b.num_rows:
        return True
    seg = slice(start[lo], start[b.num_rows])
    rows = np.repeat(np.arange(lo, b.num_rows), np.diff(start[lo:]))
    act = np.zeros(b.num_rows)
    np.add.at(act, rows, value[seg] * x[index[seg]])
    for i in range(lo, b.num_rows):
        tol = 1e-6 * max(1.0, abs(b.row_upper[i]) if math.isfinite(b.row_upper[i]) else 1.0)
        if act[i] > b.row_upper[i] + tol or act[i] < b.row_lower[i] - tol:
            return False
    return True


def _sequential(inp: SolverInput, objective: str, time_limit: float, used_gpus: dict[str, float] | None,
                fixed: float, alone: dict[str, Solution]) -> dict[str, Solution] | None:
    """A feasible joint plan, greedily: deployments one at a time (largest demand first), each keeping its plan
    solved ``alone`` where that fits what the earlier ones left of the quotas, inventory and budget, and solved
    again within what is left (from that plan) where not. A warm start for the joint MILP, not an optimum; with
    little time left, better than re-solving every deployment in a few milliseconds each."""
    deadline = time.perf_counter() + time_limit
    used = dict(used_gpus or {})
    spent = fixed
    parts: dict[str, Solution] = {}
    for d in sorted(inp.deployments, key=lambda d: -d.required_rps):
        sub = SolverInput([d], inp.limits, inp.global_policies, renumber=False)
        part = alone.get(d.name)
        if part is None or not _fits(sub, part, used, spent):
            part = _solve_full(sub, objective, time_limit=_left(deadline), used_gpus=used, fixed_usd_per_month=spent,
                               tie_break=False, start_from=part)
            if part.status not in ("optimal", "time_limit"):
                return None
        parts[d.name] = part
        for lim in inp.limits:
            used[lim.name] = used.get(lim.name, 0.0) + sum(
                c.gpus_per_unit * part.units.get(c.idx, 0) for c in d.candidates if lim.match(c))
        spent += part.values["cost"]
    return parts


def _fits(sub: SolverInput, part: Solution, used: dict[str, float], spent: float) -> bool:
    """Whether a deployment's plan respects the coupling rows (quotas, inventory, budget) with ``used`` GPUs
    and ``spent`` $ per month already taken."""
    b = build(sub, used_gpus=used, fixed_usd_per_month=spent, coupling_only=True)
    x = _merge(b, {sub.deployments[0].name: part})
    return x is not None and _coupling_ok(b, x)


def _solve_full(
    inp: SolverInput,
    objective: str = "cost",
    *,
    time_limit: float = TIME_LIMIT_S,
    used_gpus: dict[str, float] | None = None,
    fixed_usd_per_month: float = 0.0,
    tie_break: bool = True,
    start: np.ndarray | None = None,
    start_units: dict[int, int] | None = None,
    start_from: Solution | None = None,
    known: Solution | None = None,
) -> Solution:
    """One MILP (a deployment alone, or several with their coupling rows), stage by stage. ``known``: a solution
    of this same input already proven optimal for the objective; only the tie-break stage runs."""
    t0 = time.perf_counter()
    b = build(inp, used_gpus=used_gpus, fixed_usd_per_month=fixed_usd_per_month)
    if b.num_cols == 0:
        return Solution("infeasible", objective, solve_seconds=time.perf_counter() - t0, builder=b)
    h, hs = _highs(time_limit)
    vecs = {k: b.objective_vector(k) for k in (*OBJECTIVES, "preference")}
    stages: list[np.ndarray] = []
    if np.any(vecs["preference"] != 0):
        stages.append(vecs["preference"])
    stages.append(vecs[objective])
    _pass(h, hs, b, stages[0])
    if start is not None and len(start) == b.num_cols and len(stages) == 1:
        _warm_start_partial(h, hs, b, start)
    elif start_from is not None and start_from.x is not None and len(stages) == 1:
        # a plan of the same deployment from another model (a short list, an earlier pass): units, traffic and
        # regions as they were; HiGHS completes only the policies' columns (milliseconds, where completing
        # from the units alone can take longer than a short share: its own first plan, 3-6x dearer, comes back)
        _warm_start_partial(h, hs, b, _carry(b, start_from, np.zeros(b.num_cols)))
    elif start_units and len(stages) == 1:  # a known plan's units: HiGHS completes the rest, and starts from it
        idx = np.array([b.unit_col[i] for i in start_units], dtype=np.int32)
        h.setSolution(len(idx), idx, np.array([float(v) for v in start_units.values()]))
    status, x, gap = "optimal", None, math.inf
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
        for k, wt in TIE_WEIGHTS.items():
            if k == objective:
                continue
            v = float(vecs[k] @ x)
            w += wt * vecs[k] / max(abs(v), 1e-9 if v else 1.0)
        spent = time.perf_counter() - t0
        if np.any(w) and status == "optimal" and spent < time_limit:
            # best effort: any solution here keeps the primary optimum (held above), so a short limit is honest
            h.setOptionValue("time_limit", float(min(TIE_BREAK_MAX_S, max(TIE_BREAK_MIN_S, spent), time_limit - spent)))
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


def _untied_units(b: ModelBuilder, candidates: list, x: np.ndarray) -> np.ndarray:
    """Unit columns the tie-break stage of a cost solve leaves out: every candidate but the chosen ones and those
    that tie one of them (same deployment and market, the same unit price, at least its capacity), the same
    offering in another region, say. The stage then re-routes traffic and swaps tied units in milliseconds instead of searching the
    whole model again for plans of equal cost (scaling benchmark, 5,000 x 50: +14 s of CPU; no unit ever changed)."""
    chosen = [c for c in candidates if c.idx in b.unit_col and x[b.unit_col[c.idx]] > 0.5]
    ties: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for c in chosen:
        ties.setdefault((c.deployment, c.market), []).append((c.usd_per_unit_hour, c.rps_per_unit))
    off = [b.unit_col[c.idx] for c in candidates if c.idx in b.unit_col and x[b.unit_col[c.idx]] <= 0.5
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
    for idx, col in b.unit_col.items():
        u = int(round(x[col]))
        if u > 0:
            sol.units[idx] = u
    for idx, pairs in b.traffic_cols.items():
        flows = [(s, float(x[col])) for s, col in pairs if x[col] > 1e-9]
        if flows:
            sol.traffic[idx] = flows
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
