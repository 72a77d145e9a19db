"""Plans B of deployments slow to prove: the best among their most promising candidates vs over every candidate.

    .venv/bin/python benchmarks/fallback_quality.py            # 5,000 offerings x 50 deployments (seed 7)
    .venv/bin/python benchmarks/fallback_quality.py 1000 20

`orch place` keeps, per deployment, the best plan with each chosen offering excluded (the fallbacks `orch apply`
turns to when a cloud has no capacity). For a deployment whose own optimum took SolveStrategy.fallback_full_s or
more to prove, those plans B are searched among its SolveStrategy.promising most promising candidates first
(bounds.promising), by the DEFAULT strategy (orchestrator/solver/strategy.py). This prints,
for each such plan B, how much dearer it is than the best plan B over every candidate, and the solve time of both.

Measured 2026-12-02 on the shared 2-core box, 5,000 x 50, two runs (which deployments take 0.2 s to prove varies
with timing): 13 and 18 plans B, 0.16% and 0.12% dearer on average, 1.87% at worst; 5.1 s against 18.2 s, 6.2 s
against 19.8 s. With the candidates ranked by the older per-unit bound: 0.96% on average, 5.82% at worst.
The same day, after the fifth session's tighter bounds (which also rank the candidates): 13 plans B, 0.02% dearer
on average, 0.20% at worst; 4.0 s against 11.8 s. After the sixth session's (faster solves, so fewer deployments
take 0.2 s to prove): 6 plans B, 0.03% dearer on average, 0.20% at worst; 1.9 s against 7.7 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.synthetic


def main(n_off: int = 5_000, n_dep: int = 50, seed: int = 7) -> None:
    from orchestrator.solver.bounds import promising
    from orchestrator.placement.inputs import build_inputs
    from orchestrator.solver.problem import SolverInput
    from orchestrator.solver.solve import solve
    from orchestrator.solver.strategy import DEFAULT
    from support.synthetic import LoadedStub, random_catalog, random_spec

    cat = random_catalog(n_off, seed)
    spec = random_spec(n_dep, list(cat.regions), seed)
    inp = build_inputs(LoadedStub(spec), cat)
    sol = solve(inp.problem, "cost")
    dearer: list[float] = []
    t_short = t_all = 0.0
    for d in inp.problem.deployments:
        if sol.part(d.name).solve_seconds < DEFAULT.fallback_full_s or len(d.candidates) <= DEFAULT.promising:
            continue
        chosen = [c for c in d.candidates if c in sol.units]
        regions = {c.region for c in chosen}
        for key in sorted({(c.region, c.instance_type, c.market) for c in chosen}):
            without = d.subset([i for i, c in enumerate(d.candidates) if (c.region, c.instance_type, c.market) != key])
            t0 = time.perf_counter()
            short = solve(SolverInput([without.subset(promising(without, DEFAULT.promising, regions))]),
                          "cost", tie_break=False)
            t1 = time.perf_counter()
            best = solve(SolverInput([without]), "cost", tie_break=False)
            t_short, t_all = t_short + t1 - t0, t_all + time.perf_counter() - t1
            if short.values and best.values:
                dearer.append(100.0 * (short.values["cost"] / best.values["cost"] - 1.0))
    if not dearer:
        print("no deployment was slow to prove: no plan B searched among the most promising candidates")
        return
    print(f"{n_off:,} offerings x {n_dep} deployments: {len(dearer)} plans B of deployments slow to prove")
    print(f"  dearer than the best plan B over every candidate: {sum(dearer) / len(dearer):.2f}% on average, "
          f"{max(dearer):.2f}% at worst")
    print(f"  solve time: {t_short:.1f} s among the most promising candidates, {t_all:.1f} s over every candidate")


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:3]])
