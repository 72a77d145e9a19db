"""From a loaded deployment file and a catalog to the solver's plain numbers (SolverInput).

Egress accounting (stated, since clouds differ):
- data: each data source's gb_per_month moves once to every serving region a deployment uses, priced by
  ``transfer_usd_per_gb(data region, serving region)`` (same region free; same cloud by continent pair;
  across clouds the source's internet price).
- the user's own weights count as data (orchestrator/own_models.py ``moved_data``): a ``checkpoint:`` with a region
  (its size_gb, default the base model's weights at bf16) and each LoRA adapter with a region (its size from its
  rank) are copied once per month to every serving region, priced as above: one copy per serving region per
  month, however many replicas the region runs (they pull from a copy in their region).
- responses: output tokens x 4 bytes per request x requests per month, from the serving region to the
  users: the transfer price when the users' region is in the serving cloud (free in the same region), the
  serving provider's internet egress otherwise (tier at the deployment's monthly volume). Prompts are
  ingress: free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.candidates import ON_DEMAND, ONPREM_PROVIDERS, SPOT, CandidateRows, DeploymentCandidates, OfferingTable, build_candidates
from orchestrator.catalog.types import HOURS_PER_MONTH, Region
from orchestrator.errors import UserError
from orchestrator.solver.problem import SECONDS_PER_MONTH, DeploymentInput, ResourceLimit, SolverInput
from policies.assign import policies_for

BYTES_PER_OUTPUT_TOKEN = 4.0  # ~4 characters of UTF-8 text per token (OpenAI tokenizer rule of thumb)
ANYWHERE = "*"  # pseudo user region when a deployment names no users and no data
BLOCK = 512  # candidates per block of the cross-region dominance check (bounds its memory)


@dataclass
class Inputs:
    problem: SolverInput
    candidates: dict[str, DeploymentCandidates]
    models: dict[str, Any]
    policies: dict[str, list[Any]]  # deployment -> policies applied
    global_policies: list[Any] = field(default_factory=list)
    region_of: Callable[[str], Region | None] | None = None


def default_estimator() -> Callable[..., list[Any]]:
    from orchestrator.perf import estimate_batch

    return estimate_batch


def build_inputs(loaded: Any, catalog: Any, *, estimate_batch: Callable[..., list[Any]] | None = None,
                 objective: str = "cost", prune: bool = True,
                 on_deployment: Callable[[DeploymentInput], None] | None = None) -> Inputs:
    """The solver's input from a loaded spec and a catalog. ``on_deployment`` is called with each deployment's
    input as soon as it is complete (its candidates numbered as in the whole input), before the next is built."""
    from orchestrator.catalog.regions import all_regions, rtt_ms
    from orchestrator.model_registry import resolve_model
    from orchestrator.own_models import lora_load
    from orchestrator.perf.lora import with_lora

    spec = loaded.spec
    est = estimate_batch or default_estimator()
    regions: dict[str, Region] = dict(catalog.regions)

    def region_of(rid: str) -> Region | None:
        return regions.get(rid) or all_regions().get(rid)

    rtt_memo: dict[tuple[str, str], float] = {}

    def rtt(a: str, b: str) -> float:
        if (a, b) not in rtt_memo:
            ra, rb = region_of(a), region_of(b)
            if a == ANYWHERE:
                rtt_memo[(a, b)] = 0.0
            elif ra is None or rb is None:  # local:this-machine and unlocated sites: co-located with the users
                rtt_memo[(a, b)] = 1.0
            else:
                rtt_memo[(a, b)] = rtt_ms(ra, rb)
        return rtt_memo[(a, b)]

    pue, carbon = _site_factors(spec)
    limits = _limits(spec, catalog)
    quota_limits = [lim for lim in limits if lim.kind == "quota"]

    limited_cache: dict[tuple[str, str, str], bool] = {}

    def limited(c: Any) -> bool:  # quotas match on provider, region and GPU only
        key = (c.provider, c.region, c.gpu)
        if key not in limited_cache:
            limited_cache[key] = any(lim.match(c) for lim in quota_limits)
        return limited_cache[key]

    per_dep, glob = policies_for(spec)
    deps: list[DeploymentInput] = []
    cands: dict[str, DeploymentCandidates] = {}
    models: dict[str, Any] = {}
    numbered = 0
    offerings = OfferingTable(catalog.offerings, catalog.gpus)
    for d in spec.deployments:
        model = with_lora(resolve_model(d.model, loaded.base_dir), lora_load(d, loaded.base_dir))
        models[d.name] = model
        sources = _sources(d)
        costs = RegionCosts(d, sources, rtt, region_of, catalog.egress, model)

        def region_prune(rows: CandidateRows, costs: RegionCosts = costs) -> np.ndarray:
            _, resp, data = costs.arrays(rows.region)
            return ~beaten_across_regions(rows, data, resp, carbon=objective == "carbon")

        dc = build_candidates(
            d, model, offerings, catalog.gpus, sources, rtt, per_dep[d.name],
            estimate_batch=est, regions=regions, pue_by_region=pue, carbon_by_region=carbon, limited=limited,
            exact_ttft=objective == "latency", carbon=objective == "carbon", prune=prune,
            region_prune=region_prune if objective != "latency" else None,
        )
        cands[d.name] = dc
        deps.append(_deployment_input(d, dc, sources, costs, per_dep[d.name]))
        for c in deps[-1].candidates:
            c.idx = numbered
            numbered += 1
        if on_deployment is not None:
            on_deployment(deps[-1])
    return Inputs(SolverInput(deps, limits, glob, renumber=False), cands, models, per_dep, glob, region_of)


def prune_across_regions(d: DeploymentInput, limited: Callable[[Any], bool], *, carbon: bool = False) -> DeploymentInput:
    """``d`` without the candidates ``beaten_across_regions`` finds (build_inputs prunes this way before it
    builds the DeploymentInput)."""
    cands = d.candidates
    if len(cands) < 2:
        return d
    rows = CandidateRows(
        np.array([c.region for c in cands]), np.array([c.market for c in cands]), np.array([c.usd_per_unit_hour for c in cands]),
        np.minimum(np.array([c.rps_per_unit for c in cands]), d.required_rps), np.array([c.reach for c in cands], np.int64),
        np.array([c.carbon_g_per_unit_hour for c in cands]), np.array([c.market == "onprem" or limited(c) for c in cands]))
    data = np.array([d.data_egress_usd_month.get(c.region, 0.0) for c in cands])
    resp = np.asarray(d.response_usd_per_rps_month, float).reshape(len(d.sources), len(cands))
    drop = beaten_across_regions(rows, data, resp, carbon=carbon)
    return d if not drop.any() else d.subset(np.nonzero(~drop)[0].tolist())


def beaten_across_regions(rows: CandidateRows, data_usd_month: np.ndarray, resp: np.ndarray, *, carbon: bool = False) -> np.ndarray:
    """Which candidates one in another region beats, counting that region's one-off data egress.

    B (region r') beats A (region r) when k = ceil(cap A / cap B) B units plus r' data egress (once) cost
    no more than one A unit, B answers every user region A answers at no higher response egress (``resp``:
    [user region, candidate] $/month per req/s), and no quota counts B's GPUs (A's may: dropping A only
    loosens them). Swapping every A unit for k B units then keeps the plan feasible at no higher cost. A spot
    candidate needs such dominators in two other regions (its spread counts regions). Not for the latency
    objective (RTT differs by region).
    """
    n = len(rows.region)
    drop = np.zeros(n, bool)
    if n < 2:
        return drop
    unit, cap, reach, market = rows.unit_usd_per_hour, rows.capacity, rows.reach, rows.market
    fixed = np.asarray(data_usd_month, float) / HOURS_PER_MONTH  # $/h
    eps = 1 + 1e-9
    _, reg_code = np.unique(rows.region, return_inverse=True)

    def beats(b: np.ndarray, a: np.ndarray) -> np.ndarray:
        """[b, a]: b (another region) beats a on every count. Where two would beat each other (equal prices
        within eps), only the one listed first does, so that what is dropped always has a kept dominator."""
        k = np.ceil(cap[a][None, :] / cap[b][:, None] - 1e-9)  # B units per A unit
        blk = ((reg_code[b][:, None] != reg_code[a][None, :]) & (k * unit[b][:, None] + fixed[b][:, None] <= unit[a][None, :] * eps)
               & ((reach[b][:, None] & reach[a][None, :]) == reach[a][None, :]))
        blk &= (unit[b][:, None] * eps < unit[a][None, :]) | (b[:, None] < a[None, :])
        for s in range(resp.shape[0]):
            blk &= resp[s][b][:, None] <= resp[s][a][None, :] + 1e-12
        if carbon:
            blk &= k * rows.co2[b][:, None] <= rows.co2[a][None, :] * eps
        return blk

    def dominated(b: np.ndarray, a: np.ndarray, two_regions: bool) -> np.ndarray:
        """For each of ``a``: beaten by one of ``b`` (by two in different regions with ``two_regions``).
        Blocks of the cheapest first: only a B whose unit plus data egress costs no more than A's unit can
        beat A, so each block of A meets a prefix of the B sorted by that sum."""
        out = np.zeros(len(a), bool)
        if len(b) == 0 or len(a) == 0:
            return out
        b = b[np.argsort(unit[b] + fixed[b], kind="stable")]
        key = (unit + fixed)[b]
        order = np.argsort(unit[a], kind="stable")
        for lo in range(0, len(a), BLOCK):
            cols = order[lo:lo + BLOCK]
            nb = int(np.searchsorted(key, unit[a[cols]].max() * eps, side="right"))
            if nb == 0:
                continue
            blk = beats(b[:nb], a[cols])
            if two_regions:
                first = np.argmax(blk, axis=0)
                blk &= reg_code[b[:nb]][:, None] != reg_code[b[:nb]][first][None, :]
            out[cols] = blk.any(axis=0)
        return out

    # Per market (on-prem is never dominated). An on-demand candidate needs one dominator: if that one is
    # dominated too, the chain ends at a kept candidate at least as good on every count (k1 C units replace
    # a B unit, k2 B units an A unit: k1 k2 C units plus C's region's data egress cost no more than k2 B units,
    # so no more than one A unit). A spot candidate needs undominated dominators in two other regions, so a
    # spread over failure domains survives the swap.
    for m in (ON_DEMAND, SPOT):
        a = np.nonzero(market == m)[0]  # ascending, as ``beats`` breaks ties by position
        b = a[~rows.counted[a]]
        hit = dominated(b, a, two_regions=False)
        if m == SPOT and hit.any():
            free = b[~hit[np.searchsorted(a, b)]]  # undominated dominators
            hit[hit] = dominated(free, a[hit], two_regions=True)
        drop[a] = hit
    return drop


def _sources(d: Any) -> list[tuple[str, float]]:
    if d.traffic.sources:
        return [(s.region, s.share) for s in d.traffic.sources]
    if d.data:
        total = sum(x.gb_per_month for x in d.data) or len(d.data)
        return [(x.region, (x.gb_per_month or 1.0) / total if total else 1.0 / len(d.data)) for x in d.data]
    return [(ANYWHERE, 1.0)]


def _site_factors(spec: Any) -> tuple[dict[str, float], dict[str, float]]:
    pue: dict[str, float] = {}
    carbon: dict[str, float] = {}
    onprem = spec.providers.onprem if spec.providers else None
    for site in onprem.sites if onprem else []:
        rid = f"onprem:{site.name}"
        pue[rid] = site.cost.pue
        if site.carbon_g_per_kwh is not None:
            carbon[rid] = site.carbon_g_per_kwh
    return pue, carbon


class RegionCosts:
    """One deployment's figures per serving region, each computed once: RTT and response egress ($/month per
    req/s) from each user region, and the one-off data egress ($/month)."""

    def __init__(self, d: Any, sources: list[tuple[str, float]], rtt: Callable[[str, str], float],
                 region_of: Callable[[str], Region | None], egress: Any, model: Any = None) -> None:
        from orchestrator.own_models import moved_data

        self.d, self.sources, self.rtt, self.region_of, self.egress = d, sources, rtt, region_of, egress
        # (region, GB/month) moved to every serving region: data: sources, then the checkpoint and adapters
        self.moved = [(src.region, src.gb_per_month) for src in d.data] + moved_data(d, model)
        t = d.traffic
        self.gb_per_req = t.output_tokens * BYTES_PER_OUTPUT_TOKEN / 1e9
        self.monthly_gb = self.gb_per_req * t.requests_per_second * SECONDS_PER_MONTH
        self._memo: dict[str, tuple[list[float], list[float], float]] = {}

    def of(self, region: str) -> tuple[list[float], list[float], float]:
        if region not in self._memo:
            dst = self.region_of(region)
            provider = dst.provider if dst is not None else region.split(":", 1)[0]
            rtt = [self.rtt(s, region) for s, _ in self.sources]
            resp = [_response_price(self.egress, dst, self.region_of(s), provider, self.monthly_gb) * self.gb_per_req * SECONDS_PER_MONTH
                    for s, _ in self.sources]
            data = 0.0
            for src_region, gb in self.moved:
                sr = self.region_of(src_region)
                if sr is None or dst is None or sr.id == dst.id or gb <= 0:
                    continue
                data += gb * _safe(lambda sr=sr: self.egress.transfer_usd_per_gb(sr, dst))
            self._memo[region] = (rtt, resp, data)
        return self._memo[region]

    def arrays(self, regions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rtt [user region, i], response $ [user region, i], data $ [i]) for the i-th of ``regions``."""
        uniq, inv = np.unique(np.asarray(regions, dtype=object).astype(str), return_inverse=True)
        per = [self.of(str(r)) for r in uniq]
        n_s = len(self.sources)
        rtt = np.array([p[0] for p in per], float).reshape(len(uniq), n_s).T[:, inv]
        resp = np.array([p[1] for p in per], float).reshape(len(uniq), n_s).T[:, inv]
        data = np.array([p[2] for p in per], float)[inv]
        return rtt, resp, data


