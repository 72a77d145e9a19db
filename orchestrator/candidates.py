"""Candidates: every (offering, GPUs per replica, quantization, market) that can serve a deployment.

A candidate's *unit* is what one buys: one instance (hosting gpu_count/g replicas when the replica
needs g GPUs and g divides the instance's GPUs), or, for multi-node replicas (g > gpu_count), the
g/gpu_count instances one replica spans (tensor parallel inside a node, pipeline parallel across).

Each rejected option is counted per provider and region with its reason, for the explanation.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from functools import cached_property
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.catalog.types import GPU, Offering, Region

HOURS_PER_MONTH = 730.0
# Power usage effectiveness of hyperscaler data centres, for cloud carbon: Google published a fleet PUE of 1.1
# for Q2 2021 (CNBC, 2022-04-13, https://www.cnbc.com/2022/04/13/google-data-center-goal-100percent-green-energy-by-2030.html,
# citing Google's efficiency page https://www.google.com/about/datacenters/efficiency/); the Uptime Institute 2021
# survey average for large data centres was 1.57 (same source). One figure, 1.1, for AWS, GCP and Azure (as of 2021-2022).
CLOUD_PUE = 1.1
ONPREM_PROVIDERS = ("onprem", "local")
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)

# Rejection categories (keys of DeploymentCandidates.rejected[...]).
MEMORY, SLO_TPOT, SLO_TTFT, POLICY, NO_PRICE, PARALLEL = "memory", "slo_tpot", "slo_ttft", "policy", "no_price", "parallelism"
REASON_TEXT = {
    MEMORY: "model does not fit in GPU memory",
    SLO_TPOT: "TPOT SLO not met",
    SLO_TTFT: "TTFT SLO not met from any user region (incl. network RTT)",
    POLICY: "excluded by policy",
    NO_PRICE: "no price",
    PARALLEL: "tensor parallel degree does not divide the attention heads",
}


@dataclass
class Candidate:
    deployment: str
    offering: Offering
    gpus_per_replica: int
    quantization: str
    market: str  # on_demand | spot | onprem
    rps_per_replica: float  # at the TPOT SLO
    ttft_ms: float  # p95 at the planned utilization, without network
    tpot_ms: float
    usd_per_instance_hour: float  # for this market
    grid_g_per_kwh: float = 0.0
    pue: float = CLOUD_PUE
    gpu_tdp_w: float = 0.0
    idx: int = -1  # position in the problem's candidate list, set by the solver input
    reach: int = -1  # bitmask of the user regions it can answer within the TTFT SLO (-1: all)

    @property
    def provider(self) -> str:
        return self.offering.provider

    @property
    def region(self) -> str:
        return self.offering.region

    @property
    def gpu(self) -> str:
        return self.offering.gpu

    @property
    def instance_type(self) -> str:
        return self.offering.instance_type

    @cached_property
    def instances_per_replica(self) -> int:
        return max(1, self.gpus_per_replica // self.offering.gpu_count)

    @cached_property
    def replicas_per_unit(self) -> int:
        return max(1, self.offering.gpu_count // self.gpus_per_replica)

    @cached_property
    def instances_per_unit(self) -> int:
        return self.instances_per_replica

    @cached_property
    def gpus_per_unit(self) -> int:
        return self.offering.gpu_count * self.instances_per_unit

    @cached_property
    def tensor_parallel(self) -> int:
        return min(self.gpus_per_replica, self.offering.gpu_count)

    @cached_property
    def pipeline_parallel(self) -> int:
        return self.instances_per_replica

    @cached_property
    def usd_per_unit_hour(self) -> float:
        return self.usd_per_instance_hour * self.instances_per_unit

    @cached_property
    def rps_per_unit(self) -> float:
        return self.rps_per_replica * self.replicas_per_unit

    @cached_property
    def carbon_g_per_unit_hour(self) -> float:
        return self.gpus_per_unit * self.gpu_tdp_w / 1000.0 * self.pue * self.grid_g_per_kwh

    def describe(self) -> str:
        n = f"{self.gpus_per_replica}×{self.gpu}"
        return f"{self.region} {self.instance_type} ({n}, {self.quantization}, {self.market})"


@dataclass
class DeploymentCandidates:
    deployment: str
    candidates: list[Candidate]
    # provider -> reason -> count; region -> reason -> count; reason -> one example message
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    rejected_regions: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, str] = field(default_factory=dict)
    providers_seen: set[str] = field(default_factory=set)
    pruned: int = 0  # dominated candidates removed
    dominated: dict[str, Candidate] = field(default_factory=dict)  # provider -> its cheapest pruned candidate

    def note_pruned(self, removed: Sequence[Candidate], required_rps: float) -> None:
        """Remember each provider's best dominated option, so the explanation can price it."""
        self.pruned += len(removed)
        for c in removed:
            usd = math.ceil(required_rps / c.rps_per_unit - 1e-9) * c.usd_per_unit_hour
            best = self.dominated.get(c.provider)
            if best is None or usd < math.ceil(required_rps / best.rps_per_unit - 1e-9) * best.usd_per_unit_hour:
                self.dominated[c.provider] = c

    _scores: dict[str, float] = field(default_factory=dict)

    def reject(self, offering: Offering, reason: str, message: str, n: int = 1, score: float | None = None) -> None:
        """Count a rejection; the example kept per reason is the first, or the one with the lowest score."""
        self.rejected[offering.provider][reason] += n
        self.rejected_regions[offering.region][reason] += n
        if reason not in self.examples or (score is not None and score < self._scores.get(reason, float("inf"))):
            self.examples[reason] = message
            if score is not None:
                self._scores[reason] = score


