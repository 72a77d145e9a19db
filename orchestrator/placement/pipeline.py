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
from typing import TYPE_CHECKING, Literal

from orchestrator.catalog.types import HOURS_PER_MONTH
from orchestrator.fmt import signed_usd
from orchestrator.placement.explain import DeploymentResult, explain, result_for
from orchestrator.placement.fallbacks import all_fallbacks, runner_up
from orchestrator.placement.inputs import Inputs, build_inputs
from orchestrator.plan import DeploymentPlan, Plan, Predicted, Totals
from orchestrator.solver.model import OBJECTIVES
from orchestrator.solver.problem import DeploymentInput
from orchestrator.solver.solve import EarlyNarrowing, solve
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
    deadline = t0 + time_limit - min(strategy.finish_s, 0.05 * time_limit)  # what is left then writes the plan

    def left() -> float:
        return max(strategy.min_solve_s, deadline - time.perf_counter())

    tell = progress or (lambda _stage: None)
    tell(f"building candidates for {len(loaded.spec.deployments)} deployment(s)")
    import functools

    from orchestrator.perf import estimate_batch as model_estimates

    estimate_batch = functools.partial(model_estimates, edge=edge)
    if catalog is None:
        from orchestrator.catalog.load import load_catalog

        catalog = load_catalog(loaded.spec)
    # the deployments' bounds and short lists (cost) start while the later deployments' candidates are built
    early = EarlyNarrowing(time_limit, strategy) if objective == "cost" else None
    with early or contextlib.nullcontext():
        inp = build_inputs(loaded, catalog, estimate_batch=estimate_batch, objective=objective,
                           on_deployment=early.submit if early is not None else None)
        built_s = time.perf_counter() - t0
        tell(f"solving ({len(inp.problem.candidates):,} candidates)")
        # the solve may start a deployment still without a plan after its own limit, up to the command's deadline
        sol = solve(inp.problem, objective, time_limit=max(strategy.min_solve_s, strategy.solve_share * left()),
                    early=early, hard_deadline=deadline, strategy=strategy)
    as_of = str(getattr(catalog, "as_of", "") or "")
    project = loaded.spec.project
    if sol.status == "timeout":
        return Plan(project=project, status="timeout", objective=objective, solve_seconds=round(time.perf_counter() - t0, 3),
                    spec_sha256=loaded.sha256, catalog_as_of=as_of,
                    messages=[f"no plan found within the time limit ({time_limit:g} s; building the candidates took "
                              f"{built_s:.1f} s of it): raise --time-limit"])
    if not sol.ok and sol.status != "time_limit":
        from orchestrator.placement.infeasible import diagnose

        msgs = diagnose(inp, loaded, objective)
        return Plan(project=project, status="infeasible", objective=objective, solve_seconds=round(time.perf_counter() - t0, 3),
                    spec_sha256=loaded.sha256, catalog_as_of=as_of, messages=msgs)
    results = {d.name: result_for(sol, d) for d in inp.problem.deployments}
    cost_ref: dict[str, DeploymentResult] | None = None
    if objective != "cost":
        tell("solving the cost-optimal plan to compare with")
        ref = solve(inp.problem, "cost", time_limit=left(), strategy=strategy)
        if ref.ok:
            cost_ref = {d.name: result_for(ref, d) for d in inp.problem.deployments}
    providers = _providers(loaded.spec, catalog)
    plans: list[DeploymentPlan] = []
    short: list[str] = []  # deployments whose fallbacks the time limit cut
    if with_fallbacks:
        tell("ranking fallbacks (plans B)")
    search = strategy if with_fallbacks != "exhaustive" else dataclasses.replace(strategy, fallback_full_s=math.inf)
    found = all_fallbacks(inp, sol, results, objective, deadline, short, search) if with_fallbacks else {}
    tell("explaining")
    for d in inp.problem.deployments:
        res = results[d.name]
        fallbacks, searched = found.get(d.name, ([], None))
        runner = runner_up(results[d.name], fallbacks)
        expl = explain(d, inp.candidates[d.name], res, sol, objective=objective, runner_up=runner, all_providers=providers)
        if runner is not None and searched is not None:
            expl["runner_up"]["searched"] = f"the {searched} most promising candidates"
        if cost_ref is not None:
            cr = cost_ref[d.name]
            compared = {  # like with like: what the objective measures, on both plans
                "latency": f"mean TTFT {cr.ttft_mean_ms:.0f} ms there vs {res.ttft_mean_ms:.0f} ms here (traffic-"
                           f"weighted, round trip included); p95 {cr.ttft_p95_ms:.0f} vs {res.ttft_p95_ms:.0f} ms",
                "egress": f"egress ${cr.egress_usd_per_month:,.0f}/month there vs ${res.egress_usd_per_month:,.0f} here",
            }.get(objective, f"TTFT p95 {cr.ttft_p95_ms:.0f} ms there vs {res.ttft_p95_ms:.0f} ms here")
            expl["objective_tradeoff"] = (
                f"minimizing {objective} costs {signed_usd(res.usd_per_hour - cr.usd_per_hour, '/h')} vs the "
                f"cost-optimal plan (${cr.usd_per_hour:,.2f}/h; {compared})"
            )
        plans.append(_deployment_plan(loaded, d, inp, res, [g for g, _ in fallbacks], expl))
        if res.groups:
            from orchestrator.perf.provenance import deployment_performance

            plans[-1].performance = deployment_performance(d.spec, inp.models[d.name], res.groups[0], edge)
    compute = sum(r.compute_usd_per_hour for r in results.values())
    egress = sum(r.egress_usd_per_month for r in results.values())
    total = Totals(
        usd_per_hour=round(compute + egress / HOURS_PER_MONTH, 4),
        usd_per_month=round(compute * HOURS_PER_MONTH + egress, 2),
        egress_usd_per_month=round(egress, 2),
        gateways_usd_per_hour=round(sum(g.usd_per_hour for p in plans for g in p.gateways), 4),
    )
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
        messages.append(f"time limit ({time_limit:g} s) reached: the plan is feasible and within {sol.gap:.2%} of the optimum, "
                        "not proven optimal")
    if cost_ref is not None:
        ref_total = sum(r.usd_per_month for r in cost_ref.values())
        messages.append(f"minimizing {objective}: {signed_usd(total.usd_per_month - ref_total, '/month', 0)} vs the "
                        "cost-optimal plan")
    from orchestrator.catalog.freshness import plan_price_messages

    messages += plan_price_messages(c.offering for r in results.values() for c, _ in r.chosen)
    used = sorted({str(c.offering.as_of) for r in results.values() for c, _ in r.chosen if c.offering.as_of})
    prices_as_of = (used[0] if len(used) == 1 else f"{used[0]}..{used[-1]}") if used else as_of
    return Plan(
        project=project, status="optimal" if sol.ok else "feasible", gap=round(sol.gap, 6), objective=objective,
        objective_value=round(sol.values[objective], 6),
        solve_seconds=round(time.perf_counter() - t0, 3), deployments=plans, total=total,
        spec_sha256=loaded.sha256, catalog_as_of=prices_as_of, messages=messages,
    )


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
