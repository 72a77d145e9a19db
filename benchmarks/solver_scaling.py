"""Solver scaling: synthetic catalogs (1,000 / 5,000 / 20,000 offerings) x (5 / 20 / 50 deployments).

    .venv/bin/python benchmarks/solver_scaling.py            # the full grid, one subprocess per cell
    .venv/bin/python benchmarks/solver_scaling.py --quick    # 1,000 and 5,000 offerings only

Each cell runs in its own process so peak RSS (resource.getrusage) is that cell's alone. Seeded: the real
GPU table and model registry, random regions and prices (tests/support/synthetic.py). Reported:
candidate generation time (performance model + filters + dominance pruning), MILP size, time to a proven
optimum (mip_rel_gap 1e-4, primary objective, no tie-break stage), status, gap, and peak memory; then the same
solve given what is left of 5 s after candidate generation (``orch place --time-limit``): its total time,
status, how far its plan is above the proven optimum, and the gap HiGHS could still prove.
Target: 5,000 offerings x 50 deployments < 5 s, < 2 GB.

Measured 2026-12-02, sixth session, on the shared 2-core dev box (seed 7; every cell a proven optimum, gap
<= 1e-4). Candidate generation and the solve overlap (EarlyNarrowing, as `orch place` runs them): candidates is the
time to build the inputs, with the deployments' bounds and short lists running beside it on one worker thread;
solve_s is the rest. The two add up to the time to a proven optimum. "Given 5 s" builds the inputs again, on a new
catalog object, and solves within what is left of 5 s.
    offerings x deployments  candidates  candidates + solve_s   peak RSS   given 5 s in all            place_s
    1,000 x 5                       436  0.19 + 0.25             75 MB      0.3 s, optimal              1.0
    1,000 x 20                    1,906  0.41 + 0.91             90 MB      1.2 s, optimal              4.5
    1,000 x 50                    4,499  0.97 + 1.71            108 MB      2.8 s, optimal              9.9
    5,000 x 5                     1,340  0.37 + 0.21            114 MB      0.5 s, optimal              1.5
    5,000 x 20                    8,068  1.02 + 0.91            147 MB      1.7 s, optimal              7.3
    5,000 x 50                   13,771  2.34 + 2.25 = 4.59    163 MB      4.9 s, the optimum, gap 0.02%  18.9   (target: < 5 s)
    20,000 x 5                    3,122  1.57 + 0.56            202 MB      2.1 s, optimal              4.2
    20,000 x 20                  24,889  4.55 + 5.51            345 MB      4.7 s, 0.55% above, gap 5.7%  19.1
    20,000 x 50                  41,086  9.37 + 11.6            455 MB      9.9 s, 0.37% above, gap 11%  49.8
(one grid run). Eight more runs of the 5,000 x 50 cell the same hour: 3.85, 4.05, 4.05, 4.28, 4.36, 4.44, 4.48,
4.79 s; given 5 s, four optimal and four with the optimum at a gap of 0.007-0.02%; place_s 16.9-18.4; peak
163-173 MB.
Changes of the sixth session (5,000 x 50):
- Candidate generation 2.2-2.3 s -> 1.2-1.4 s on its own (the same candidates, rejections and examples on 240 deployments of
  three catalogs under three objectives): the catalog's offerings are prepared once per build_inputs
  (candidates.OfferingTable: the cheapest offering per region and GPU shape, codes, groups and prices as arrays)
  instead of once per deployment; rejections are counted per provider with one bincount (the per-region counts,
  never read, are gone); the rows are assembled in one pass at the end.
- EarlyNarrowing runs on one worker beside candidate generation instead of two (three threads contended for two
  cores and the GIL: 4.6-4.9 s -> 3.6-4.3 s in alternating runs), takes the hardest deployment waiting first, and
  the solve narrows a deployment itself when no worker has started it. The GIL switch interval is left alone:
  with one worker, 20 ms no longer helped (3.9-4.8 s against 3.8-4.7 s at the default 5 ms).
- The coupling check after the per-deployment solves is built over the narrowed candidates only (0.17 s -> about
  0.02 s, at the very end, when one core is idle).
- After the short list's solve, prune, bound again over what is left and prune again until nothing more goes
  (bounds over fewer candidates are tighter): 1,186 -> 1,089 candidates kept, 22 deployments proven by their
  short list instead of 21, 7% fewer LP iterations in the solves.
- Bounds: the rest of a plan once per distinct (knapsack row, needs) instead of per candidate, and a candidate's
  unit figures computed when it is created (functools.cached_property takes a lock on first use in Python 3.11):
  the same bounds on 160 deployments at two grids in 1.41 s instead of 2.02 s.
All together, in alternating runs the same hour against the fifth session's code (f76437f): 5.4-6.3 s -> 4.0-4.7 s
(CPU 8.7-9.5 s -> 7.0-7.8 s).
Where it goes now: about 7 s of CPU on two cores (candidates 1.3 s, bounds 1.2 s, HiGHS 3.9 s: the short lists 1.4 s
and the main solves 2.5 s, d46 alone 1.0 s); the threads finish within 0.2 s of each other, so the time follows
the CPU, and this box's speed (which drifts by 25% within an hour) decides whether it is under 5 s.
Tried in the sixth session without gain: building the deployments hardest first (by spot, data egress and user
regions, from the file) and ordering the solves by what narrowing left (d46's solve then starts no earlier: 4.31
against 4.14 s, 4.33 against 4.39 s); shares of the time limit by the narrowed difficulty (given 5 s, the
deployments not yet narrowed took the shares and d46 got 0.05 s); iterating the coarse bound against the simple
plan (the same short lists, more time); knapsacks in blocks of similar width or smallest unit (within the noise);
short lists of 10 / 15 / 20 / 30 (25 stays best: 15,000 LP iterations in the main solves against 16,000-30,000);
ranking the short list by a 256 or 512 grid, or by the fine bound over the 75 lowest coarse ones (worse short
lists: 20,000-26,000 LP iterations); HiGHS without feasibility jump, root reduced-cost heuristic or restarts
(within the noise).
Changes of the fifth session (5,000 x 50; the deployments one by one on one worker, HiGHS's time: 7.4-8.3 s ->
5.1-5.9 s):
- Short lists of 25 ranked by the fine-grid bound (1/1,024 of the demand), not 40 by the coarse one: 34,000 ->
  24,000 LP iterations, 1,452 -> 1,186 candidates kept, 21 of the 29 short lists prove their deployment
  (FINE_GRID 256 / 512 / 2,048 / 4,096: 41,000 / 36,000 / 24,000 / 25,000 LP iterations; 2,048 saves HiGHS time
  but its bounds cost as much Python, which now runs beside candidate generation).
- Tighter bounds (bounds.py): a spot unit of an optimal plan serves traffic (else dropping it is cheaper), so with a
  spread its rest holds a spot unit of its own; each user region's share is bought from units that answer it; and
  the user regions that c's region and the free ones leave unanswered pay the cheapest set of paid regions that
  answers them (a set cover over user regions). Candidates kept: 1,625 -> 1,452; d0 107 -> 59, d7 178 -> 129.
- A deployment whose kept candidates were all on its short list takes the short list's plan: it is optimal, so
  no second solve; only the tie-break stage runs, on the same model (``known``).
- HiGHS branches on pseudocosts from the start (mip_pscost_minreliable 0): strong branching was two thirds of the
  LP iterations of the slowest deployment (d46: 1.9 s -> 1.0 s).
- The knapsack bounds work on each group's frontier (no item with fewer steps for as much money): same bounds,
  0.60 -> 0.36 s.
- EarlyNarrowing: each deployment's bounds and short list start on two worker threads as soon as its candidates
  are built; HiGHS releases the GIL, so they run beside candidate generation. While it runs the GIL changes
  hands every 20 ms instead of 5 ms (4.8-5.5 s -> 4.0-4.9 s in one process: the hand-offs cost about 1 s of CPU).
Where it goes now: about 8 s of CPU on two cores (candidates 2 s, bounds and model building 1.5 s, HiGHS 5 s); while
the inputs are built both cores are busy, so starting the main solves early too would not help. d46 (three user
regions, no free region, data egress of $100-174 against $13,751 a month, 138 candidates within 2.6% by the
bounds) still takes 1 s to prove.
Tried in the fifth session without gain: solving each deployment too (not only narrowing it) while the inputs
are built (4.8-5.4 s against 5.1-5.5 s, within the noise: both cores are already busy then); two short lists
(20, then 40 over what the first leaves: proves more of them alone but costs as much); short lists of 25, 30 or
50 ranked by the coarse bound; a 1e-3 or 1e-2 gap for the short lists (noise-level); a short list from 40
candidates up instead of 80; a bound that charges every further paid region its data egress
(a min-plus convolution over regions: d46 138 -> 135 candidates for 0.25 s per deployment at the fine grid);
HiGHS presolve, mip_lp_age_limit, cut pool 10/20/100, heuristic effort, symmetry detection, feasibility jump,
restarts (all within the noise or slower).
Measured 2026-12-02 (fourth session) on the shared 2-core dev box (seed 7; every cell a proven optimum, gap
<= 1e-4; timings vary by 10-30% from run to run). The box ran about 1.6x slower that day than on 2026-11-23, so
each cell also shows the third session's code (c45427d) measured the same day. place_s: `orch place` end to end
with its defaults (candidates, solve with the tie-break stage, explanations, fallbacks).
    offerings x deployments  candidates  candidates + solve_s (c45427d)   peak RSS (c45427d)  given 5 s in all (c45427d)              place_s (c45427d)
    1,000 x 5                       436  0.16 + 0.29   (0.19 + 1.60)       71 MB   (137)      0.5 s, optimal (1.4 s, optimal)          1.3 (3.4)
    1,000 x 20                    1,906  0.39 + 1.01   (0.50 + 2.51)       88 MB   (214)      1.4 s, optimal (3.8 s, optimal)          5.8 (9.7)
    1,000 x 50                    4,499  0.7-1.0 + 2.2-4.0 (1.30 + 4.84)  107-144 MB (204)    optimal in 3.3 s; once 145% above (the same)  12-13 (22.2)
    5,000 x 5                     1,340  0.35 + 0.85   (0.48 + 3.83)       99 MB   (251)      1.0 s, optimal (3.1% above)              2.2 (7.1)
    5,000 x 20                    8,068  1.19 + 1.69   (1.53 + 10.5)      135 MB   (445)      2.7 s, optimal (6.0% above)              9.1 (20.0)
    5,000 x 50                   13,771  2.1-2.2 + 4.2-4.3 (2.73 + 16.3)  194-199 MB (402)    2.6-3.4% above, gap 4.7-5.0% (12.4%, 27.9%)  22-25 (39.4)  <- target missed
    20,000 x 5                    3,122  1.57 + 0.74   (1.52 + 8.53)      170 MB   (514)      2.3 s, optimal (3.1% above)              5.5 (13.5)
    20,000 x 20                  24,889  4.90 + 7.19   (6.04 + 47.8)      347 MB   (698)      no plan: candidates take 5 s (the same) 21.4 (69.1)
    20,000 x 50                  41,086  9.46 + 19.8   (12.6 + 118)       452 MB   (961)      no plan (the same)                      71.8 (138, time limit)
1,000 x 50 given 5 s, in the first grid run: the solve got 4 s and was cut short; the per-deployment plans it had
then broke a GPU quota, and the joint MILP that follows had no time left: its plan was the greedy warm start, whose
deployments had been re-solved in milliseconds each (145% above, gap 100%). The previous code did the same. The
warm start now keeps each deployment's own plan where it still fits, and starts carry their traffic; reruns given
1-3 s stayed within 3.1%, and the cell's rerun was optimal in 3.3 s. Rows with ranges were rerun after those
changes.
Where it goes now (5,000 x 50, the deployments one by one, about 8 s in all): half in the solves over the short
lists (0.1-0.6 s each, for 42 deployments), half in the main solves; one deployment (d46: three user regions,
data egress of $40-174 per region, 138 candidates within 2.6% of its optimum by the bounds) takes 1.5-2 s, and
candidate generation 2 s on one core.
Changes of the fourth session (5,000 x 50 unless said; the same day, c45427d -> now):
- Per-candidate lower bounds (orchestrator/solver/bounds.py ``lower_bounds``): one unit of the candidate, its
  region's data egress, and the cheapest rest of a plan in whole units (a knapsack over the demand in 1/128 steps,
  capacities rounded up so it stays a bound) with the on-demand floor, at least one spot unit when spot is used,
  the spot spread (the data egress of the cheapest further spot regions), one more region's data egress unless
  the rest fits in the candidate's region and the free ones and those answer every user region, and the response
  egress every plan pays. About 10 ms per deployment. Each deployment with more than 80 candidates left after the
  simple plan's bound is solved over the 40 with the lowest bounds first; the candidates whose bound is above that
  plan are in no optimal plan and go, and a 1/1,024-step bound prunes the rest once more (5,000 x 50: 13,771
  candidates -> 8,166 after the simple plan's bound -> 1,625; the slowest deployment 1,302 -> 27). Solve 16.3 s
  -> 6.4-8.6 s.
- HiGHS with a cut pool of 50 (mip_pool_soft_limit): the root's cut rounds were most of the time (the deployments
  one by one: 10.3-11.3 s -> 7.7-9.3 s).
- HiGHS on one thread: two workers already share the two cores (11.3 -> 8.7 s of CPU, 6.0 -> 4.3-4.6 s). HiGHS's
  thread pool is process-wide, so the count is the same for every solve.
- Candidate generation: np.concatenate for np.r_ and integer codes without a sort per column (2.5-2.7 s -> 1.9-2.2 s).
- Given little time: starts carry their traffic and regions (HiGHS completing a start from units alone could run
  out of a short share and return its own first plan, 3-6x dearer), and the joint MILP's greedy warm start keeps
  each deployment's own plan where it still fits the quotas and budget.
Tried in the fourth session without gain: a bound with every region's data egress in a knapsack over regions (it
drops the floor and the spread, and prunes nothing more); cheaper short lists (25 candidates, gap 1e-2, a 0.1 s
cap): weaker upper bounds that cost more in the main solve; pruning during candidate generation on a second thread
(the GIL: 7.5 -> 6.8-7.6 s); a 1% gap for plans B (28.8 vs 31.6 s for `orch place`, within the noise).
Changes of the second session and what they did (5,000 x 50):
- Dominance pruning made exact. The old rule (B no dearer per req/s and per unit) could drop a bigger unit
  that rounds better (10 req/s: one $10 unit beats two $5.90 units of 6 req/s); now k = ceil(cap A / cap B)
  B units must cost no more than one A unit. Candidates 8,406 -> 13,771; with the changes below the solve is
  about 2x slower at 5,000 x 20 (3.7 s -> 7.3 s) and about the same at 5,000 x 50, and the optima are exact.
- The spot on-demand floor counted headroom twice (and was 20% too strict); "spot used" is now defined by
  spot traffic (always <= demand) instead of a cap on spot capacity. Plans got cheaper: 5,000 x 50 from
  $1,106,122 to $1,069,173/month.
- Capacity, cover and floor coefficients capped at what one unit can serve: exact, tighter LP.
- Candidate generation 2.9-4.6 s -> 1.4-1.6 s: cross-region pruning on arrays before any Candidate object is
  built, region figures (RTT, egress) once per region, dominance checks in padded blocks, cheapest offering
  per shape remembered per catalog, policy filters asked once per combination of the fields they read;
  cross-region dominance in blocks against the dominators that can afford to win (20,000 x 50: 8 s -> 6 s).
- One deadline for the whole solve (orch place --time-limit): each deployment solved alone gets a share of
  the time left in proportion to its expected work, hardest first, starting from the simple plan of
  bounds.py when its share is short; those cut short get a second pass with whatever time is left.
Changes of the third session: the plan assembled from the per-deployment solutions is checked in a model of
the coupling rows only (0.5 s -> 0.1 s at 5,000 x 50); its gap weighs each part's gap by its value (given 5 s:
reported 35% -> 5%, still a bound); a deployment whose turn comes after the deadline is not attempted
(20,000 x 50 given 0.2 s: "timeout" after about 1 s instead of 5 s). End to end, `orch place` got 2-4x faster:
the cost tie-break stage looks only at the chosen instances and those that tie them on price (it never changed a
unit in this benchmark, only the routing: 14 s of CPU -> 0.6 s at 5,000 x 50), and the fallbacks run two
deployments at a time, those of a deployment slow to prove among its most promising candidates (5,000 x 50:
81 s with 24 deployments' fallbacks cut short -> 25-26 s; 5,000 x 20: 58 s -> 11 s; 1,000 x 20: 14 s -> 8 s).
Where the solve time went before the fourth session: the joint model is never solved here (the per-deployment
optima satisfy every quota); about 10 of the 50 deployments (spot allowed: floor + spread over two regions, and data-egress fixed
charges of $1,600-2,400/month to ~100 regions) take 1-3 s each in HiGHS: the root LP is 10-20% below the
optimum (fractional units of large instances, fractional region charges), and HiGHS closes it with cut rounds
that take seconds on these ~2,000-row models, even when handed the optimum as a start.
Tried without gain (same optima, timings on the 10 hard deployments): HiGHS options (presolve, symmetry, cut
pool limits and ages, LP age, heuristic effort 0 with a perfect incumbent, reliability branching, restarts,
separation at nodes off, 1 vs 2 threads); knapsack-cover cost rows (the exact cheapest cover of the floor and
of the demand as a lower bound on unit spend); traffic per (region, market, reach) group instead of per
candidate (-7%); one data-egress row per region instead of per candidate (slower); dropping the per-user-region
data-egress rows (2x slower); spot spread as a cap on each region's share of spot capacity or of spot traffic
(linear, no binaries, but 3-6x slower); solving with "spot used" fixed both ways; regions outside a working
set merged into one relaxed "elsewhere" region and added back on demand (10 iterations, slower); enumerating
the paid regions one at a time with LP bounds (the bounds prune too little); reduced-cost fixing from the LP
with the optimum as the bound (keeps 50-80% of the candidates); largest-first scheduling of the two workers.
Tried in the third session (the 14 hardest deployments of 5,000 x 50, 18.5 s of HiGHS in all):
- The integer core alone (units, cover, floor, region charges, spread; no traffic columns) takes HiGHS 0.7-2.2 s per
  deployment, as long as the whole model: the time goes to the knapsack-plus-fixed-charge structure, not to routing.
- A dynamic program over regions (demand on a grid of 1/128; on-demand floor, total, spot domains, region charges)
  bounds that core within 0.5% for 9 of the 14 (it equals HiGHS's core optimum), and keeping only the candidates
  whose DP bound is below the optimum cuts their HiGHS time 3x (5.9 s). But the DP costs 0.1-0.3 s per deployment in
  numpy, and the pruning needs a near-optimal upper bound first: with a quick solve over the 40 most promising
  candidates for it (6-8% off on 4 of the 14), the whole took 16.7 s of CPU against 21.4 s. Not kept.
- Starting short time shares from a quick solve over the 40 most promising candidates: worse given 5 s (5.7-6.4%
  above against 4.8-5.2%), the quick solve eats the shares.
- presolve on, with the optimum as the start: from 3x faster to 3x slower, deployment by deployment.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.synthetic

OFFERINGS = (1_000, 5_000, 20_000)
TARGET_S = 5.0
DEPLOYMENTS = (5, 20, 50)


def one(n_off: int, n_dep: int, seed: int = 7) -> dict:
    from orchestrator.placement import place
    from orchestrator.placement.inputs import build_inputs
    from orchestrator.solver.model import build
    from orchestrator.solver.solve import EarlyNarrowing, solve
    from support.synthetic import LoadedStub, random_catalog, random_spec

    cat = random_catalog(n_off, seed)
    spec = random_spec(n_dep, list(cat.regions), seed)
    # as `orch place` does it: each deployment's bounds and short list start while the next ones' candidates are
    # built (candidates_s includes what of that runs beside candidate generation; solve_s is the rest)
    t0 = time.perf_counter()
    with EarlyNarrowing(120) as early:
        inp = build_inputs(LoadedStub(spec), cat, on_deployment=early.submit)
        t_cand = time.perf_counter() - t0
        t1 = time.perf_counter()
        sol = solve(inp.problem, "cost", tie_break=False, time_limit=120, early=early)
        t_solve = time.perf_counter() - t1
    # what the 5 s target buys: the same, given what is left of 5 s after candidate generation (on a new catalog
    # object: nothing remembered from the run above)
    cat = random_catalog(n_off, seed)
    t2 = time.perf_counter()
    with EarlyNarrowing(TARGET_S) as early:
        again = build_inputs(LoadedStub(spec), cat, on_deployment=early.submit)
        budget = max(0.2, TARGET_S - (time.perf_counter() - t2))
        quick = solve(again.problem, "cost", tie_break=False, time_limit=budget, early=early)
    t_quick = time.perf_counter() - t2
    opt = sol.values.get("cost", float("nan"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB, before the size count below
    b = build(inp.problem)  # the whole MILP's size (the solve works on per-deployment parts of it)
    # what `orch place` does end to end with its defaults: candidates, the solve with its tie-break stage,
    # explanations and every deployment's fallbacks
    t3 = time.perf_counter()
    plan = place(LoadedStub(spec), "cost", catalog=cat)
    t_place = time.perf_counter() - t3
    return {
        "offerings": n_off, "deployments": n_dep, "candidates": len(inp.problem.candidates),
        "pruned": sum(dc.pruned for dc in inp.candidates.values()),
        "cols": b.num_cols, "rows": b.num_rows,
        "candidates_s": round(t_cand, 3), "solve_s": round(t_solve, 3), "status": sol.status, "gap": sol.gap,
        "usd_per_month": round(opt, 0), "peak_rss_mb": round(rss_mb, 0),
        "in_5s_total_s": round(t_quick, 2), "in_5s_status": quick.status,
        "in_5s_above_optimum_pct": round(100 * (quick.values.get("cost", float("nan")) - opt) / opt, 3) if quick.values else None,
        "in_5s_gap_pct": round(100 * quick.gap, 3),
        "place_s": round(t_place, 2), "place_note": "; ".join(m.split(" (")[0] for m in plan.messages) or plan.status,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]), int(sys.argv[3]))))
        return
    offs = OFFERINGS[:2] if "--quick" in sys.argv else OFFERINGS
    from rich.console import Console
    from rich.table import Table

    table = Table(title="orch solver scaling (seed 7; HiGHS mip_rel_gap 1e-4)")
    cols = ["offerings", "deployments", "candidates", "pruned", "cols", "rows", "candidates_s", "solve_s", "status", "gap",
            "usd_per_month", "peak_rss_mb", "in_5s_total_s", "in_5s_status", "in_5s_above_optimum_pct", "in_5s_gap_pct", "place_s", "place_note"]
    for c in cols:
        table.add_column(c, justify="right")
    rows = []
    for n_off in offs:
        for n_dep in DEPLOYMENTS:
            out = subprocess.run([sys.executable, __file__, "--one", str(n_off), str(n_dep)], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            table.add_row(*[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols])
            print(json.dumps(r), file=sys.stderr)
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
