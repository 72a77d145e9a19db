"""Reading a solution back: replica groups, per-deployment figures, and why this plan and not another."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator.compat import DTYPE
from orchestrator.fmt import signed_usd
from orchestrator.placement.candidates import (
    HOURS_PER_MONTH,
    REASON_TEXT,
    SPOT,
    Candidate,
    DeploymentCandidates,
    cover_usd,
)
from orchestrator.plan import ReplicaGroup
from orchestrator.solver.problem import DeploymentInput
from orchestrator.solver.solve import Solution


@dataclass
class DeploymentResult:
    name: str
    groups: list[ReplicaGroup]
    chosen: list[tuple[Candidate, int]]  # (candidate, units)
    compute_usd_per_hour: float
    egress_usd_per_month: float
    ttft_p95_ms: float
    tpot_p95_ms: float
    capacity_rps: float
    usd_per_million_tokens: float
    ttft_mean_ms: float = 0.0  # traffic-weighted, round trip included: what the latency objective minimizes

    @property
    def usd_per_month(self) -> float:
        return self.compute_usd_per_hour * HOURS_PER_MONTH + self.egress_usd_per_month

    @property
    def usd_per_hour(self) -> float:
        """All-in: compute plus egress spread over the month's hours."""
        return self.compute_usd_per_hour + self.egress_usd_per_month / HOURS_PER_MONTH


def group_of(c: Candidate, units: int, traffic: dict[str, float] | None = None) -> ReplicaGroup:
    return ReplicaGroup(
        provider=c.provider, region=c.region, instance_type=c.instance_type, gpu=c.gpu,
        gpus_per_replica=c.gpus_per_replica, instances_per_replica=c.instances_per_replica,
        tensor_parallel=c.tensor_parallel, pipeline_parallel=c.pipeline_parallel, quantization=c.quantization,
        market=c.market, count=units * c.replicas_per_unit, usd_per_hour=round(units * c.usd_per_unit_hour, 4),
        list_usd_per_hour=round(units * c.instances_per_unit * c.list_usd_per_instance_hour, 4),
        capacity_rps=round(c.rps_per_replica, 4), ttft_ms=round(c.ttft_ms, 2), tpot_ms=round(c.tpot_ms, 2),
        instances=units * c.instances_per_unit, gpus_per_instance=c.offering.gpu_count,
        traffic={k: round(v, 6) for k, v in (traffic or {}).items()},
    )


def result_for(sol: Solution, d: DeploymentInput) -> DeploymentResult:
    part = sol.part(d.name)
    b = part.builder
    assert b is not None and part.x is not None
    x = part.x
    chosen = [(c, sol.units[c]) for c in d.candidates if sol.units.get(c, 0) > 0]
    chosen.sort(key=lambda cu: (-cu[1] * cu[0].usd_per_unit_hour, cu[0].region))
    compute = sum(c.usd_per_unit_hour * u for c, u in chosen)
    egress = 0.0
    ttft = 0.0
    weighted, served = 0.0, 0.0
    flows: dict[Candidate, dict[str, float]] = {}
    for c in d.candidates:
        for s, col in b.traffic_cols.get(c, []):
            if x[col] > 1e-9:
                egress += b.obj["egress"][col] * x[col]
                ttft = max(ttft, _rtt(d, s, c) + c.ttft_ms)
                weighted += (_rtt(d, s, c) + c.ttft_ms) * float(x[col])
                served += float(x[col])
                to = flows.setdefault(c, {})
                to[d.sources[s][0]] = to.get(d.sources[s][0], 0.0) + float(x[col])
    for (dn, _r), col in b.region_col.items():
        if dn == d.name and x[col] > 0.5:
            egress += b.obj["egress"][col]
    tokens_per_hour = d.rps * 3600.0 * d.tokens_per_request
    usd_h = compute + egress / HOURS_PER_MONTH
    return DeploymentResult(
        name=d.name,
        groups=[group_of(c, u, flows.get(c)) for c, u in chosen],
        chosen=chosen,
        compute_usd_per_hour=compute,
        egress_usd_per_month=egress,
        ttft_p95_ms=ttft,
        tpot_p95_ms=max((c.tpot_ms for c, _ in chosen), default=0.0),
        capacity_rps=sum(c.rps_per_unit * u for c, u in chosen),
        usd_per_million_tokens=usd_h / tokens_per_hour * 1e6 if tokens_per_hour else 0.0,
        ttft_mean_ms=weighted / served if served else 0.0,
    )


def _rtt(d: DeploymentInput, s: int, c: Candidate) -> float:
    pos = _position(d)
    return d.rtt_ms[s][pos[c]]


