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

import numpy as np

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
    # provider -> reason -> count; region -> reason -> count; reason -> one example message (the best scored);
    # provider -> reason -> that provider's own example
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    rejected_regions: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, str] = field(default_factory=dict)
    provider_examples: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    providers_seen: set[str] = field(default_factory=set)
    pruned: int = 0  # dominated candidates removed
    dominated: dict[str, Candidate] = field(default_factory=dict)  # provider -> its cheapest pruned candidate
    _scores: dict[tuple[str, str], float] = field(default_factory=dict)

    def note_pruned(self, removed: Sequence[Candidate], required_rps: float) -> None:
        """Remember each provider's best dominated option, so the explanation can price it."""
        self.pruned += len(removed)
        for c in removed:
            best = self.dominated.get(c.provider)
            if best is None or cover_usd(c, required_rps) < cover_usd(best, required_rps):
                self.dominated[c.provider] = c

    def reject(self, offering: Offering, reason: str, message: str, n: int = 1, score: float | None = None) -> None:
        """Count a rejection; the example kept per (provider, reason) is the first, or the one with the lowest score."""
        self.reject_many([offering.provider], [offering.region], reason, {offering.provider: (message, score)}, [n])

    def reject_many(self, providers: Sequence[str], regions: Sequence[str], reason: str,
                    examples: dict[str, tuple[str, float | None]], counts: Sequence[int] | None = None) -> None:
        """Count many rejections at once (one per (provider, region) entry, or ``counts``); ``examples`` gives
        per provider one (message, score)."""
        for i, (p, r) in enumerate(zip(providers, regions)):
            n = counts[i] if counts is not None else 1
            self.rejected[p][reason] += n
            self.rejected_regions[r][reason] += n
        for p, (msg, score) in examples.items():
            for key, table in (((p, reason), self.provider_examples[p]), (("", reason), self.examples)):
                old = self._scores.get(key)
                if reason not in table or (score is not None and (old is None or score < old)):
                    table[reason] = msg
                    if score is not None:
                        self._scores[key] = score


