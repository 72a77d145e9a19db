"""`orch place`: from a loaded deployment file to a Plan (orchestrator/plan.py).

    plan = place(load_spec("deploy.yaml"), "cost")

Inputs (placement/inputs.py: candidates, pruning, egress) -> MILP (orchestrator/solver) -> replica groups, predictions,
explanations (placement/explain.py), and per deployment ranked fallbacks (placement/fallbacks.py): the best placement of that deployment with each
chosen offering excluded, the other deployments' GPUs and cost held fixed (for a deployment whose optimum was
slow to prove, the best among its most promising candidates).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.fmt import signed_usd
from orchestrator.placement.explain import DeploymentResult, explain, result_for
from orchestrator.placement.fallbacks import all_fallbacks, runner_up
from orchestrator.placement.inputs import Inputs, build_inputs
from orchestrator.plan import DeploymentPlan, Plan, Predicted, Totals
from orchestrator.solver.model import OBJECTIVES
from orchestrator.solver.problem import DeploymentInput
from orchestrator.solver.solve import EarlyNarrowing, Solution, solve
from orchestrator.solver.strategy import DEFAULT, SolveStrategy

if TYPE_CHECKING:
    from orchestrator.catalog.load import Catalog
    from orchestrator.model_arch import ModelArch
    from orchestrator.plan import ReplicaGroup
    from orchestrator.spec.loader import LoadedSpec
    from orchestrator.spec.models import Deployment, DeploymentFile

# the plans-B search and the time budget of the whole placement are the strategy's (orchestrator/solver/strategy.py)
MODEL_LEN_MARGIN = 2.0
# A deployment above this many GPUs gets a warning: thousands of GPUs is a reserved cluster's size, not what a
# region rents on demand (no public capacity figure exists; a line above any plan a realistic demand gives)
LARGE_GPUS = 2_048  # max_model_len = (input + output) x margin, rounded up to 1,024


@dataclass(frozen=True)
class _Run:
    """One placement's settings and its clock: ``deadline`` (a time.perf_counter() instant) is when the plan starts
    to be written, ``strategy.finish_s`` (at most 5 % of the limit) before the time limit runs out."""

    loaded: LoadedSpec
    objective: str
    time_limit: float
    edge: str
    strategy: SolveStrategy
    t0: float
    deadline: float

    def left(self) -> float:
        return max(self.strategy.min_solve_s, self.deadline - time.perf_counter())

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.t0, 3)


def place(
    loaded: LoadedSpec,
    objective: str = "cost",
    *,
    catalog: Catalog | None = None,
    with_fallbacks: bool | Literal["exhaustive"] = True,
    time_limit: float = 60.0,
    edge: str = "pessimistic",
    progress: Callable[[str], None] | None = None,
    strategy: SolveStrategy = DEFAULT,
) -> Plan:
    """``edge``: the SLOs and capacities are checked at the pessimistic edge of the performance model's error band
    (default), or at its central estimate ("central"); a measured profile is used as measured either way.
    ``time_limit`` bounds the whole placement: candidates, the solve, the cost reference of another objective,
    the fallbacks and the explanations; the solve gets what candidate generation left, the fallbacks what the
    solve left. ``progress`` is told each stage as it starts. ``with_fallbacks``: ranked plans B per deployment;
    "exhaustive" searches them among all its candidates, never the short list a slow proof otherwise leads to
    (which depends on the machine's speed): the same plan on any machine, given the time. ``strategy``: how the
    solves and the plans B are sped up and share the time (never what a plan is)."""
    from orchestrator.errors import UserError

    if objective not in OBJECTIVES:
        raise UserError(f"--minimize must be one of {', '.join(OBJECTIVES)}, found {objective!r}")
    t0 = time.perf_counter()
    run = _Run(loaded, objective, time_limit, edge, strategy, t0, t0 + time_limit - min(strategy.finish_s, 0.05 * time_limit))
    tell = progress or (lambda _stage: None)
    tell(f"building candidates for {len(loaded.spec.deployments)} deployment(s)")
    if catalog is None:
        from orchestrator.catalog.load import load_catalog

        catalog = load_catalog(loaded.spec)
    inp, sol, built_s = _solved(run, catalog, tell)
    as_of = str(getattr(catalog, "as_of", "") or "")
    failed = _no_plan(run, inp, sol, built_s, as_of)
    if failed is not None:
        return failed
    results = {d.name: result_for(sol, d) for d in inp.problem.deployments}
    cost_ref: dict[str, DeploymentResult] | None = None
    if objective != "cost":
        tell("solving the cost-optimal plan to compare with")
        ref = solve(inp.problem, "cost", time_limit=run.left(), strategy=strategy)
        if ref.ok:
            cost_ref = {d.name: result_for(ref, d) for d in inp.problem.deployments}
    providers = _providers(loaded.spec, catalog)
    short: list[str] = []  # deployments whose fallbacks the time limit cut
    if with_fallbacks:
        tell("ranking fallbacks (plans B)")
    search = strategy if with_fallbacks != "exhaustive" else dataclasses.replace(strategy, fallback_full_s=math.inf)
    found = all_fallbacks(inp, sol, results, objective, run.deadline, short, search) if with_fallbacks else {}
    tell("explaining")
    plans = _explained(run, inp, sol, results, cost_ref, found, providers)
    total = _totals(results, plans)
    messages = _messages(run, inp, sol, plans, short, cost_ref, total)
    from orchestrator.catalog.freshness import plan_price_messages

    messages += plan_price_messages(c.offering for r in results.values() for c, _ in r.chosen)
    used = sorted({str(c.offering.as_of) for r in results.values() for c, _ in r.chosen if c.offering.as_of})
    prices_as_of = (used[0] if len(used) == 1 else f"{used[0]}..{used[-1]}") if used else as_of
    return Plan(
        project=loaded.spec.project, status="optimal" if sol.ok else "feasible", gap=round(sol.gap, 6), objective=objective,
        objective_value=round(sol.values[objective], 6), solve_seconds=run.elapsed(), deployments=plans, total=total,
        spec_sha256=loaded.sha256, catalog_as_of=prices_as_of, messages=messages,
    )


def _solved(run: _Run, catalog: Catalog, tell: Callable[[str], None]) -> tuple[Inputs, Solution, float]:
    """The solver's input, its solution, and the seconds building the input took. The deployments' bounds and short
    lists (cost) start while the later deployments' candidates are built."""
    import functools

    from orchestrator.perf import estimate_batch as model_estimates

    estimate_batch = functools.partial(model_estimates, edge=run.edge)
    strategy = run.strategy
    early = EarlyNarrowing(run.time_limit, strategy) if run.objective == "cost" else None
    with early or contextlib.nullcontext():
        inp = build_inputs(run.loaded, catalog, estimate_batch=estimate_batch, objective=run.objective,
                           on_deployment=early.submit if early is not None else None)
        built_s = time.perf_counter() - run.t0
        tell(f"solving ({len(inp.problem.candidates):,} candidates)")
        # the solve may start a deployment still without a plan after its own limit, up to the command's deadline
        sol = solve(inp.problem, run.objective, time_limit=max(strategy.min_solve_s, strategy.solve_share * run.left()),
                    early=early, hard_deadline=run.deadline, strategy=strategy)
    return inp, sol, built_s


def _no_plan(run: _Run, inp: Inputs, sol: Solution, built_s: float, as_of: str) -> Plan | None:
    """The plan that says why there is none (the time ran out, or nothing is feasible), or None when there is one."""
    loaded, objective = run.loaded, run.objective
    if sol.status == "timeout":
        return Plan(project=loaded.spec.project, status="timeout", objective=objective, solve_seconds=run.elapsed(),
                    spec_sha256=loaded.sha256, catalog_as_of=as_of,
                    messages=[(f"no plan found within the time limit ({run.time_limit:g} s; building the candidates "
                               f"took {built_s:.1f} s of it): raise --time-limit")])
    if not sol.ok and sol.status != "time_limit":
        from orchestrator.placement.infeasible import diagnose

        msgs = diagnose(inp, loaded, objective)
        return Plan(project=loaded.spec.project, status="infeasible", objective=objective, solve_seconds=run.elapsed(),
                    spec_sha256=loaded.sha256, catalog_as_of=as_of, messages=msgs)
    return None


def _explained(run: _Run, inp: Inputs, sol: Solution, results: dict[str, DeploymentResult],
               cost_ref: dict[str, DeploymentResult] | None, found: dict, providers: set[str]) -> list[DeploymentPlan]:
    """Each deployment's plan with its fallbacks, its explanation and, where another objective is minimized, what
    that costs against the cost-optimal plan."""
    from orchestrator.perf.provenance import deployment_performance

    plans: list[DeploymentPlan] = []
    for d in inp.problem.deployments:
        res = results[d.name]
        fallbacks, searched = found.get(d.name, ([], None))
        runner = runner_up(results[d.name], fallbacks)
        expl = explain(d, inp.candidates[d.name], res, sol, objective=run.objective, runner_up=runner, all_providers=providers)
        if runner is not None and searched is not None:
            expl["runner_up"]["searched"] = f"the {searched} most promising candidates"
        if cost_ref is not None:
            expl["objective_tradeoff"] = _tradeoff(run.objective, res, cost_ref[d.name])
        plans.append(_deployment_plan(run.loaded, d, inp, res, [g for g, _ in fallbacks], expl))
        if res.groups:
            plans[-1].performance = deployment_performance(d.spec, inp.models[d.name], res.groups[0], run.edge)
    return plans


def _tradeoff(objective: str, res: DeploymentResult, cr: DeploymentResult) -> str:
    """What minimizing ``objective`` costs against the cost-optimal plan ``cr``, and what it buys (like with like:
    what the objective measures, on both plans)."""
    compared = {
        "latency": (f"mean TTFT {cr.ttft_mean_ms:.0f} ms there vs {res.ttft_mean_ms:.0f} ms here (traffic-weighted, "
                    f"round trip included); p95 {cr.ttft_p95_ms:.0f} vs {res.ttft_p95_ms:.0f} ms"),
        "egress": f"egress ${cr.egress_usd_per_month:,.0f}/month there vs ${res.egress_usd_per_month:,.0f} here",
    }.get(objective, f"TTFT p95 {cr.ttft_p95_ms:.0f} ms there vs {res.ttft_p95_ms:.0f} ms here")
    return (f"minimizing {objective} costs {signed_usd(res.usd_per_hour - cr.usd_per_hour, '/h')} vs the "
            f"cost-optimal plan (${cr.usd_per_hour:,.2f}/h; {compared})")


def _totals(results: dict[str, DeploymentResult], plans: list[DeploymentPlan]) -> Totals:
    compute = sum(r.compute_usd_per_hour for r in results.values())
    egress = sum(r.egress_usd_per_month for r in results.values())
    return Totals(
        usd_per_hour=round(compute + egress / HOURS_PER_MONTH, 4),
        usd_per_month=round(compute * HOURS_PER_MONTH + egress, 2),
        egress_usd_per_month=round(egress, 2),
        gateways_usd_per_hour=round(sum(g.usd_per_hour for p in plans for g in p.gateways), 4),
    )


def _messages(run: _Run, inp: Inputs, sol: Solution, plans: list[DeploymentPlan], short: list[str],
              cost_ref: dict[str, DeploymentResult] | None, total: Totals) -> list[str]:
    """The plan's messages before the prices' own: fallbacks cut short, very large deployments, a time limit
    reached, and what minimizing another objective than cost costs in all."""
    messages = []
    if short:
        messages.append(f"time limit: fallbacks cut short for {', '.join(sorted(set(short)))} (raise --time-limit, or "
                        "--no-fallbacks to skip them)")
    for dp, d in zip(plans, inp.problem.deployments):
        gpus = sum(g.count * g.gpus_per_replica for g in dp.replicas)
        if gpus > LARGE_GPUS:
            messages.append(
                f"warning: {d.name} needs {gpus:,} GPUs (${dp.usd_per_hour * HOURS_PER_MONTH:,.0f}/month) for "
                f"{d.spec.traffic.requests_per_second:,.6g} requests/s: more than clouds rent on demand without a "
                "reservation; check requests_per_second, or bound it with quotas")
    if sol.status == "time_limit":
        messages.append(f"time limit ({run.time_limit:g} s) reached: the plan is feasible and within {sol.gap:.2%} of the "
                        "optimum, not proven optimal")
    if cost_ref is not None:
        ref_total = sum(r.usd_per_month for r in cost_ref.values())
        messages.append(f"minimizing {run.objective}: {signed_usd(total.usd_per_month - ref_total, '/month', 0)} vs the "
                        "cost-optimal plan")
    return messages


def _providers(spec: DeploymentFile, catalog: Catalog) -> set[str]:
    return {o.provider for o in catalog.offerings}


def _max_model_len(d: Deployment, model: ModelArch) -> int:
    if d.max_model_len:
        return int(d.max_model_len)
    want = (d.traffic.input_tokens + d.traffic.output_tokens) * MODEL_LEN_MARGIN
    return int(min(model.max_context, math.ceil(want / 1024) * 1024))


def _deployment_plan(loaded: LoadedSpec, d: DeploymentInput, inp: Inputs, res: DeploymentResult,
                     fallbacks: list[list[ReplicaGroup]], expl: dict) -> DeploymentPlan:
    from orchestrator.gateways import plan_gateways
    from orchestrator.own_models import plan_fields

    spec = d.spec
    model = inp.models[d.name]
    return DeploymentPlan(
        name=d.name, model=model.name, hf_id=model.hf_id, team=spec.team, max_model_len=_max_model_len(spec, model),
        kv_cache_dtype=spec.kv_cache_dtype, replicas=res.groups,
        predicted=Predicted(
            ttft_p95_ms=round(res.ttft_p95_ms, 1), tpot_p95_ms=round(res.tpot_p95_ms, 2),
            capacity_rps=round(res.capacity_rps, 3), usd_per_million_tokens=round(res.usd_per_million_tokens, 4),
        ),
        usd_per_hour=round(res.usd_per_hour, 4), egress_usd_per_month=round(res.egress_usd_per_month, 2),
        fallbacks=fallbacks, explanation=expl, gateways=plan_gateways(spec, res.groups),
        **plan_fields(spec, model, loaded.base_dir),
    )
