"""Narrowing a deployment before its solve alone (cost objective): the candidates in no optimal plan of it go, by
the lower bounds of bounds.py and the upper bounds of a simple plan and of a short list's plan; ``EarlyNarrowing``
starts it on a worker thread while the later deployments' inputs are built. The sizes and shares are the
strategy's (strategy.py)."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from orchestrator.solver.problem import Candidate, DeploymentInput, SolverInput
from orchestrator.solver.stages import TIME_LIMIT_S, Solution, WarmStart, _solve_full
from orchestrator.solver.strategy import DEFAULT, SolveStrategy


@dataclass
class Narrowed:
    """One deployment ready for its solve alone: ``sub`` (its candidates that may be in an optimal plan), a plan's
    units to start from ({} when none), and the short list's input and solution where there was one. ``proven``:
    every candidate of ``sub`` was on the short list and the short list's plan is optimal, so it is optimal for
    the deployment (no second solve)."""

    sub: DeploymentInput
    start: dict[Candidate, int] = field(default_factory=dict)
    short_input: SolverInput | None = None
    short: Solution | None = None

    @property
    def proven(self) -> bool:
        if self.short is None or not self.short.ok or self.short_input is None:
            return False
        listed = set(self.short_input.candidates)
        return all(c in listed for c in self.sub.candidates)


def _narrow(d: DeploymentInput, limit: float, strategy: SolveStrategy = DEFAULT) -> Narrowed:
    """``d`` without the candidates that are in no optimal plan of it alone (cost objective). Two upper bounds
    prune by the lower bounds of bounds.py: the simple plan, then, for a deployment with more than
    ``strategy.short_from`` candidates left, the best plan over the ``strategy.short_list`` with the lowest bounds
    (scaling benchmark, 5,000 x 50: 13,771 candidates -> 1,089 in all, 22 of the 29 short lists proving their
    deployment alone)."""
    from orchestrator.solver.bounds import lower_bounds, prune_by_bound

    sub, start, lb = prune_by_bound(d)
    if lb is None or len(sub.candidates) <= strategy.short_from:
        return Narrowed(sub, start)
    lb = lower_bounds(sub, strategy.fine_grid)  # tighter: it ranks the short list better and prunes more
    kept = set(sub.candidates)
    first = set(np.argsort(lb, kind="stable")[:strategy.short_list].tolist())
    first |= {i for i, c in enumerate(sub.candidates) if c in start}
    listed = SolverInput([sub.subset(sorted(first))], [], [])
    short = _solve_full(listed, "cost", time_limit=max(strategy.part_reserve_s, strategy.short_share * limit),
                        tie_break=False, warm=WarmStart(units={c: n for c, n in start.items() if c in kept} or None))
    if short.status not in ("optimal", "time_limit"):
        return Narrowed(sub, start)
    ub = short.values["cost"] * (1 + 1e-7) + 1e-6
    # bounds over fewer candidates are tighter (the rest of a plan has less to choose from), and still valid: what
    # was pruned is in no optimal plan. So prune, bound again over what is left, until nothing more goes (5,000 x 50:
    # 1,186 -> 1,089 candidates kept, 22 deployments proven instead of 21, 7% fewer LP iterations in the solves)
    while len(keep := np.nonzero(lb <= ub)[0]) < len(sub.candidates):
        sub = sub.subset(keep.tolist())
        lb = lower_bounds(sub, strategy.fine_grid)
    # the short list's plan is kept (no bound exceeds its cost); the simple plan may not be
    return Narrowed(sub, {}, listed, short)


class EarlyNarrowing:
    """Each deployment's narrowing (``_narrow``: its bounds and its short list, cost objective), started on a worker
    thread as soon as its input is built, while the caller builds the next ones: HiGHS releases the GIL, so the
    short lists run beside candidate generation (scaling benchmark, 5,000 x 50, 2026-12-02: 0.5-1 s less in
    all). Hand ``submit`` to ``build_inputs`` and the object to ``solve``; a context manager (leaving it drops
    what was not taken). The worker takes the hardest deployment waiting first, and ``take`` narrows a deployment
    not yet started itself, so that the hardest ones, whose solves take longest, start soonest. A short list gets
    at most ``strategy.short_share`` of half of ``time_limit``: what the solve would give one of the hardest
    deployments (an even share starved them: 5,000 x 20 given 5 s was no longer optimal)."""

    def __init__(self, time_limit: float = TIME_LIMIT_S, strategy: SolveStrategy = DEFAULT) -> None:
        self._strategy = strategy
        self._limit = max(strategy.part_reserve_s, time_limit / 2)
        # one worker beside the caller, who builds the inputs on the other core: with two, three threads contended
        # for two cores and the GIL (scaling benchmark, 5,000 x 50, with the hardest first: candidates and solve
        # 4.6-4.9 s -> 3.6-4.3 s); the solve's own workers narrow what is still waiting (``take``). With one worker,
        # a longer GIL switch interval no longer helps (20 ms against the default 5 ms: 3.9-4.8 s against 3.8-4.7 s)
        self._pool = ThreadPoolExecutor(max(1, strategy.workers - 1))
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
                future.set_result(_narrow(d, self._limit, self._strategy))
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
        return _narrow(d, self._limit, self._strategy) if mine else started[1].result()

    def __enter__(self) -> EarlyNarrowing:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _difficulty(d: DeploymentInput) -> float:
    """Expected solve work, roughly: it grows slowly with the candidates and much more with spot spread and
    data-egress region charges (scaling benchmark: a 300-candidate spot deployment with region charges can take
    longer than a 1,000-candidate one)."""
    harder = max([1.0, *(p.difficulty_factor for p in d.policies)])  # spot's spread: x4
    return math.sqrt(len(d.candidates)) * harder * (2.0 if d.data_egress_usd_month else 1.0)