def _position(d: DeploymentInput) -> dict[Candidate, int]:
    cache = getattr(d, "_pos", None)
    if cache is None or len(cache) != len(d.candidates):
        cache = {c: i for i, c in enumerate(d.candidates)}
        d._pos = cache  # type: ignore[attr-defined]
    return cache


def describe_groups(groups: list[ReplicaGroup]) -> str:
    return " + ".join(
        f"{g.count}× {g.gpus_per_replica}×{g.gpu} {g.quantization} {g.market} on {g.instance_type} in {g.region}" for g in groups
    )


def single_candidate_cost(d: DeploymentInput, cands: list[Candidate]) -> tuple[float, Candidate] | None:
    """Cheapest $/h of serving all the demand with one candidate (ignoring routing): for provider comparisons."""
    best: tuple[float, Candidate] | None = None
    for c in cands:
        usd = cover_usd(c, d.required_rps)
        if best is None or usd < best[0]:
            best = (usd, c)
    return best


def explain(
    d: DeploymentInput,
    dc: DeploymentCandidates,
    res: DeploymentResult,
    sol: Solution,
    *,
    objective: str,
    runner_up: tuple[list[ReplicaGroup], DeploymentResult] | None,
    all_providers: set[str],
) -> dict[str, Any]:
    """The plan's account of itself for one deployment (DeploymentPlan.explanation)."""
    out: dict[str, Any] = {"chosen": describe_groups(res.groups)}
    out["candidates"] = {"feasible": len(dc.candidates), "pruned_dominated": dc.pruned,
                         "rejected": {p: dict(c) for p, c in dc.rejected.items()}}
    if runner_up is not None:
        groups, r = runner_up
        out["runner_up"] = {
            "config": describe_groups(groups),
            "extra_usd_per_hour": round(r.usd_per_hour - res.usd_per_hour, 4),
            "extra_ttft_ms": round(r.ttft_p95_ms - res.ttft_p95_ms, 1),
            "extra_egress_usd_per_month": round(r.egress_usd_per_month - res.egress_usd_per_month, 2),
        }
    else:
        out["runner_up"] = None
    out["binding"] = _binding(d, dc, res, sol)
    out["filtered"] = _filtered(dc)
    out["providers"] = _providers(d, dc, res, sol, all_providers)
    out["accelerators"] = _accelerators(d, dc)
    return out


def _accelerators(d: DeploymentInput, dc: DeploymentCandidates) -> dict[str, dict[str, Any]]:
    """Each accelerator on equal terms, cheapest first: its best option serving the whole demand alone at the SLO
    (routing and egress aside), as $/h and $ per 1M tokens of that demand."""
    best: dict[str, tuple[float, Candidate]] = {}
    for c in [*d.candidates, *dc.dominated_gpu.values()]:
        usd = cover_usd(c, d.required_rps)
        if c.gpu not in best or usd < best[c.gpu][0]:
            best[c.gpu] = (usd, c)
    tokens_per_hour = d.rps * 3600.0 * d.tokens_per_request
    out = {}
    for gpu, (usd, c) in sorted(best.items(), key=lambda kv: (kv[1][0], kv[0])):
        out[gpu] = {"usd_per_hour": round(usd, 4),
                    "usd_per_million_tokens": round(usd / tokens_per_hour * 1e6, 4) if tokens_per_hour else None,
                    "best": _fleet(c, usd)}
    return out


def _binding(d: DeploymentInput, dc: DeploymentCandidates, res: DeploymentResult, sol: Solution) -> list[str]:
    notes: list[str] = []
    used_regions = {c.region for c, _ in res.chosen}
    used_gpu = {(c.region, c.gpu) for c, _ in res.chosen}
    has_spot = any(c.market == SPOT for c, _ in res.chosen)
    for kind, label, dep in sol.binding:
        if kind == "spot_spread" or (kind == "spot_floor" and not has_spot):
            continue  # a floor with no spot above it holds trivially (0 >= 0): it bound nothing
        if dep not in (None, d.name):
            continue
        if kind == "limit" and not any(r in label and g in label for r, g in used_gpu) and not any(r.split(":")[0] in label for r in used_regions):
            continue
        notes.append(f"{kind}: {label} (at its limit)")
    if res.ttft_p95_ms >= 0.9 * d.ttft_slo_ms:
        notes.append(f"SLO TTFT: predicted {res.ttft_p95_ms:.0f} ms of {d.ttft_slo_ms:g} ms (incl. RTT)")
    slo_tpot = getattr(getattr(d.spec, "slo", None), "tpot_p95_ms", None)
    if slo_tpot and res.tpot_p95_ms >= 0.9 * slo_tpot:
        notes.append(f"SLO TPOT: predicted {res.tpot_p95_ms:.1f} ms of {slo_tpot:g} ms sets the batch size")
    return notes