Estimator = Callable[..., list[Any]]  # orchestrator.perf.estimate_batch
RttFn = Callable[[str, str], float]


def gpu_options(gpu_count: int, max_gpus: int | None) -> list[int]:
    """GPUs per replica that an instance with gpu_count GPUs can host: divisors, or whole-node multiples."""
    opts = [g for g in POWERS_OF_TWO if g <= gpu_count and gpu_count % g == 0]
    if gpu_count >= 8:  # multi-node replicas only from full nodes (NVLink/IB class machines)
        opts += [gpu_count * k for k in (2, 4) if gpu_count * k <= 64]
    if max_gpus is not None:
        opts = [g for g in opts if g <= max_gpus]
    return opts


def build_candidates(
    deployment: Any,
    model: Any,
    offerings: Sequence[Offering],
    gpus: dict[str, GPU],
    sources: list[tuple[str, float]],
    rtt: RttFn,
    policies: Sequence[Any] = (),
    *,
    estimate_batch: Estimator,
    regions: dict[str, Region] | None = None,
    pue_by_region: dict[str, float] | None = None,
    carbon_by_region: dict[str, float] | None = None,
    extra_sizes: int = 2,
    prune: bool = True,
    limited: Callable[[Candidate], bool] | None = None,
    exact_ttft: bool = False,
    carbon: bool = False,
) -> DeploymentCandidates:
    """All candidates of one deployment, with the reasons for everything rejected.

    ``sources`` are (region id, share) of the users; ``rtt(a, b)`` the round trip between region ids.
    ``estimate_batch(model, [(GPU, gpus, quantization)], input, output, tpot_slo_ms=, kv_cache_dtype=,
    utilization=)`` is the performance model. ``limited(c)`` says whether a quota counts c's GPUs (pruning
    then keeps GPU types apart). ``exact_ttft`` keeps faster candidates when latency is the objective;
    otherwise TTFT matters only through which user regions a candidate can answer in time.
    """
    regions = regions or {}
    pue_by_region = pue_by_region or {}
    carbon_by_region = carbon_by_region or {}
    out = DeploymentCandidates(deployment=deployment.name, candidates=[])
    t = deployment.traffic
    slo = deployment.slo
    spot_ok = deployment.spot in ("allow", "prefer")
    utilization = 1.0 / (1.0 + t.headroom)

    # 1. performance per (gpu, g, quantization), computed once per distinct configuration.
    shapes: dict[tuple[str, int], list[int]] = {}
    for o in offerings:
        key = (o.gpu, o.gpu_count)
        if key not in shapes:
            shapes[key] = gpu_options(o.gpu_count, None)
    configs = sorted({(gname, g, q) for (gname, _), gs in shapes.items() if gname in gpus for g in gs for q in deployment.quantization})
    ests = estimate_batch(
        model,
        [(gpus[gname], g, q) for gname, g, q in configs],
        t.input_tokens,
        t.output_tokens,
        tpot_slo_ms=slo.tpot_p95_ms,
        kv_cache_dtype=deployment.kv_cache_dtype,
        utilization=utilization,
    ) if configs else []
    perf = dict(zip(configs, ests))

    # 2. min RTT from the users to each region (+ its argmin), computed once per region.
    best_rtt: dict[str, float] = {}
    rtts: dict[str, list[float]] = {}
    for reg in {o.region for o in offerings}:
        rtts[reg] = [rtt(s, reg) for s, _ in sources]
        best_rtt[reg] = min(rtts[reg], default=0.0)

    heads = getattr(model, "heads", 0) or 0
    offerings = _cheapest_per_shape(offerings, out, spot_ok)
    # 3. walk offerings: cheap checks per (gpu, g, q) shared; only passes become candidates.
    best: dict[tuple, Candidate] = {}  # identical capacity in one region+market: keep the cheapest instance
    for o in offerings:
        out.providers_seen.add(o.provider)
        gpu = gpus.get(o.gpu)
        if gpu is None:
            out.reject(o, MEMORY, f"unknown GPU {o.gpu}")
            continue
        if o.usd_per_hour is None or (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour)):
            out.reject(o, NO_PRICE, f"{o.region} {o.instance_type}: no price in the catalog")
            continue
        opts = gpu_options(o.gpu_count, o.max_gpus)
        for q in deployment.quantization:
            fitting = [g for g in opts if perf.get((o.gpu, g, q)) is not None and perf[(o.gpu, g, q)].fits]
            if not fitting:
                e = perf.get((o.gpu, opts[-1], q)) if opts else None
                msg = getattr(e, "reason", "") or f"{model.name} ({q}) does not fit in {opts[-1] if opts else 0}×{o.gpu}"
                out.reject(o, MEMORY, f"{o.instance_type} ({o.gpu}, {q}): {msg}")
                continue
            for g in fitting[: 1 + extra_sizes]:
                e = perf[(o.gpu, g, q)]
                tp = min(g, o.gpu_count)
                if heads and heads % tp:
                    out.reject(o, PARALLEL, f"tensor parallel {tp} does not divide {heads} attention heads")
                    continue
                if e.requests_per_s <= 0 or e.tpot_ms > slo.tpot_p95_ms:
                    out.reject(o, SLO_TPOT, f"{g}×{o.gpu} ({q}): TPOT {e.tpot_ms:.1f} ms > SLO {slo.tpot_p95_ms:g} ms",
                               score=e.tpot_ms)
                    continue
                lat = best_rtt[o.region] + e.ttft_ms
                if lat > slo.ttft_p95_ms:
                    out.reject(
                        o, SLO_TTFT,
                        f"{o.region} {g}×{o.gpu} ({q}): TTFT {e.ttft_ms:.0f} ms + RTT {best_rtt[o.region]:.0f} ms "
                        f"> SLO {slo.ttft_p95_ms:g} ms",
                        score=lat,
                    )
                    continue
                markets: list[tuple[str, float]] = []
                if o.provider in ONPREM_PROVIDERS:
                    markets.append(("onprem", o.usd_per_hour))
                else:
                    markets.append(("on_demand", o.usd_per_hour))
                    if spot_ok and o.spot_usd_per_hour is not None:
                        markets.append(("spot", o.spot_usd_per_hour))
                for market, price in markets:
                    c = Candidate(
                        deployment=deployment.name, offering=o, gpus_per_replica=g, quantization=q, market=market,
                        rps_per_replica=float(e.requests_per_s), ttft_ms=float(e.ttft_ms), tpot_ms=float(e.tpot_ms),
                        usd_per_instance_hour=float(price),
                        grid_g_per_kwh=carbon_by_region.get(o.region, getattr(regions.get(o.region), "carbon_g_per_kwh", 0.0)),
                        pue=pue_by_region.get(o.region, 1.0 if o.provider == "local" else CLOUD_PUE),
                        gpu_tdp_w=gpu.tdp_w,
                        reach=sum(1 << i for i, r in enumerate(rtts[o.region]) if r + e.ttft_ms <= slo.ttft_p95_ms),
                    )
                    why = next((r for p in policies if (r := p.reject(deployment, c))), None)
                    if why:
                        out.reject(o, POLICY, why)
                        continue
                    k = (o.region, market, o.gpu, o.gpu_count, g, q, o.max_gpus)
                    if k not in best or c.usd_per_unit_hour < best[k].usd_per_unit_hour:
                        best[k] = c
    cands = list(best.values())
    if prune:
        req = t.requests_per_second * (1 + t.headroom)
        kept = prune_dominated(cands, limited, exact_ttft=exact_ttft, required_rps=req, carbon=carbon)
        ids = {id(c) for c in kept}
        out.note_pruned([c for c in cands if id(c) not in ids], req)
        cands = kept
    out.candidates = cands
    return out