def _deployment_input(d: Any, dc: DeploymentCandidates, sources: list[tuple[str, float]], costs: RegionCosts,
                      policies: list[Any]) -> DeploymentInput:
    t = d.traffic
    regions = [c.region for c in dc.candidates]
    rtt, resp, data = costs.arrays(regions) if regions else (np.zeros((len(sources), 0)),) * 2 + (np.zeros(0),)
    data_cost = {r: float(usd) for r, usd in zip(regions, data.tolist()) if usd > 0}
    return DeploymentInput(
        name=d.name, rps=t.requests_per_second, headroom=t.headroom, sources=sources, ttft_slo_ms=d.slo.ttft_p95_ms,
        candidates=dc.candidates, rtt_ms=rtt.tolist(), response_usd_per_rps_month=resp.tolist(), data_egress_usd_month=data_cost,
        policies=policies, spec=d, tokens_per_request=float(t.input_tokens + t.output_tokens),
    )


def _safe(fn: Callable[[], float]) -> float:
    try:
        return float(fn())
    except UserError:  # a provider with no tariff (e.g. local): no egress charge
        return 0.0


def _response_price(egress: Any, serving: Region | None, user: Region | None, provider: str, monthly_gb: float) -> float:
    if serving is None:
        return 0.0
    if provider in ONPREM_PROVIDERS or (user is not None and user.provider == serving.provider):
        return _safe(lambda: egress.transfer_usd_per_gb(serving, user)) if user is not None else 0.0
    return _safe(lambda: egress.internet_usd_per_gb(provider, monthly_gb))


