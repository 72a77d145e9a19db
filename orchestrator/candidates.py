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
MARKETS = ("on_demand", "spot", "onprem")

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


@dataclass
class CandidateRows:
    """One deployment's candidates as arrays, for a pruning rule that needs more than the catalog knows
    (the solver's egress prices): see ``build_candidates(region_prune=)``."""

    region: np.ndarray  # region id per row
    market: np.ndarray  # on_demand | spot | onprem
    unit_usd_per_hour: np.ndarray
    capacity: np.ndarray  # req/s per unit, capped at the deployment's requirement
    reach: np.ndarray  # bit s set: answers user region s within the TTFT SLO
    co2: np.ndarray  # g per unit-hour (zeros unless the carbon objective)
    counted: np.ndarray  # on-prem, or a quota counts its GPUs


RegionPrune = Callable[[CandidateRows], np.ndarray]  # rows -> keep mask


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
    region_prune: RegionPrune | None = None,
) -> DeploymentCandidates:
    """All candidates of one deployment, with the reasons for everything rejected.

    ``sources`` are (region id, share) of the users; ``rtt(a, b)`` the round trip between region ids.
    ``estimate_batch(model, [(GPU, gpus, quantization)], input, output, tpot_slo_ms=, kv_cache_dtype=,
    utilization=)`` is the performance model. ``limited(c)`` says whether a quota counts c's GPUs (pruning
    then keeps GPU types apart). ``exact_ttft`` keeps faster candidates when latency is the objective;
    otherwise TTFT matters only through which user regions a candidate can answer in time.
    ``region_prune`` drops, after the per-region dominance pruning, what it finds beaten from elsewhere.
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
    rows = _Rows(offerings, spot_ok)
    pos_of = {id(o): i for i, o in enumerate(offerings)}
    for (gname, count, max_gpus), offs in groups.items():
        pos = np.array([pos_of[id(o)] for o in offs])
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
                live = np.nonzero(~late)[0]
                rows.extend(pos[live], g, q, e, reach_r[reg[live]])
    return _finish(out, rows, deployment, gpus, regions, pue_by_region, carbon_by_region, policies, prune=prune, limited=limited,
                   exact_ttft=exact_ttft, carbon=carbon, region_prune=region_prune)


class _Rows:
    """Candidate figures as parallel arrays (one entry per offering x size x quantization x market); offerings
    and estimates are referred to by position."""

    def __init__(self, offerings: Sequence[Offering], spot_ok: bool) -> None:
        self.offerings = list(offerings)
        self.onprem = np.array([o.provider in ONPREM_PROVIDERS for o in offerings], bool)
        self.od_price = np.array([float(o.usd_per_hour) if o.usd_per_hour is not None else math.nan for o in offerings])
        spot = np.array([o.spot_usd_per_hour if o.spot_usd_per_hour is not None else math.nan for o in offerings], float)
        self.spot_price = spot if spot_ok else np.full(len(offerings), math.nan)
        self.spot_price[self.onprem] = math.nan
        self.ests: list[Any] = []
        self.qs: list[str] = []
        self._chunks: list[tuple[np.ndarray, ...]] = []

    def extend(self, pos: np.ndarray, g: int, q: str, est: Any, reach: np.ndarray) -> None:
        """The offerings at positions ``pos`` at one size and quantization: on-demand (on-prem) rows, then spot."""
        if q not in self.qs:
            self.qs.append(q)
        self.ests.append(est)
        sp = pos[~np.isnan(self.spot_price[pos])]
        n = len(pos) + len(sp)
        cat = np.concatenate  # np.r_ costs ~10x more per call, and this runs thousands of times
        market = cat((np.where(self.onprem[pos], MARKETS.index("onprem"), MARKETS.index("on_demand")),
                      np.full(len(sp), MARKETS.index("spot"))))
        price = cat((self.od_price[pos], self.spot_price[sp]))
        reach_sp = reach[~np.isnan(self.spot_price[pos])]
        self._chunks.append((cat((pos, sp)), np.full(n, g), np.full(n, self.qs.index(q)), market, price,
                             np.full(n, len(self.ests) - 1), cat((reach, reach_sp)).astype(np.int64)))

    def finish(self) -> None:
        cols = list(zip(*self._chunks)) if self._chunks else [[np.zeros(0, int)]] * 7
        self.off, self.g, self.q, self.market, self.price, self.est, self.reach = (np.concatenate(c) for c in cols)
        self.price = self.price.astype(float)

    def __len__(self) -> int:
        return len(self.off)

    def offering(self, i: int) -> Offering:
        return self.offerings[int(self.off[i])]

    def candidate(self, i: int, deployment: str, gpus: dict[str, GPU], regions: dict[str, Region],
                  pue_by_region: dict[str, float], carbon_by_region: dict[str, float]) -> Candidate:
        o, e = self.offering(i), self.ests[int(self.est[i])]
        return Candidate(
            deployment=deployment, offering=o, gpus_per_replica=int(self.g[i]), quantization=self.qs[int(self.q[i])],
            market=MARKETS[int(self.market[i])], rps_per_replica=float(e.requests_per_s), ttft_ms=float(e.ttft_ms),
            tpot_ms=float(e.tpot_ms), usd_per_instance_hour=float(self.price[i]),
            grid_g_per_kwh=carbon_by_region.get(o.region, getattr(regions.get(o.region), "carbon_g_per_kwh", 0.0)),
            pue=pue_by_region.get(o.region, 1.0 if o.provider == "local" else CLOUD_PUE),
            gpu_tdp_w=gpus[o.gpu].tdp_w, reach=int(self.reach[i]),
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
            limited: Callable[[Any], bool] | None, exact_ttft: bool, carbon: bool,
            region_prune: RegionPrune | None = None) -> DeploymentCandidates:
    """Policies, then dominance pruning on arrays; Candidate objects only for what survives (and, per
    provider, the cheapest pruned option, which the explanation prices)."""
    rows.finish()
    n = len(rows)
    name = deployment.name
    t = deployment.traffic
    req = t.requests_per_second * (1 + t.headroom)

    def make(i: int) -> Candidate:
        return rows.candidate(i, name, gpus, regions, pue_by_region, carbon_by_region)

    used, opos = np.unique(rows.off, return_inverse=True)  # the offerings the rows refer to
    offs = [rows.offerings[i] for i in used.tolist()]

    def per_offering(values: list) -> np.ndarray:
        return np.unique(np.array(values), return_inverse=True)[1][opos] if offs else np.zeros(0, int)

    region, gpu = per_offering([o.region for o in offs]), per_offering([o.gpu for o in offs])
    count = np.array([o.gpu_count for o in offs], int)[opos]
    max_gpus = np.array([-1 if o.max_gpus is None else o.max_gpus for o in offs], int)[opos]
    ok = np.ones(n, bool)
    fields = {"region": region, "gpu": gpu, "market": rows.market, "quantization": rows.q}
    reads = sorted(set().union(*(getattr(p, "reads", fields) for p in policies)))
    if reads and n:
        # one verdict per distinct combination of the fields the policies read
        _, first, key = np.unique(_codes(*(fields[f] for f in reads)), return_index=True, return_inverse=True)
        verdict = [next((r for p in policies if (r := p.reject(deployment, make(int(i))))), None) for i in first]
        ok = np.array([v is None for v in verdict])[key]
        bad = np.nonzero(~ok)[0].tolist()
        if bad:
            why = {id(rows.offering(i)): verdict[key[i]] for i in bad}  # an offering's reason (the last one)
            _reject_all(out, [rows.offering(i) for i in bad], POLICY, lambda o: why[id(o)])
    idx = np.nonzero(ok)[0]
    if n == 0 or len(idx) == 0:
        out.candidates = []
        return out
    g, cnt, market = rows.g[idx], count[idx], rows.market[idx]
    inst = np.maximum(1, g // cnt)
    reps = np.maximum(1, cnt // g)
    unit = rows.price[idx] * inst
    est = rows.est[idx]
    rps = np.array([float(e.requests_per_s) for e in rows.ests])[est] * reps
    ttft = np.array([float(e.ttft_ms) for e in rows.ests])[est]
    gpus_unit = cnt * inst
    reach = rows.reach[idx]
    co2 = np.zeros(len(idx))
    if carbon:
        co2 = np.array([make(i).carbon_g_per_unit_hour for i in idx.tolist()])
    # the cheapest instance per (region, market, shape, size, quantization): identical capacity
    inv = _codes(region[idx], market, gpu[idx], cnt, g, rows.q[idx], max_gpus[idx])
    order = np.lexsort((unit, inv))
    first_of = np.ones(len(order), bool)
    first_of[1:] = inv[order][1:] != inv[order][:-1]
    sel = np.sort(order[first_of])
    if prune:
        lim_o = np.array([o.provider in ONPREM_PROVIDERS or (limited is not None and limited(o)) for o in offs], bool)
        lim = lim_o[opos][idx]
        group = _codes(region[idx], market, np.where(lim, gpu[idx], -1))
        kept = _pareto(sel, group, lim, unit, np.minimum(rps, req), co2, gpus_unit, ttft, reach,
                       exact_ttft=exact_ttft, carbon=carbon)
        if region_prune is not None and len(kept) > 1:
            names = np.array([o.region for o in offs])[opos][idx]
            keep = region_prune(CandidateRows(names[kept], np.array(MARKETS)[market[kept]], unit[kept],
                                              np.minimum(rps, req)[kept], reach[kept], co2[kept], lim[kept]))
            kept = kept[keep]
    else:
        kept = sel
    out.candidates = [make(i) for i in idx[kept].tolist()]
    if prune:
        dropped = np.setdiff1d(sel, kept)
        out.pruned += len(dropped)
        cover = np.ceil(req / rps - 1e-9) * unit
        prov = np.array([o.provider for o in offs])[opos][idx][dropped]
        order = np.lexsort((cover[dropped], prov))  # per provider, the cheapest cover first
        first = np.r_[True, prov[order][1:] != prov[order][:-1]] if len(order) else np.zeros(0, bool)
        for j in dropped[order[first]].tolist():
            out.dominated[rows.offering(idx[j]).provider] = make(int(idx[j]))
    return out


def _codes(*cols: np.ndarray) -> np.ndarray:
    """One integer per row, equal exactly where every column is equal (not compact: 0..k-1 takes np.unique)."""
    key = np.zeros(len(cols[0]), np.int64)
    if len(key) == 0:
        return key
    for c in cols:
        c = np.asarray(c)
        if c.dtype.kind in "iub":  # integers need no sorting: shift them to start at 0
            code = c.astype(np.int64) - int(c.min())
        else:
            code = np.unique(c, return_inverse=True)[1].astype(np.int64)
        base = int(code.max()) + 1
        if int(key.max()) >= (1 << 62) // base:  # keep the mixed key in range
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        key = key * base + code
    return key


def _pareto(sel: np.ndarray, group: np.ndarray, same_gpu: np.ndarray, unit: np.ndarray, cap: np.ndarray, co2: np.ndarray,
            gpus_unit: np.ndarray, ttft: np.ndarray, reach: np.ndarray, *, exact_ttft: bool, carbon: bool) -> np.ndarray:
    """The positions in ``sel`` that no other candidate of the same group (region, market, and GPU type when
    a quota or inventory counts it) dominates.

    B dominates A when k = ceil(cap A / cap B) units of B cost no more than one unit of A (and, with
    ``carbon``, emit no more; in a GPU-counted group, use no more GPUs), and B is no slower: TTFT itself with
    ``exact_ttft`` (latency objective), else B answers every user region A answers within the SLO. Any plan
    then stays feasible and no dearer with each A unit swapped for k B units in the same region, so pruning
    A keeps an optimum. ``cap`` is capacity capped at the deployment's whole requirement: one unit never
    serves more than that, so a huge instance is replaced by enough smaller ones to serve everything."""
    if len(sel) < 2:
        return sel
    # one padded [group, dominator, dominated] block per batch of similar group sizes: no Python loop per group
    order = np.lexsort((ttft[sel], -cap[sel], unit[sel], group[sel]))  # within a group, a dominator comes first
    rows = sel[order]
    g = group[rows]
    start = np.nonzero(np.r_[True, g[1:] != g[:-1]])[0]
    size = np.diff(np.r_[start, len(rows)])
    pos = np.arange(len(rows)) - np.repeat(start, size)  # position within its group
    gid = np.repeat(np.arange(len(start)), size)
    dropped = np.zeros(len(rows), bool)
    eps = 1 + 1e-9
    for lo, hi in ((2, 8), (9, 32), (33, 128), (129, 1 << 30)):
        pick = np.nonzero((size >= lo) & (size <= hi))[0]
        if len(pick) == 0:
            continue
        if hi > 128:  # rare huge groups: one at a time
            for j in pick.tolist():
                at = np.arange(start[j], start[j] + size[j])
                dropped[at] = _dominated(rows[at][None, :], np.ones((1, len(at)), bool), unit, cap, ttft, reach, co2,
                                         gpus_unit, same_gpu, exact_ttft, carbon, eps)[0]
            continue
        m = int(size[pick].max())
        local = np.full(len(start), -1)
        local[pick] = np.arange(len(pick))
        members = local[gid] >= 0
        idx = np.zeros((len(pick), m), np.int64)
        valid = np.zeros((len(pick), m), bool)
        idx[local[gid[members]], pos[members]] = rows[members]
        valid[local[gid[members]], pos[members]] = True
        dom = _dominated(idx, valid, unit, cap, ttft, reach, co2, gpus_unit, same_gpu, exact_ttft, carbon, eps)
        dropped[members] = dom[local[gid[members]], pos[members]]
    return np.sort(rows[~dropped])


def _dominated(idx: np.ndarray, valid: np.ndarray, unit: np.ndarray, cap: np.ndarray, ttft: np.ndarray, reach: np.ndarray,
               co2: np.ndarray, gpus_unit: np.ndarray, same_gpu: np.ndarray, exact_ttft: bool, carbon: bool, eps: float) -> np.ndarray:
    """[group, position]: dominated by an earlier valid row of its group (rows ``idx``, padded where not ``valid``)."""
    u, c, t, r = unit[idx], cap[idx], ttft[idx], reach[idx]
    k = np.ceil(c[:, None, :] / np.where(valid, c, 1.0)[:, :, None] - 1e-9)  # dominator units per dominated unit
    dom = k * u[:, :, None] <= u[:, None, :] * eps
    if exact_ttft:
        dom &= t[:, :, None] <= t[:, None, :]
    else:
        dom &= (r[:, :, None] & r[:, None, :]) == r[:, None, :]
    if carbon:
        dom &= k * co2[idx][:, :, None] <= co2[idx][:, None, :] * eps
    counted = same_gpu[idx[:, 0]]
    if counted.any():
        gp = gpus_unit[idx]
        dom &= ~counted[:, None, None] | (k * gp[:, :, None] <= gp[:, None, :])
    m = idx.shape[1]
    dom &= np.arange(m)[:, None] < np.arange(m)[None, :]  # only earlier rows dominate later ones
    dom &= valid[:, :, None] & valid[:, None, :]
    return dom.any(axis=1)


_SHAPE_CACHE: dict[tuple[int, int, bool], tuple[tuple[Offering, ...], list[Offering], set[str]]] = {}


def _cheapest_per_shape(offerings: Sequence[Offering], out: DeploymentCandidates, spot_ok: bool) -> list[Offering]:
    """Per region and GPU shape (type x count, inventory), only the cheapest on-demand and the cheapest spot
    offering can matter: the others serve the same at a higher price (instance types differing in CPU/RAM).
    Remembered for the last few catalogs: every deployment of a file asks the same of the same offerings."""
    key = (id(offerings), len(offerings), spot_ok)
    hit = _SHAPE_CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], offerings)):  # the same offerings, unchanged
        out.providers_seen |= hit[2]
        return hit[1]
    kept, seen = _cheapest(offerings, spot_ok)
    if len(_SHAPE_CACHE) >= 8:
        _SHAPE_CACHE.clear()
    _SHAPE_CACHE[key] = (tuple(offerings), kept, seen)
    out.providers_seen |= seen
    return kept


def _cheapest(offerings: Sequence[Offering], spot_ok: bool) -> tuple[list[Offering], set[str]]:
    best: dict[tuple, Offering] = {}
    best_spot: dict[tuple, Offering] = {}
    seen: set[str] = set()
    for o in offerings:
        seen.add(o.provider)
        k = (o.region, o.gpu, o.gpu_count, o.max_gpus)
        if o.usd_per_hour is None or (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour)):
            best.setdefault(("noprice",) + k, o)  # kept once so the rejection is reported
            continue
        if k not in best or o.usd_per_hour < best[k].usd_per_hour:
            best[k] = o
        if spot_ok and o.spot_usd_per_hour is not None and (k not in best_spot or o.spot_usd_per_hour < best_spot[k].spot_usd_per_hour):
            best_spot[k] = o
    keep = {id(o) for o in best.values()} | {id(o) for o in best_spot.values()}
    return [o for o in offerings if id(o) in keep], seen