def _cheapest_per_shape(offerings: Sequence[Offering], out: DeploymentCandidates, spot_ok: bool) -> list[Offering]:
    """Per region and GPU shape (type x count, inventory), only the cheapest on-demand and the cheapest spot
    offering can matter: the others serve the same at a higher price (instance types differing in CPU/RAM)."""
    best: dict[tuple, Offering] = {}
    best_spot: dict[tuple, Offering] = {}
    for o in offerings:
        out.providers_seen.add(o.provider)
        k = (o.region, o.gpu, o.gpu_count, o.max_gpus)
        if o.usd_per_hour is None or (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour)):
            best.setdefault(("noprice",) + k, o)  # kept once so the rejection is reported
            continue
        if k not in best or o.usd_per_hour < best[k].usd_per_hour:
            best[k] = o
        if spot_ok and o.spot_usd_per_hour is not None and (k not in best_spot or o.spot_usd_per_hour < best_spot[k].spot_usd_per_hour):
            best_spot[k] = o
    keep = {id(o) for o in best.values()} | {id(o) for o in best_spot.values()}
    return [o for o in offerings if id(o) in keep]


def prune_dominated(
    cands: list[Candidate], shared_limits: Callable[[Candidate], bool] | None = None, *, exact_ttft: bool = True,
    required_rps: float | None = None, carbon: bool = True,
) -> list[Candidate]:
    """Drop candidates another one beats in the same region and market (keeps the MILP small).

    B dominates A when B is no costlier per unit of capacity (and no dirtier, no slower to first token, and,
    if A's GPUs count against a quota or inventory, the same GPU type using no more GPUs per req/s), and B's
    unit costs no more than A's. Whatever A units serve, B units serve at no higher rate; when B's unit also
    serves at least as much (the common case: the same instance at another TP size or quantization, or a
    pricier instance type) the unit-for-unit swap is exact, otherwise rounding up to whole B units costs at
    most one B unit more than the A plan.
    "No slower" is TTFT itself with ``exact_ttft`` (latency objective), else: B answers every user region
    A answers within the SLO (what TTFT changes for cost, egress and carbon). Capacity beyond the
    deployment's whole requirement (``required_rps``) is worth nothing, so it is capped there: a huge
    instance does not look cheap per req/s when a single smaller unit already covers the demand. Carbon
    is compared only when ``carbon`` (the carbon objective); otherwise it is a tie-break among survivors.
    """
    groups: dict[tuple, list[Candidate]] = defaultdict(list)
    for c in cands:
        limited = c.provider in ONPREM_PROVIDERS or (shared_limits is not None and shared_limits(c))
        key = (c.region, c.market) + ((c.gpu,) if limited else ())
        groups[key].append(c)
    kept: list[Candidate] = []
    for key, group in groups.items():
        same_gpu = len(key) == 3
        rows = []
        for c in group:
            cap = min(c.rps_per_unit, required_rps) if required_rps else c.rps_per_unit
            unit = c.usd_per_unit_hour
            rows.append((unit, unit / cap, c.carbon_g_per_unit_hour / cap, c.gpus_per_unit / cap, c.ttft_ms, c.reach, c))
        # cheapest units first (then cheapest per req/s): a dominator always precedes what it dominates
        rows.sort(key=lambda r: (r[0], r[1], r[4]))
        front: list[tuple] = []
        eps = 1 + 1e-9
        for ra in rows:
            ua, pa, ca, ga, ta, reach_a = ra[:6]
            dominated = False
            for ub, pb, cb, gb, tb, reach_b, _ in front:
                if (pb <= pa * eps and ub <= ua * eps and (not carbon or cb <= ca * eps)
                        and (tb <= ta if exact_ttft else (reach_b & reach_a) == reach_a)
                        and (not same_gpu or gb <= ga * eps)):
                    dominated = True
                    break
            if not dominated:
                front.append(ra)
        kept.extend(r[6] for r in front)
    return kept