def cover_usd(c: Candidate, required_rps: float) -> float:
    """$/h of serving the whole requirement with c's units alone."""
    return math.ceil(required_rps / c.rps_per_unit - 1e-9) * c.usd_per_unit_hour


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

    heads = getattr(model, "heads", 0) or 0
    offerings = _cheapest_per_shape(offerings, out, spot_ok)
    # 3. offerings grouped by GPU shape; every check below is one array operation over a group's offerings.
    reg_ids = sorted({o.region for o in offerings})
    rix = {r: i for i, r in enumerate(reg_ids)}
    rtt_rs = np.array([[rtt(s, r) for s, _ in sources] for r in reg_ids]).reshape(len(reg_ids), len(sources))
    best_rtt = rtt_rs.min(axis=1) if len(sources) else np.zeros(len(reg_ids))
    bits = (1 << np.arange(len(sources), dtype=np.int64)) if sources else np.zeros(0, np.int64)
    groups: dict[tuple[str, int, int | None], list[Offering]] = defaultdict(list)
    for o in offerings:
        if o.gpu not in gpus:
            out.reject(o, MEMORY, f"unknown GPU {o.gpu}")
        elif o.usd_per_hour is None or (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour)):
            out.reject(o, NO_PRICE, f"{o.region} {o.instance_type}: no price in the catalog")
        else:
            groups[(o.gpu, o.gpu_count, o.max_gpus)].append(o)
    rows = _Rows()
    for (gname, count, max_gpus), offs in groups.items():
        reg = np.array([rix[o.region] for o in offs])
        opts = gpu_options(count, max_gpus)
        for q in deployment.quantization:
            fitting = [g for g in opts if perf.get((gname, g, q)) is not None and perf[(gname, g, q)].fits]
            if not fitting:
                e = perf.get((gname, opts[-1], q)) if opts else None
                msg = getattr(e, "reason", "") or f"{model.name} ({q}) does not fit in {opts[-1] if opts else 0}×{gname}"
                _reject_all(out, offs, MEMORY, lambda o, msg=msg: f"{o.instance_type} ({o.gpu}, {q}): {msg}")
                continue
            for g in fitting[: 1 + extra_sizes]:
                e = perf[(gname, g, q)]
                tp = min(g, count)
                if heads and heads % tp:
                    _reject_all(out, offs, PARALLEL, lambda o: f"tensor parallel {tp} does not divide {heads} attention heads")
                    continue
                if e.requests_per_s <= 0 or e.tpot_ms > slo.tpot_p95_ms:
                    _reject_all(out, offs, SLO_TPOT, lambda o: f"{g}×{o.gpu} ({q}): TPOT {e.tpot_ms:.1f} ms > SLO {slo.tpot_p95_ms:g} ms",
                                score=e.tpot_ms)
                    continue
                lat = best_rtt[reg] + e.ttft_ms
                late = lat > slo.ttft_p95_ms
                if late.any():
                    bad = [offs[i] for i in np.nonzero(late)[0]]
                    _reject_all(out, bad, SLO_TTFT, lambda o: (
                        f"{o.region} {g}×{o.gpu} ({q}): TTFT {e.ttft_ms:.0f} ms + RTT {best_rtt[rix[o.region]]:.0f} ms "
                        f"> SLO {slo.ttft_p95_ms:g} ms"), score=lambda o: float(best_rtt[rix[o.region]] + e.ttft_ms))
                reach_r = ((rtt_rs + e.ttft_ms <= slo.ttft_p95_ms) * bits).sum(axis=1) if len(sources) else np.zeros(len(reg_ids), np.int64)
                live = np.nonzero(~late)[0].tolist()
                rows.extend([offs[i] for i in live], g, q, e, reach_r[reg[live]].tolist(), spot_ok)
    return _finish(out, rows, deployment, gpus, regions, pue_by_region, carbon_by_region, policies, prune=prune, limited=limited,
                   exact_ttft=exact_ttft, carbon=carbon)


@dataclass
class _Rows:
    """Candidate figures as parallel lists (one entry per offering x size x quantization x market)."""

    offering: list[Offering] = field(default_factory=list)
    g: list[int] = field(default_factory=list)
    q: list[str] = field(default_factory=list)
    market: list[str] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    est: list[Any] = field(default_factory=list)
    reach: list[int] = field(default_factory=list)

    def extend(self, offs: list[Offering], g: int, q: str, est: Any, reach: list[int], spot_ok: bool) -> None:
        """The offerings at one size and quantization: on-demand (on-prem) rows, then spot rows."""
        spot = [i for i, o in enumerate(offs) if spot_ok and o.spot_usd_per_hour is not None and o.provider not in ONPREM_PROVIDERS]
        n, k = len(offs), len(spot)
        self.offering += offs + [offs[i] for i in spot]
        self.g += [g] * (n + k)
        self.q += [q] * (n + k)
        self.est += [est] * (n + k)
        self.market += ["onprem" if o.provider in ONPREM_PROVIDERS else "on_demand" for o in offs] + ["spot"] * k
        self.price += [float(o.usd_per_hour) for o in offs] + [float(offs[i].spot_usd_per_hour) for i in spot]  # type: ignore[arg-type]
        self.reach += reach + [reach[i] for i in spot]

    def candidate(self, i: int, deployment: str, gpus: dict[str, GPU], regions: dict[str, Region],
                  pue_by_region: dict[str, float], carbon_by_region: dict[str, float]) -> Candidate:
        o, e = self.offering[i], self.est[i]
        return Candidate(
            deployment=deployment, offering=o, gpus_per_replica=self.g[i], quantization=self.q[i], market=self.market[i],
            rps_per_replica=float(e.requests_per_s), ttft_ms=float(e.ttft_ms), tpot_ms=float(e.tpot_ms),
            usd_per_instance_hour=self.price[i],
            grid_g_per_kwh=carbon_by_region.get(o.region, getattr(regions.get(o.region), "carbon_g_per_kwh", 0.0)),
            pue=pue_by_region.get(o.region, 1.0 if o.provider == "local" else CLOUD_PUE),
            gpu_tdp_w=gpus[o.gpu].tdp_w, reach=self.reach[i],
        )


