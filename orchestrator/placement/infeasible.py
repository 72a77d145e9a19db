"""Why no plan exists: which deployment, which constraint, and what relaxing it would take.

Checks run from the most local to the most coupled: a deployment with no candidate at all (memory, TPOT,
TTFT, policy); a deployment infeasible on its own (users no region can answer in time, a deployment
policy); then the constraints that couple deployments (the project budget, quotas, on-prem inventory),
each re-solved with the constraint removed to say how far off it is.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Any

from orchestrator.placement.candidates import (
    MEMORY,
    POLICY,
    SLO_TPOT,
    SLO_TTFT,
    DeploymentCandidates,
)
from orchestrator.solver.problem import DeploymentInput, SolverInput
from orchestrator.solver.solve import solve

if TYPE_CHECKING:
    from orchestrator.model_arch import ModelArch
    from orchestrator.placement.inputs import Inputs
    from orchestrator.spec.loader import LoadedSpec
    from orchestrator.spec.models import Deployment


def diagnose(inp: Inputs, loaded: LoadedSpec, objective: str = "cost") -> list[str]:
    """Messages (with file:line where a field is at fault) for an infeasible SolverInput."""
    problem: SolverInput = inp.problem
    msgs: list[str] = []
    index = {d.name: i for i, d in enumerate(loaded.spec.deployments)}

    def at(path: tuple, message: str) -> str:
        try:
            return str(loaded.problem(path, message))
        except Exception:  # noqa: BLE001 - a message without a location beats none
            return message

    alone_ok: list[DeploymentInput] = []
    for d in problem.deployments:
        i = index[d.name]
        dc = inp.candidates[d.name]
        if not d.candidates:
            msgs.extend(_no_candidates(d, dc, inp.models.get(d.name), i, at))
            continue
        single = SolverInput([d], [], [])
        if solve(single, objective, tie_break=False, time_limit=10).ok:
            alone_ok.append(d)
            continue
        msgs.extend(_alone(d, i, at, objective))
    if msgs:
        return msgs
    # coupling constraints
    full_free = SolverInput(problem.deployments, [], [])
    free = solve(full_free, "cost", tie_break=False, time_limit=20)
    if problem.global_policies and free.ok:
        need = free.values["cost"]
        for p in problem.global_policies:
            over = p.over_limit(need)
            if over is not None:
                msgs.append(at(*over))
    if problem.limits:
        no_limits = solve(SolverInput(problem.deployments, [], problem.global_policies), "cost", tie_break=False, time_limit=20)
        ref = no_limits if no_limits.ok else free
        if ref.ok:
            for lim in problem.limits:
                used = sum(c.gpus_per_unit * u for c in problem.candidates if (u := ref.units.get(c, 0)) and lim.match(c))
                if used > lim.max_gpus:
                    what = "quota" if lim.kind == "quota" else "on-prem inventory"
                    msgs.append(at(lim.where or ("providers",),
                                   f"{lim.name}: the plan needs {used:g} GPUs, the {what} allows {lim.max_gpus:g}; "
                                   f"{used - lim.max_gpus:g} more would make it feasible"))
    if not msgs:
        msgs.append("no plan meets every constraint together (budget, quotas, inventory and policies interact); "
                    "relax the budget or a quota and run `orch place` again")
    return msgs


def _no_candidates(d: DeploymentInput, dc: DeploymentCandidates, model: ModelArch | None, i: int, at: Any) -> list[str]:
    counts: Counter = Counter()
    for c in dc.rejected.values():
        counts.update(c)
    name = d.name
    if not counts:
        return [at(("deployments", i), f"deployment {name}: no offering in the selected providers/regions; "
                                       "add providers or regions under providers:")]
    main, _ = counts.most_common(1)[0]
    spec = d.spec
    out: list[str] = []
    # checks run memory -> TPOT -> TTFT -> policy: the furthest stage any option reached is the decisive one
    if counts.get(POLICY):
        out.append(at(("deployments", i, "policies"),
                      f"deployment {name}: options that meet the SLOs exist, but its policies exclude all of them "
                      f"({counts[POLICY]} options, e.g. {dc.examples[POLICY]}); widen the policy or add providers/regions "
                      f"it allows"))
    elif counts.get(SLO_TTFT):
        out.append(at(("deployments", i, "slo", "ttft_p95_ms"),
                      f"deployment {name}: no offering answers within TTFT {spec.slo.ttft_p95_ms:g} ms from the users "
                      f"(e.g. {dc.examples[SLO_TTFT]}); raise ttft_p95_ms or add regions near the users"))
    elif counts.get(SLO_TPOT):
        best = _best_achievable(model, spec)
        tail = f"; the fastest is {best}" if best else f" (e.g. {dc.examples[SLO_TPOT]})"
        out.append(at(("deployments", i, "slo", "tpot_p95_ms"),
                      f"deployment {name}: TPOT {spec.slo.tpot_p95_ms:g} ms is below what any offered GPU reaches for "
                      f"{getattr(model, 'name', spec.model)}{tail}; raise tpot_p95_ms or allow faster GPUs/quantization"))
    elif counts.get(MEMORY):
        out.append(at(("deployments", i, "model"),
                      f"deployment {name}: no offered GPU configuration fits {getattr(model, 'name', spec.model)} with "
                      f"quantization {', '.join(spec.quantization)} (e.g. {dc.examples[MEMORY]}); allow a smaller "
                      f"quantization or providers with larger GPUs"))
    if not out:
        out.append(at(("deployments", i), f"deployment {name}: no candidate ({main}: {dc.examples.get(main, '')})"))
    return out


def _best_achievable(model: ModelArch | None, spec: Deployment) -> str | None:
    from orchestrator.perf import best_achievable

    try:
        a = best_achievable(model, spec.quantization, spec.traffic.input_tokens, spec.traffic.output_tokens)
    except Exception:  # noqa: BLE001 - a hint, never a failure
        return None
    describe = getattr(a, "describe", None)
    return describe() if callable(describe) else f"{a.tpot_ms:.0f} ms on {a.gpus}×{a.gpu} ({a.quantization})"


def _alone(d: DeploymentInput, i: int, at: Any, objective: str) -> list[str]:
    out: list[str] = []
    for s, (region, _share) in enumerate(d.sources):
        best = min(((d.rtt_ms[s][k] + c.ttft_ms, k) for k, c in enumerate(d.candidates)), default=None)
        if best is not None and best[0] > d.ttft_slo_ms:
            c = d.candidates[best[1]]
            out.append(at(("deployments", i, "slo", "ttft_p95_ms"),
                          f"deployment {d.name}: users in {region} cannot be answered within TTFT {d.ttft_slo_ms:g} ms: "
                          f"the best is {c.region} with RTT {d.rtt_ms[s][best[1]]:.0f} ms + TTFT {c.ttft_ms:.0f} ms = "
                          f"{best[0]:.0f} ms; raise ttft_p95_ms to {best[0]:.0f} or allow a region nearer {region}"))
    if out:
        return out
    rows = [p for p in d.policies if getattr(p, "adds_rows", False)]
    for p in rows:
        rest = [q for q in d.policies if q is not p]
        trial = dataclasses.replace(d, policies=rest)
        sol = solve(SolverInput([trial], [], []), "cost", tie_break=False, time_limit=10)
        if sol.ok:
            need = sol.values["cost"]
            out.append(at(p.declared_at(i), f"deployment {d.name}: policy {p.name} ({p.kind}) cannot be met{p.relax_hint(need)}"))
    return out or [at(("deployments", i), f"deployment {d.name}: no feasible placement on its own")]