def _why_not(d: DeploymentInput, c: Candidate, sol: Solution) -> str:
    """Why a candidate cheaper on its own is not the plan: the first rule that explains it (issue 20, item 10)."""
    # a preference is solved first (lexicographically): it explains the choice before the SLOs do
    note = next((n for q in d.policies if q.prefers and (n := q.explain_note(d.spec, c))), None)
    if note:
        return note
    pos = _position(d).get(c)
    if pos is not None:
        far = [src for s, (src, share) in enumerate(d.sources)
               if share > 0 and d.rtt_ms[s][pos] + c.ttft_ms > d.ttft_slo_ms + 1e-9]
        if far:
            return (f"it cannot answer users in {', '.join(far)} within the TTFT SLO of {d.ttft_slo_ms:g} ms "
                    "(round trip included)")
    note = next((n for q in d.policies if not q.prefers and (n := q.explain_note(d.spec, c))), None)
    if note:
        return note
    limits = [label for kind, label, _ in sol.binding if kind == "limit" and c.provider in label]
    if limits:
        return f"{limits[0]} is at its limit"
    return "the whole plan's limits (quotas, inventory, budget, other deployments) rule it out"


def _fleet(c: Candidate, usd: float) -> str:
    """"N × <unit> at $x/h = $y/h": a fleet's cost, not a unit's (issue 20, item 9)."""
    from orchestrator.catalog.freshness import is_stale

    n = max(1, round(usd / c.usd_per_unit_hour)) if c.usd_per_unit_hour > 0 else 1
    stale = f", a stale price of {c.offering.as_of}" if c.offering.as_of and is_stale(str(c.offering.as_of)) else ""
    return f"{n} × {c.describe()} at ${c.usd_per_unit_hour:,.2f}/h = ${usd:,.2f}/h{stale}"


def _filtered(dc: DeploymentCandidates) -> list[str]:
    rejected: dict[str, int] = defaultdict(int)
    for counts in dc.rejected.values():
        for reason, n in counts.items():
            rejected[reason] += n
    return [f"{REASON_TEXT.get(r, r)}: {n} options (e.g. {dc.examples.get(r, '')})" for r, n in sorted(rejected.items(), key=lambda t: -t[1])]


def _providers(d: DeploymentInput, dc: DeploymentCandidates, res: DeploymentResult, sol: Solution, all_providers: set[str]) -> dict[str, str]:
    chosen = {c.provider for c, _ in res.chosen}
    out: dict[str, str] = {}
    by_provider: dict[str, list[Candidate]] = defaultdict(list)
    for c in d.candidates:
        by_provider[c.provider].append(c)
    quota_hit = {label for kind, label, _ in sol.binding if kind == "limit"}
    for p in sorted(all_providers | dc.providers_seen):
        if p in chosen:
            out[p] = "chosen"
            continue
        if not by_provider.get(p) and p in dc.dominated:
            c = dc.dominated[p]
            usd = cover_usd(c, d.required_rps)
            out[p] = (f"price: {signed_usd(usd - res.compute_usd_per_hour, '/h')} vs chosen (every option is dominated by a cheaper "
                      f"one; best: {_fleet(c, usd)})")
            continue
        if by_provider.get(p):
            best = single_candidate_cost(d, by_provider[p])
            hit = [q for q in quota_hit if q.startswith(p)]
            if hit:
                out[p] = f"quota: {hit[0]} is used up"
            elif best is not None:
                usd, c = best
                diff = usd - res.compute_usd_per_hour
                if diff >= 0:
                    out[p] = f"price: {signed_usd(diff, '/h')} vs chosen (best: {_fleet(c, usd)})"
                else:
                    why = _why_not(d, c, sol)
                    out[p] = f"${-diff:,.2f}/h cheaper alone ({c.describe()}), not chosen: {why}"
            continue
        counts = dc.rejected.get(p)
        if not counts:
            out[p] = "no offerings in the selected regions"
            continue
        # a dtype verdict removes nothing (the option is planned as fp16), so it is not one of the reasons
        top = [(r, n) for r, n in counts.most_common() if r != DTYPE] or counts.most_common()
        parts = [f"{REASON_TEXT.get(r, r)} ({n})" for r, n in top if r != DTYPE]
        if counts.get(DTYPE):
            parts.append(f"{counts[DTYPE]} option(s) were planned as fp16 (bf16 needs compute capability >= 8.0)")
        ex = dc.provider_examples.get(p, {}).get(top[0][0], "")  # this provider's own example
        out[p] = "; ".join(parts) + (f" — e.g. {ex}" if ex else "")
    return out