def _reject_all(out: DeploymentCandidates, offs: Sequence[Offering], reason: str, message: Callable[[Offering], str],
                score: float | Callable[[Offering], float] | None = None) -> None:
    """Reject every offering in ``offs`` for one reason: counted per provider and region, one example per
    provider (the lowest scored when ``score`` is a function)."""
    first: dict[str, Offering] = {}
    for o in offs:
        cur = first.get(o.provider)
        if cur is None or (callable(score) and score(o) < score(cur)):
            first[o.provider] = o
    out.reject_many([o.provider for o in offs], [o.region for o in offs], reason,
                    {p: (message(o), score(o) if callable(score) else score) for p, o in first.items()})


def _finish(out: DeploymentCandidates, rows: _Rows, deployment: Any, gpus: dict[str, GPU], regions: dict[str, Region],
            pue_by_region: dict[str, float], carbon_by_region: dict[str, float], policies: Sequence[Any], *, prune: bool,
            limited: Callable[[Any], bool] | None, exact_ttft: bool, carbon: bool) -> DeploymentCandidates:
    """Policies, then dominance pruning on arrays; Candidate objects only for what survives (and, per
    provider, the cheapest pruned option, which the explanation prices)."""
    n = len(rows.offering)
    name = deployment.name
    t = deployment.traffic
    req = t.requests_per_second * (1 + t.headroom)
    def make(i: int) -> Candidate:
        return rows.candidate(i, name, gpus, regions, pue_by_region, carbon_by_region)

    ok = np.ones(n, bool)
    if policies and n:
        verdict: dict[tuple, str | None] = {}  # a policy sees provider, region, GPU, market and quantization
        why: dict[int, str] = {}  # id(offering) -> a reason it was rejected for
        for i in range(n):
            o = rows.offering[i]
            key = (o.region, o.gpu, rows.market[i], rows.q[i])
            if key not in verdict:
                c = make(i)
                verdict[key] = next((r for p in policies if (r := p.reject(deployment, c))), None)
            if verdict[key]:
                ok[i] = False
                why[id(o)] = verdict[key]
        bad = np.nonzero(~ok)[0].tolist()
        if bad:
            _reject_all(out, [rows.offering[i] for i in bad], POLICY, lambda o: why[id(o)])
    idx = np.nonzero(ok)[0]
    if n == 0 or len(idx) == 0:
        out.candidates = []
        return out
    off = [rows.offering[i] for i in idx.tolist()]
    inst = np.array([max(1, g // o.gpu_count) for g, o in zip((rows.g[i] for i in idx), off)])
    reps = np.array([max(1, o.gpu_count // g) for g, o in zip((rows.g[i] for i in idx), off)])
    unit = np.array([rows.price[i] for i in idx]) * inst
    rps = np.array([float(rows.est[i].requests_per_s) for i in idx]) * reps
    ttft = np.array([float(rows.est[i].ttft_ms) for i in idx])
    gpus_unit = np.array([o.gpu_count for o in off]) * inst
    reach = np.array([rows.reach[i] for i in idx], np.int64)
    co2 = np.zeros(len(idx))
    if carbon:
        co2 = np.array([make(i).carbon_g_per_unit_hour for i in idx.tolist()])
    # the cheapest instance per (region, market, shape, size, quantization): identical capacity
    key_str = [f"{o.region}|{rows.market[i]}|{o.gpu}|{o.gpu_count}|{rows.g[i]}|{rows.q[i]}|{o.max_gpus}" for i, o in zip(idx.tolist(), off)]
    _, inv = np.unique(np.array(key_str), return_inverse=True)
    order = np.lexsort((unit, inv))
    first = np.ones(len(order), bool)
    first[1:] = inv[order][1:] != inv[order][:-1]
    sel = np.sort(order[first])
    if prune:
        lim = np.array([o.provider in ONPREM_PROVIDERS or (limited is not None and limited(o)) for o in off])
        group = [f"{o.region}|{rows.market[i]}|{o.gpu if l else ''}" for i, o, l in zip(idx.tolist(), off, lim)]
        kept = _pareto(sel, np.array(group), lim, unit, np.minimum(rps, req), co2, gpus_unit, ttft, reach,
                       exact_ttft=exact_ttft, carbon=carbon)
    else:
        kept = sel
    out.candidates = [make(i) for i in idx[kept].tolist()]
    if prune:
        dropped = np.setdiff1d(sel, kept)
        out.pruned += len(dropped)
        cover = np.ceil(req / rps - 1e-9) * unit
        best: dict[str, int] = {}
        for j in dropped.tolist():
            p = off[j].provider
            if p not in best or cover[j] < cover[best[p]]:
                best[p] = j
        for p, j in best.items():
            out.dominated[p] = make(int(idx[j]))
    return out


def _pareto(sel: np.ndarray, group: np.ndarray, same_gpu: np.ndarray, unit: np.ndarray, cap: np.ndarray, co2: np.ndarray,
            gpus_unit: np.ndarray, ttft: np.ndarray, reach: np.ndarray, *, exact_ttft: bool, carbon: bool) -> np.ndarray:
    """The positions in ``sel`` that no other candidate of the same group (region, market, and GPU type when
    a quota or inventory counts it) dominates.

    B dominates A when B is no costlier per unit of capacity (and no dirtier with ``carbon``, no slower to
    first token, and, in a GPU-counted group, using no more GPUs per req/s), and B's unit costs no more than
    A's. Whatever A units serve, B units serve at no higher rate; when B's unit also serves at least as much
    the unit-for-unit swap is exact, otherwise rounding up to whole B units costs at most one B unit more.
    "No slower" is TTFT itself with ``exact_ttft`` (latency objective), else: B answers every user region A
    answers within the SLO. ``cap`` is capacity capped at the deployment's whole requirement: capacity
    beyond it is worth nothing, so a huge instance does not look cheap per req/s."""
    per, co2c, gpc = unit / cap, co2 / cap, gpus_unit / cap
    kept: list[np.ndarray] = []
    g_sel = group[sel]
    order = np.lexsort((g_sel,))
    sel, g_sel = sel[order], g_sel[order]
    bounds = np.nonzero(np.r_[True, g_sel[1:] != g_sel[:-1], True])[0]
    eps = 1 + 1e-9
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = sel[a:b]
        if len(rows) > 1:
            rows = rows[np.lexsort((ttft[rows], per[rows], unit[rows]))]  # a dominator precedes what it dominates
            u, p, t, r = unit[rows], per[rows], ttft[rows], reach[rows]
            dom = (u[:, None] <= u[None, :] * eps) & (p[:, None] <= p[None, :] * eps)  # [dominator, dominated]
            dom &= (t[:, None] <= t[None, :]) if exact_ttft else ((r[:, None] & r[None, :]) == r[None, :])
            if carbon:
                dom &= co2c[rows][:, None] <= co2c[rows][None, :] * eps
            if same_gpu[rows[0]]:
                dom &= gpc[rows][:, None] <= gpc[rows][None, :] * eps
            dom &= np.tri(len(rows), k=-1, dtype=bool).T  # only earlier rows dominate later ones
            rows = rows[~dom.any(axis=0)]
        kept.append(rows)
    return np.sort(np.concatenate(kept)) if kept else sel


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
