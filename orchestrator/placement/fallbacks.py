"""Plans B: per deployment, the best re-placements with each chosen offering excluded, the other deployments' GPUs
and cost held fixed, ranked by the objective (for a deployment whose optimum was slow to prove, searched first
among its most promising candidates)."""

from __future__ import annotations

import time

from orchestrator.placement.explain import DeploymentResult, result_for
from orchestrator.placement.inputs import Inputs
from orchestrator.plan import ReplicaGroup
from orchestrator.solver.problem import DeploymentInput, Held, SolverInput
from orchestrator.solver.solve import Solution, solve
from orchestrator.solver.strategy import DEFAULT, SolveStrategy


def _kind(groups: list[ReplicaGroup]) -> frozenset[tuple[str, str, str, int]]:
    return frozenset((g.gpu, g.quantization, g.market, g.gpus_per_replica) for g in groups)


def runner_up(res: DeploymentResult, fallbacks: list[tuple[list[ReplicaGroup], DeploymentResult]]
               ) -> tuple[list[ReplicaGroup], DeploymentResult] | None:
    """The best plan B that is a different choice: not the same hardware at the same price in another place (a
    tie, or a permutation of the chosen groups), which apply keeps as a fallback but says nothing to a reader."""
    for groups, r in fallbacks:
        tie = abs(r.usd_per_hour - res.usd_per_hour) <= 0.005 * max(res.usd_per_hour, 1e-9)
        if not (tie and _kind(groups) == _kind(res.groups)):
            return groups, r
    return None


def all_fallbacks(inp: Inputs, sol: Solution, results: dict[str, DeploymentResult], objective: str, deadline: float,
                   short: list[str], strategy: SolveStrategy = DEFAULT,
                   ) -> dict[str, tuple[list[tuple[list[ReplicaGroup], DeploymentResult]], int | None]]:
    """Every deployment's fallbacks, ``strategy.workers`` deployments at a time (HiGHS releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    deps = inp.problem.deployments
    with ThreadPoolExecutor(max(1, min(strategy.workers, len(deps)))) as pool:
        futures = {d.name: pool.submit(_fallbacks, inp, sol, results, d, objective, deadline, short, strategy)
                   for d in deps}
    return {name: f.result() for name, f in futures.items()}


def _fallbacks(inp: Inputs, sol: Solution, results: dict[str, DeploymentResult], d: DeploymentInput, objective: str,
               deadline: float, short: list[str], strategy: SolveStrategy = DEFAULT,
               ) -> tuple[list[tuple[list[ReplicaGroup], DeploymentResult]], int | None]:
    """Best re-placements of d with each chosen offering excluded, others held fixed; ranked by objective. A
    deployment whose own optimum was slow to prove searches its most promising candidates first (how many the
    runner-up was found among is returned; None: all of them). Each solve gets at most ``strategy.fallback_time_s``, all of them
    together what is left to ``deadline``; a deployment the deadline cuts short is added to ``short``."""
    from orchestrator.solver.bounds import promising

    if deadline - time.perf_counter() < 0.1:
        short.append(d.name)
        return [], None
    problem = inp.problem
    others = [(c, u) for n, r in results.items() if n != d.name for c, u in r.chosen]  # what the others run
    used = {lim.name: float(sum(c.gpus_per_unit * u for c, u in others if lim.match(c))) for lim in problem.limits}
    held = Held(used, sum(r.usd_per_month for n, r in results.items() if n != d.name))
    chosen_keys = {(c.region, c.instance_type, c.market) for c, _ in results[d.name].chosen}
    narrow = sol.part(d.name).solve_seconds >= strategy.fallback_full_s and len(d.candidates) > strategy.promising
    regions = {c.region for c, _ in results[d.name].chosen}
    seen: set[tuple] = set()
    found: list[tuple[float, list[ReplicaGroup], DeploymentResult, int | None]] = []  # (value, plan, result, searched)
    listing_s = 0.0  # how long the last short list took: one is not started without that much time left
    for key in sorted(chosen_keys):
        left = deadline - time.perf_counter()
        if left < 0.1 + listing_s:
            short.append(d.name)
            break
        without = d.subset([i for i, c in enumerate(d.candidates) if (c.region, c.instance_type, c.market) != key])
        tries = [without]
        if narrow:
            t = time.perf_counter()
            tries = [without.subset(promising(without, strategy.promising, regions)), without]
            listing_s = time.perf_counter() - t
            if deadline - time.perf_counter() < 0.1:
                short.append(d.name)
                break
        for sub_d in tries:  # the short list first; every candidate if it has no plan
            sub = SolverInput([sub_d], problem.limits, problem.global_policies)
            s = solve(sub, objective, held=held, tie_break=False, strategy=strategy,
                      time_limit=min(strategy.fallback_time_s, max(0.1, deadline - time.perf_counter())))
            if s.status != "infeasible":
                break
        if s.status not in ("optimal", "time_limit"):  # a fallback need not be proven best: it is a plan B
            continue
        r = result_for(s, sub_d)
        sig = tuple(sorted((g.region, g.instance_type, g.market, g.count, g.quantization) for g in r.groups))
        if sig in seen:
            continue
        seen.add(sig)
        found.append((s.values[objective], r.groups, r, None if sub_d is without else len(sub_d.candidates)))
    found.sort(key=lambda t: t[0])
    return [(g, r) for _, g, r, _ in found[:strategy.max_fallbacks]], (found[0][3] if found else None)
