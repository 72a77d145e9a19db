"""Solves the placement MILP fast without changing its optimum: each deployment alone first (the coupling rows
checked on the union of their plans), narrowed beforehand (narrowing.py), the time shared by their expected work,
a greedy warm start for the joint MILP where they must be solved together. The stages of one MILP are stages.py's;
the constants behind these choices are a ``SolveStrategy``'s (strategy.py)."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from orchestrator.solver.model import OBJECTIVES, ModelBuilder, build
from orchestrator.solver.narrowing import EarlyNarrowing, Narrowed, _difficulty, _narrow
from orchestrator.solver.problem import NOTHING_HELD, DeploymentInput, Held, SolverInput
from orchestrator.solver.stages import (
    TIME_LIMIT_S,
    Solution,
    WarmStart,
    _binding,
    _carry,
    _solve_full,
)
from orchestrator.solver.strategy import DEFAULT, SolveStrategy

__all__ = ["TIME_LIMIT_S", "EarlyNarrowing", "Held", "Solution", "SolveStrategy", "WarmStart", "solve"]


def solve(
    inp: SolverInput,
    objective: str = "cost",
    *,
    time_limit: float = TIME_LIMIT_S,
    held: Held = NOTHING_HELD,
    tie_break: bool = True,
    early: EarlyNarrowing | None = None,
    hard_deadline: float | None = None,
    strategy: SolveStrategy = DEFAULT,
) -> Solution:
    """Solve the placement MILP within ``time_limit`` seconds in all (``early``: the deployments' narrowing, started
    while their inputs were built). Past ``time_limit`` a deployment with no plan yet may still be started, but
    never past ``hard_deadline`` (a time.perf_counter() instant; the caller's own limit). ``held``: what
    deployments outside the problem hold (their GPUs count against the limits, their cost against the budget).
    ``strategy``: how (the decomposition, the workers, the narrowing, the warm starts, the time budgets); never
    what the optimum is.

    Deployments interact only through coupling rows (quotas, inventory, the project budget). With
    ``strategy.decompose``, each deployment is first solved alone; when the union of those optima satisfies every
    coupling row it is optimal for the whole problem too (the objective is a sum over deployments, and
    dropping rows can only lower the optimum), so the joint MILP is skipped. Otherwise the joint MILP runs.
    A deployment cut short by the time limit keeps its best plan: the result is then "time_limit", with the
    relative gap of the whole (each part's bound is its value x (1 - its gap); the bounds add up like the values).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}")
    deadline = time.perf_counter() + time_limit
    start: np.ndarray | None = None
    if strategy.decompose and inp.deployments:
        sol, alone = _solve_decomposed(inp, objective, (deadline, hard_deadline), held, tie_break,
                                       early if objective == "cost" else None, strategy)
        if sol is not None:
            return sol
        if alone is not None and len(inp.deployments) > 1:
            seq = _sequential(inp, objective, _left(deadline, strategy), held, alone, strategy)
            if seq is not None:
                b = build(inp, held=held)
                start = _merge(b, seq)
    return _solve_full(inp, objective, time_limit=_left(deadline, strategy), held=held, tie_break=tie_break,
                       warm=WarmStart(x=start), strategy=strategy)


def _left(deadline: float, strategy: SolveStrategy) -> float:
    """Seconds to the deadline; never below what HiGHS needs to find a first plan."""
    return max(strategy.part_reserve_s, deadline - time.perf_counter())


def _solve_decomposed(inp: SolverInput, objective: str, deadlines: tuple[float, float | None], held: Held,
                      tie_break: bool, early: EarlyNarrowing | None,
                      strategy: SolveStrategy) -> tuple[Solution | None, dict[str, Solution] | None]:
    """(solution, None) when the per-deployment optima together respect the coupling rows; (None, the
    per-deployment solutions) when they violate one; (None, None) when decomposition does not apply.
    ``deadlines``: the solve's own, and the caller's hard one (or None)."""
    t0 = time.perf_counter()
    deadline, hard_deadline = deadlines
    reserve, workers = strategy.part_reserve_s, strategy.workers
    parts: dict[str, Solution] = {}
    weight = {d.name: _difficulty(d) for d in inp.deployments}
    # past the deadline each deployment still gets its least time, so that every one has a plan; but not when
    # that would keep the caller waiting much longer than asked (many deployments, a very short limit)
    give_up = deadline + max(strategy.late_s, strategy.late_share * (deadline - t0))
    if hard_deadline is not None:
        give_up = min(give_up, hard_deadline)
    # the parts stop early enough to leave time for the Python around them and for assembling the whole plan
    n = len(inp.deployments)
    deadline -= min(0.15 * max(0.0, deadline - t0), strategy.assembly_s_per_deployment * n + 0.1)
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
                left = deadline - time.perf_counter() - reserve * waiting[1] / workers
                limit = max(reserve, min(left, left * workers * weight[d.name] / max(waiting[0], 1e-9)) if share else left)
                waiting[0] -= weight[d.name]
            t = time.perf_counter()
            if d.name not in subs:  # each deployment is in one worker's hands at a time
                started = early.take(d) if early is not None else None
                subs[d.name] = started or (_narrow(d, limit, strategy) if objective == "cost" else Narrowed(d))
            n = subs[d.name]
            limit = max(reserve, limit - (time.perf_counter() - t))
            if n.proven:  # the short list's plan; a model of it again only for the tie-break stage
                assert n.short is not None and n.short_input is not None
                return (_solve_full(n.short_input, objective, time_limit=limit, warm=WarmStart(proven=n.short),
                                    strategy=strategy) if tie_break else n.short)
            plan = starts.get(d.name, n.short)  # a whole plan (no completing it: that can outlast a short share)
            use = limit < strategy.start_below_s or d.name in starts or (n.short is not None and n.short.ok)
            warm = WarmStart(plan=plan if use else None, units=n.start if use and plan is None else None)
            return _solve_full(SolverInput([n.sub], [], []), objective, time_limit=limit,
                               tie_break=tie_break, warm=warm, strategy=strategy)

        ordered = sorted(batch, key=lambda d: -weight[d.name])
        if workers > 1 and len(ordered) > 1:
            with ThreadPoolExecutor(workers) as pool:
                return dict(zip([d.name for d in ordered], pool.map(alone, ordered)))
        return {d.name: alone(d) for d in ordered}

    # first every deployment with its share of the time; then those cut short again, from their best plan so
    # far, with all the time left (a generous limit proves them; a tight one leaves nothing for this)
    done = run(list(inp.deployments), True, {})
    again = [d for d in inp.deployments if done[d.name].status == "time_limit"]
    if again and deadline - time.perf_counter() > reserve * (1 + len(again) / workers):
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
    return _assembled(inp, objective, parts, held, t0)


def _assembled(inp: SolverInput, objective: str, parts: dict[str, Solution], held: Held,
               t0: float) -> tuple[Solution | None, dict[str, Solution] | None]:
    """The whole plan from each deployment's plan alone, as ``_solve_decomposed`` returns it: (solution, None) when
    together they respect the coupling rows, (None, ``parts``) when not, (None, None) when they cannot be merged."""
    # the coupling rows over the candidates the parts' models had (the narrowed ones): the rest are 0 in any case
    narrowed = SolverInput([_in_model(d, parts[d.name]) for d in inp.deployments], inp.limits, inp.global_policies)
    b = build(narrowed, held=held, coupling_only=True)
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
    keep = [i for i, c in enumerate(d.candidates) if c in cols]
    return d if len(keep) == len(d.candidates) else d.subset(keep)


def _sum_gap(parts: list[tuple[float, float]]) -> float:
    """The relative gap of a sum of minimisations from each term's (value, relative gap): the terms' lower bounds
    value x (1 - gap) add up to a lower bound of the sum."""
    if any(not math.isfinite(g) for _, g in parts):
        return math.inf
    total = sum(abs(v) for v, _ in parts)
    return sum(abs(v) * g for v, g in parts) / total if total > 0 else 0.0


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


def _sequential(inp: SolverInput, objective: str, time_limit: float, held: Held, alone: dict[str, Solution],
                strategy: SolveStrategy = DEFAULT) -> dict[str, Solution] | None:
    """A feasible joint plan, greedily: deployments one at a time (largest demand first), each keeping its plan
    solved ``alone`` where that fits what the earlier ones left of the quotas, inventory and budget, and solved
    again within what is left (from that plan) where not. A warm start for the joint MILP, not an optimum; with
    little time left, better than re-solving every deployment in a few milliseconds each."""
    deadline = time.perf_counter() + time_limit
    used = dict(held.used_gpus)
    spent = held.usd_per_month
    parts: dict[str, Solution] = {}
    for d in sorted(inp.deployments, key=lambda d: -d.required_rps):
        sub = SolverInput([d], inp.limits, inp.global_policies)
        part = alone.get(d.name)
        now = Held(dict(used), spent)  # what the earlier ones took
        if part is None or not _fits(sub, part, now):
            part = _solve_full(sub, objective, time_limit=_left(deadline, strategy), held=now, tie_break=False,
                               warm=WarmStart(plan=part), strategy=strategy)
            if part.status not in ("optimal", "time_limit"):
                return None
        parts[d.name] = part
        for lim in inp.limits:
            used[lim.name] = used.get(lim.name, 0.0) + sum(
                c.gpus_per_unit * part.units.get(c, 0) for c in d.candidates if lim.match(c))
        spent += part.values["cost"]
    return parts


def _fits(sub: SolverInput, part: Solution, held: Held) -> bool:
    """Whether a deployment's plan respects the coupling rows (quotas, inventory, budget) with what ``held``
    already takes."""
    b = build(sub, held=held, coupling_only=True)
    x = _merge(b, {sub.deployments[0].name: part})
    return x is not None and _coupling_ok(b, x)
