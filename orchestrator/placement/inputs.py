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
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.catalog.types import ONPREM_PROVIDERS, Region
from orchestrator.errors import UserError
from orchestrator.placement.candidates import (
    CandidateContext,
    CandidateRequest,
    DeploymentCandidates,
    build_candidates,
)
from orchestrator.placement.offerings import OfferingTable
from orchestrator.placement.pruning import CandidateRows, beaten_across_regions
from orchestrator.solver.problem import (
    SECONDS_PER_MONTH,
    DeploymentInput,
    ResourceLimit,
    SolverInput,
)
from policies.assign import policies_for

if TYPE_CHECKING:
    from orchestrator.catalog.egress import EgressTariffs
    from orchestrator.catalog.load import Catalog, QuotaRule
    from orchestrator.model_arch import ModelArch
    from orchestrator.solver.problem import Candidate
    from orchestrator.spec.loader import LoadedSpec
    from orchestrator.spec.models import Deployment, DeploymentFile
    from policies.base import Policy

BYTES_PER_OUTPUT_TOKEN = 4.0  # ~4 characters of UTF-8 text per token (OpenAI tokenizer rule of thumb)
ANYWHERE = "*"  # pseudo user region when a deployment names no users and no data


@dataclass
class Inputs:
    problem: SolverInput
    candidates: dict[str, DeploymentCandidates]
    models: dict[str, ModelArch]
    policies: dict[str, list[Policy]]  # deployment -> policies applied
    global_policies: list[Policy] = field(default_factory=list)
    region_of: Callable[[str], Region | None] | None = None


def default_estimator() -> Callable[..., list[Any]]:
    from orchestrator.perf import estimate_batch

    return estimate_batch


def build_inputs(loaded: LoadedSpec, catalog: Catalog, *, estimate_batch: Callable[..., list[Any]] | None = None,
                 objective: str = "cost", prune: bool = True,
                 on_deployment: Callable[[DeploymentInput], None] | None = None) -> Inputs:
    """The solver's input from a loaded spec and a catalog. ``on_deployment`` is called with each deployment's
    input as soon as it is complete (the same Candidate objects as the whole input), before the next is built."""
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

    def limited(c: Candidate) -> bool:  # quotas match on provider, region and GPU only
        key = (c.provider, c.region, c.gpu)
        if key not in limited_cache:
            limited_cache[key] = any(lim.match(c) for lim in quota_limits)
        return limited_cache[key]

    per_dep, glob = policies_for(spec)
    deps: list[DeploymentInput] = []
    cands: dict[str, DeploymentCandidates] = {}
    models: dict[str, ModelArch] = {}
    ctx = CandidateContext(
        OfferingTable(catalog.offerings, catalog.gpus), catalog.gpus, rtt, est, regions=regions, pue_by_region=pue,
        carbon_by_region=carbon, prune=prune, limited=limited, exact_ttft=objective == "latency", carbon=objective == "carbon",
    )
    for d in spec.deployments:
        model = with_lora(resolve_model(d.model, loaded.base_dir), lora_load(d, loaded.base_dir))
        models[d.name] = model
        sources = _sources(d)
        costs = RegionCosts(d, sources, rtt, region_of, catalog.egress, model)

        def region_prune(rows: CandidateRows, costs: RegionCosts = costs) -> np.ndarray:
            _, resp, data = costs.arrays(rows.region)
            return ~beaten_across_regions(rows, data, resp, carbon=objective == "carbon")

        req = CandidateRequest(d, model, sources, per_dep[d.name], region_prune=region_prune if objective != "latency" else None)
        dc = build_candidates(req, ctx)
        cands[d.name] = dc
        deps.append(_deployment_input(d, dc, sources, costs, per_dep[d.name]))
        if on_deployment is not None:
            on_deployment(deps[-1])
    return Inputs(SolverInput(deps, limits, glob), cands, models, per_dep, glob, region_of)


def _sources(d: Deployment) -> list[tuple[str, float]]:
    if d.traffic.sources:
        return [(s.region, s.share) for s in d.traffic.sources]
    if d.data:
        total = sum(x.gb_per_month for x in d.data) or len(d.data)
        return [(x.region, (x.gb_per_month or 1.0) / total if total else 1.0 / len(d.data)) for x in d.data]
    return [(ANYWHERE, 1.0)]


def _site_factors(spec: DeploymentFile) -> tuple[dict[str, float], dict[str, float]]:
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

    def __init__(self, d: Deployment, sources: list[tuple[str, float]], rtt: Callable[[str, str], float],
                 region_of: Callable[[str], Region | None], egress: EgressTariffs, model: ModelArch | None = None) -> None:
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


def _deployment_input(d: Deployment, dc: DeploymentCandidates, sources: list[tuple[str, float]], costs: RegionCosts,
                      policies: list[Policy]) -> DeploymentInput:
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


def _response_price(egress: EgressTariffs, serving: Region | None, user: Region | None, provider: str, monthly_gb: float) -> float:
    if serving is None:
        return 0.0
    if provider in ONPREM_PROVIDERS or (user is not None and user.provider == serving.provider):
        return _safe(lambda: egress.transfer_usd_per_gb(serving, user)) if user is not None else 0.0
    return _safe(lambda: egress.internet_usd_per_gb(provider, monthly_gb))


def _limits(spec: DeploymentFile, catalog: Catalog) -> list[ResourceLimit]:
    from orchestrator.catalog.gpus import canonical_gpu_name

    out: list[ResourceLimit] = []
    for q in getattr(catalog, "quotas", []) or []:
        gpu = canonical_gpu_name(q.gpu) if q.gpu else None
        reg = q.region

        def match(c: Candidate, p=q.provider, reg=reg, gpu=gpu) -> bool:
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

        def match_site(c: Candidate, region=region, gpu=gpu) -> bool:
            return c.region == region and c.gpu == gpu

        out.append(ResourceLimit(f"{region} inventory: {n} {gpu}", "inventory", float(n), match_site, _site_path(spec, region, gpu)))
    return out


def _quota_path(spec: DeploymentFile, q: QuotaRule) -> tuple:
    prov = getattr(spec.providers, q.provider, None) if spec.providers else None
    for i, sq in enumerate(getattr(prov, "quotas", []) or []):
        if sq.max_gpus == q.max_gpus:
            return ("providers", q.provider, "quotas", i, "max_gpus")
    return ("providers", q.provider)


def _site_path(spec: DeploymentFile, region: str, gpu: str) -> tuple:
    onprem = spec.providers.onprem if spec.providers else None
    from orchestrator.catalog.gpus import canonical_gpu_name

    for i, site in enumerate(onprem.sites if onprem else []):
        if f"onprem:{site.name}" == region:
            for key in site.gpus:
                if canonical_gpu_name(key) == gpu:
                    return ("providers", "onprem", "sites", i, "gpus", key)
            return ("providers", "onprem", "sites", i, "gpus")
    return ("providers",)