def _limits(spec: Any, catalog: Any) -> list[ResourceLimit]:
    from orchestrator.catalog.gpus import canonical_gpu_name

    out: list[ResourceLimit] = []
    for q in getattr(catalog, "quotas", []) or []:
        gpu = canonical_gpu_name(q.gpu) if q.gpu else None
        reg = q.region

        def match(c: Any, p=q.provider, reg=reg, gpu=gpu) -> bool:
            return (
                c.provider == p
                and (reg is None or c.region == reg or c.region.split(":", 1)[1] == reg)
                and (gpu is None or c.gpu == gpu)
            )

        name = f"{q.provider} quota: {q.max_gpus} {gpu or 'GPU'}s" + (f" in {reg}" if reg else "")
        out.append(ResourceLimit(name, "quota", float(q.max_gpus), match, _quota_path(spec, q)))
    inv: dict[tuple[str, str], int] = {}
    for o in catalog.offerings:
        if o.max_gpus is not None:
            inv[(o.region, o.gpu)] = max(inv.get((o.region, o.gpu), 0), o.max_gpus)
    for (region, gpu), n in sorted(inv.items()):

        def match_site(c: Any, region=region, gpu=gpu) -> bool:
            return c.region == region and c.gpu == gpu

        out.append(ResourceLimit(f"{region} inventory: {n} {gpu}", "inventory", float(n), match_site, _site_path(spec, region, gpu)))
    return out


def _quota_path(spec: Any, q: Any) -> tuple:
    prov = getattr(spec.providers, q.provider, None) if spec.providers else None
    for i, sq in enumerate(getattr(prov, "quotas", []) or []):
        if sq.max_gpus == q.max_gpus:
            return ("providers", q.provider, "quotas", i, "max_gpus")
    return ("providers", q.provider)


def _site_path(spec: Any, region: str, gpu: str) -> tuple:
    onprem = spec.providers.onprem if spec.providers else None
    from orchestrator.catalog.gpus import canonical_gpu_name

    for i, site in enumerate(onprem.sites if onprem else []):
        if f"onprem:{site.name}" == region:
            for key in site.gpus:
                if canonical_gpu_name(key) == gpu:
                    return ("providers", "onprem", "sites", i, "gpus", key)
            return ("providers", "onprem", "sites", i, "gpus")
    return ("providers",)
