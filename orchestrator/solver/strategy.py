"""How the placement MILP is solved fast, apart from what it is (``model.py`` and the lexicographic stages): one
frozen ``SolveStrategy`` value holds the decomposition's time budgets, the narrowing and its short lists, the warm
starts, the workers and the plans-B search, each with the measurement behind it. ``DEFAULT`` is what ``orch
place`` uses; a test or a benchmark configures another (``dataclasses.replace(DEFAULT, short_list=4)``) instead of
patching module globals. None of these changes what an optimal plan is; they change how soon one is found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _tie_weights() -> dict[str, float]:
    return {"cost": 1.0, "latency": 0.1, "egress": 0.1, "carbon": 0.1}


@dataclass(frozen=True)
class SolveStrategy:
    # ---- workers ------------------------------------------------------------------------------------------------
    # independent subproblems solved side by side: HiGHS releases the GIL while it runs
    workers: int = field(default_factory=_workers)

    # ---- decomposition and its time budget (solve.py) ------------------------------------------------------------
    # each deployment alone first, the joint MILP only where their plans together break a coupling row (False: the
    # joint MILP at once; the same optimum, found slower)
    decompose: bool = True
    part_reserve_s: float = 0.05  # the least time a deployment solved alone gets (most need a few ms)
    assembly_s_per_deployment: float = 0.004  # model building and merging around the solver, per deployment
    # how far past the time limit deployments still get started: max(late_s, late_share x the limit)
    late_s: float = 1.0
    late_share: float = 0.5

    # ---- warm starts ---------------------------------------------------------------------------------------------
    # a deployment with less time than this starts HiGHS from the simple plan of bounds.py: a good plan early when
    # time is short; with time to prove optimality the start only slows HiGHS (scaling benchmark: 9.8 s -> 12.7 s)
    start_below_s: float = 5.0

    # ---- narrowing and short lists (narrowing.py) ----------------------------------------------------------------
    # a deployment with more than short_from candidates left after the simple bound first solves over short_list of
    # them (those with the lowest lower bounds on the fine_grid) for a second, tighter upper bound, within
    # short_share of its time (scaling benchmark, 5,000 x 50: 40 by the coarse bound -> 25 by the fine one, 34,000 ->
    # 24,000 LP iterations and 5.1-5.5 s -> 4.2-4.5 s of HiGHS, the deployments one by one)
    short_from: int = 80
    short_list: int = 25
    short_share: float = 0.25
    fine_grid: int = 1024

    # ---- the tie-break stage (stages.py) -------------------------------------------------------------------------
    # time for the tie-break stage: as long as the earlier stages took, within these
    tie_break_min_s: float = 0.2
    tie_break_max_s: float = 2.0
    # weights of the tie-break stage, each objective normalised by its value at the primary optimum
    tie_weights: dict[str, float] = field(default_factory=_tie_weights)

    # ---- plans B (placement/fallbacks.py) ------------------------------------------------------------------------
    max_fallbacks: int = 3
    fallback_time_s: float = 10.0  # per fallback solve
    # a deployment whose own optimum took longer than fallback_full_s looks for its fallbacks among its `promising`
    # most promising candidates first (bounds.promising): plans B in a quarter of the time, 0.03% dearer on average
    # than the best plan B over every candidate and 0.20% at worst (benchmarks/fallback_quality.py, 5,000 x 50,
    # 2026-12-02)
    fallback_full_s: float = 0.2
    promising: int = 40

    # ---- the whole placement's time budget (placement/pipeline.py) -----------------------------------------------
    # --time-limit covers the whole placement: finish_s (at most 5 % of the limit) is kept for the explanations and
    # the plan (50 deployments of 5,000 offerings: 0.1-0.2 s); a solve is never given less than min_solve_s
    finish_s: float = 0.3
    min_solve_s: float = 0.1
    solve_share: float = 0.85  # of the time left after candidates: the rest lets a late deployment still find a plan


DEFAULT = SolveStrategy()
