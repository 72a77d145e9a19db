"""Plan quality: orch's MILP plan vs two simple baselines, in $/month (compute + egress).

    .venv/bin/python benchmarks/solver_quality.py [--scenarios N]

(a) "cheapest instance in the data's region" -- what SkyPilot/dstack do once told the GPU: per deployment,
    replicas of the single cheapest on-demand offering that fits and meets the SLOs in the region of its
    data (else of its first user region), sized to the demand (ceil(required / capacity per unit)). When no
    offering there answers every user region within the TTFT SLO, the cheapest such offering anywhere (the
    "moved" column counts those). It ignores quotas and the budget, which can only favour it.
(b) "one GPU type for everything" -- the best single GPU type across all deployments (orch's own MILP
    restricted to that GPU type, every GPU type tried, the cheapest feasible kept).
Scenarios: the three examples/ files and N seeded random deployment files on the shipped catalog
(tests/support/synthetic.py random_spec over the catalog's AWS/GCP/Azure regions).
Savings % = (baseline - orch) / baseline. All plans meet the same SLOs, quotas, policies and budget.

Measured 2026-11-23 (shipped catalog as of that day, --scenarios 10; after the exact pruning and spot floor
fixes of that day):
    examples/quickstart.yaml     $5,023/month   vs (a) 0.0%    vs (b) 0.0%   (one H100 in us-east-1 is the answer)
    examples/hybrid.yaml        $17,416/month   vs (a) 16.8%   vs (b) 0.0%
    examples/multi-region.yaml  $70,845/month   vs (a) 19.4%   vs (b) n/a (its hardware policy rules out one type)
    10 random 8-deployment files: vs (a) 31.4-63.4% (mean over all 13 scenarios 38.4%),
                                  vs (b) 2.8-22.7% (mean over 12 scenarios 12.4%; best single type: H100)
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support.synthetic: the tests' synthetic inputs


def _restrict(inp, keep):  # noqa: ANN001, ANN202
    """A copy of the solver input with each deployment's candidates filtered by keep(deployment, candidate)."""
    from orchestrator.solver.problem import SolverInput

    deps = []
    for d in inp.problem.deployments:
        idx = [i for i, c in enumerate(d.candidates) if keep(d, c)]
        deps.append(dataclasses.replace(
            d, candidates=[d.candidates[i] for i in idx], rtt_ms=[[r[i] for i in idx] for r in d.rtt_ms],
            response_usd_per_rps_month=[[r[i] for i in idx] for r in d.response_usd_per_rps_month]))
    return SolverInput(deps, inp.problem.limits, inp.problem.global_policies)


def _cost(problem) -> float | None:  # noqa: ANN001
    from orchestrator.solver.solve import solve

    sol = solve(problem, "cost", tie_break=False, time_limit=60)
    return sol.values["cost"] if sol.ok else None


def evaluate(loaded, catalog) -> dict:  # noqa: ANN001
    from orchestrator.placement.inputs import build_inputs

    inp = build_inputs(loaded, catalog, objective="cost", prune=False)  # baselines see every candidate
    orch = _cost(inp.problem)
    # (a) cheapest single on-demand offering in the data's (else first users') region, answering every user region
    chosen: dict[str, int] = {}
    moved = 0
    for d in inp.problem.deployments:
        spec = d.spec
        home = spec.data[0].region if spec.data else d.sources[0][0]

        def pick(in_home: bool, d=d, home=home):  # noqa: ANN202
            best = None
            for i, c in enumerate(d.candidates):
                if c.market == "spot" or (in_home and c.region != home):
                    continue
                if any(d.rtt_ms[s][i] + c.ttft_ms > d.ttft_slo_ms for s in range(len(d.sources))):
                    continue
                usd = math.ceil(d.required_rps / c.rps_per_unit - 1e-9) * c.usd_per_unit_hour
                if best is None or usd < best[0]:
                    best = (usd, id(c))
            return best

        best = pick(True)
        if best is None:  # nothing there answers every user in time: the cheapest such instance anywhere
            best = pick(False)
            moved += 1
        if best is not None:
            chosen[d.name] = best[1]
    base_a = None
    if len(chosen) == len(inp.problem.deployments):
        from orchestrator.solver.problem import SolverInput

        # each deployment on its own (the baseline knows nothing of quotas or the budget): compute + egress
        restricted = _restrict(inp, lambda d, c: chosen.get(d.name) == id(c))
        parts = [_cost(SolverInput([d], [], [])) for d in restricted.deployments]
        base_a = None if any(v is None for v in parts) else sum(parts)
    # (b) one GPU type for every deployment
    gpus = sorted({c.gpu for d in inp.problem.deployments for c in d.candidates})
    base_b, best_gpu = None, None
    for g in gpus:
        v = _cost(_restrict(inp, lambda d, c, g=g: c.gpu == g))
        if v is not None and (base_b is None or v < base_b):
            base_b, best_gpu = v, g
    return {"orch": orch, "a": base_a, "b": base_b, "b_gpu": best_gpu, "moved": moved}


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from orchestrator.catalog.load import load_catalog
    from support.synthetic import LoadedStub, random_spec
    from orchestrator.spec.loader import load_spec

    n = int(sys.argv[sys.argv.index("--scenarios") + 1]) if "--scenarios" in sys.argv else 10
    rows = []
    for name in ("quickstart", "hybrid", "multi-region"):
        loaded = load_spec(ROOT / "examples" / f"{name}.yaml")
        rows.append((f"examples/{name}.yaml", evaluate(loaded, load_catalog(loaded.spec))))
    full = load_catalog(None)
    regions = sorted(r for r in full.regions if r.split(":")[0] in ("aws", "gcp", "azure"))
    for seed in range(n):
        spec = random_spec(8, regions, seed)
        rows.append((f"random seed {seed} (8 deployments)", evaluate(LoadedStub(spec), full)))

    def pct(base: float | None, orch: float | None) -> str:
        if base is None or orch is None:
            return "n/a"
        return f"{(base - orch) / base * 100:.1f}%"

    def usd(v: float | None) -> str:
        return "infeasible" if v is None else f"${v:,.0f}"

    t = Table(width=150, title="orch plan vs baselines, $/month (compute + egress)")
    for col in ("scenario", "orch", "(a) cheapest in data region", "savings vs (a)", "(b) one GPU type", "best type", "savings vs (b)", "moved"):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    sa, sb = [], []
    for name, r in rows:
        t.add_row(name, usd(r["orch"]), usd(r["a"]), pct(r["a"], r["orch"]), usd(r["b"]), str(r["b_gpu"]), pct(r["b"], r["orch"]), str(r["moved"]))
        if r["a"] and r["orch"]:
            sa.append((r["a"] - r["orch"]) / r["a"] * 100)
        if r["b"] and r["orch"]:
            sb.append((r["b"] - r["orch"]) / r["b"] * 100)
    Console(width=150).print(t)
    if sa:
        print(f"savings vs (a): mean {sum(sa) / len(sa):.1f}%, min {min(sa):.1f}%, max {max(sa):.1f}% over {len(sa)} scenarios")
    if sb:
        print(f"savings vs (b): mean {sum(sb) / len(sb):.1f}%, min {min(sb):.1f}%, max {max(sb):.1f}% over {len(sb)} scenarios")


if __name__ == "__main__":
    main()
