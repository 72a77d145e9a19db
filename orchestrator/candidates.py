"""Candidates: every (offering, GPUs per replica, quantization, market) that can serve a deployment.

A candidate's *unit* is what one buys: one instance (hosting gpu_count/g replicas when the replica
needs g GPUs and g divides the instance's GPUs), or, for multi-node replicas (g > gpu_count), the
g/gpu_count instances one replica spans (tensor parallel inside a node, pipeline parallel across).

Each rejected option is counted per provider and region with its reason, for the explanation.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator import compat
from orchestrator.catalog.types import GPU, HOURS_PER_MONTH, ONPREM_PROVIDERS, Offering, Region  # noqa: F401 - re-exported

# Power usage effectiveness of hyperscaler data centres, for cloud carbon: Google published a fleet PUE of 1.1
# for Q2 2021 (CNBC, 2022-04-13, https://www.cnbc.com/2022/04/13/google-data-center-goal-100percent-green-energy-by-2030.html,
# citing Google's efficiency page https://www.google.com/about/datacenters/efficiency/); the Uptime Institute 2021
# survey average for large data centres was 1.57 (same source). One figure, 1.1, for AWS, GCP and Azure (as of 2021-2022).
CLOUD_PUE = 1.1
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)
MARKETS = ("on_demand", "spot", "onprem")
ON_DEMAND, SPOT = MARKETS[0], MARKETS[1]  # the markets by name (the solver compares with these, not with literals)

# Rejection categories (keys of DeploymentCandidates.rejected[...]); what vLLM can launch (dtype, hardware, checkpoint,
# parallelism, context) is orchestrator/compat.py's, from orchestrator/data/vllm_compat.yaml.
MEMORY, SLO_TPOT, SLO_TTFT, POLICY, NO_PRICE = "memory", "slo_tpot", "slo_ttft", "policy", "no_price"
OPT_IN = "opt_in"  # an accelerator offered only where a hardware policy names it (TPU, Trainium): not the user's policy
PARALLEL, CONTEXT = compat.PARALLEL, compat.CONTEXT
REASON_TEXT = {
    MEMORY: "model does not fit in GPU memory",
    SLO_TPOT: "TPOT SLO not met",
    SLO_TTFT: "TTFT SLO not met from any user region (incl. network RTT)",
    POLICY: "excluded by policy",
    OPT_IN: "not a GPU: offered only where a hardware policy names it",
    NO_PRICE: "no price",
    **compat.REASON_TEXT,
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
    # derived from the fields above when created (read many times by the bounds and the model: a cached_property
    # takes a lock on first use in Python 3.11, and that cost 0.1 s over the candidates of 5,000 x 50)
    instances_per_replica: int = field(init=False, repr=False, compare=False)
    replicas_per_unit: int = field(init=False, repr=False, compare=False)
    instances_per_unit: int = field(init=False, repr=False, compare=False)  # one instance, or the instances one replica spans
    gpus_per_unit: int = field(init=False, repr=False, compare=False)
    tensor_parallel: int = field(init=False, repr=False, compare=False)
    pipeline_parallel: int = field(init=False, repr=False, compare=False)
    usd_per_unit_hour: float = field(init=False, repr=False, compare=False)
    rps_per_unit: float = field(init=False, repr=False, compare=False)
    carbon_g_per_unit_hour: float = field(init=False, repr=False, compare=False)

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

    def __post_init__(self) -> None:
        n = self.offering.gpu_count
        self.instances_per_replica = max(1, self.gpus_per_replica // n)
        self.replicas_per_unit = max(1, n // self.gpus_per_replica)
        self.instances_per_unit = self.instances_per_replica
        self.gpus_per_unit = n * self.instances_per_unit
        self.tensor_parallel = min(self.gpus_per_replica, n)
        self.pipeline_parallel = self.instances_per_replica
        self.usd_per_unit_hour = self.usd_per_instance_hour * self.instances_per_unit
        self.rps_per_unit = self.rps_per_replica * self.replicas_per_unit
        self.carbon_g_per_unit_hour = self.gpus_per_unit * self.gpu_tdp_w / 1000.0 * self.pue * self.grid_g_per_kwh

    @property
    def list_usd_per_instance_hour(self) -> float:
        """The price before negotiated discounts (the catalog's list price); spot and on-prem prices have none."""
        listed = self.offering.list_usd_per_hour
        return listed if self.market == "on_demand" and listed is not None else self.usd_per_instance_hour

    def describe(self) -> str:
        n = f"{self.gpus_per_replica}×{self.gpu}"
        return f"{self.region} {self.instance_type} ({n}, {self.quantization}, {self.market})"


@dataclass
class DeploymentCandidates:
    deployment: str
    candidates: list[Candidate]
    # provider -> reason -> count; reason -> one example message (the best scored); provider -> reason -> that
    # provider's own example
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, str] = field(default_factory=dict)
    provider_examples: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    providers_seen: set[str] = field(default_factory=set)
    pruned: int = 0  # dominated candidates removed
    dominated: dict[str, Candidate] = field(default_factory=dict)  # provider -> its cheapest pruned candidate
    dominated_gpu: dict[str, Candidate] = field(default_factory=dict)  # accelerator -> its cheapest pruned candidate
    _scores: dict[tuple[str, str], float] = field(default_factory=dict)

    def reject(self, counts: dict[str, int], reason: str, examples: dict[str, tuple[str, float | None]]) -> None:
        """Count rejections (``counts`` per provider) for one reason; ``examples`` gives per provider one
        (message, score). The example kept per (provider, reason) is the first, or the one with the lowest score."""
        for p, n in counts.items():
            self.rejected[p][reason] += n
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


class OfferingTable:
    """A catalog's offerings as arrays, prepared once for all the deployments' candidates.

    Per region and GPU shape (type x count, inventory) only the cheapest on-demand and the cheapest spot offering
    can matter (instance types differing in CPU/RAM serve the same at a higher price), so only those are kept;
    ``spot_only`` marks those kept for their spot price alone."""

    def __init__(self, offerings: Sequence[Offering], gpus: dict[str, GPU]) -> None:
        kept, spot_only, self.providers_seen = _cheapest(offerings)
        self.offerings = kept
        self.spot_only = np.array(spot_only, bool)
        self.providers, self.provider = _index([o.provider for o in kept])
        self.regions, self.region = _index([o.region for o in kept])
        self.region_names = np.array(self.regions)
        self.count = np.array([o.gpu_count for o in kept], np.int64)
        self.max_gpus = np.array([-1 if o.max_gpus is None else o.max_gpus for o in kept], np.int64)
        _, self.gpu = _index([o.gpu for o in kept])
        self.onprem = np.array([o.provider in ONPREM_PROVIDERS for o in kept], bool)
        priced = np.array([_priced(o) for o in kept], bool)
        self.od_price = np.array([float(o.usd_per_hour) if p else math.nan for o, p in zip(kept, priced)])
        self.spot_price = np.array([math.nan if o.spot_usd_per_hour is None else o.spot_usd_per_hour for o in kept], float)
        self.spot_price[self.onprem] = math.nan
        known = np.array([o.gpu in gpus for o in kept], bool)
        self.unknown_gpu = np.nonzero(~known)[0]
        self.no_price = np.nonzero(known & ~priced)[0]
        groups: dict[tuple[str, int, int | None], list[int]] = defaultdict(list)
        for i in np.nonzero(known & priced)[0].tolist():
            o = kept[i]
            groups[(o.gpu, o.gpu_count, o.max_gpus)].append(i)
        self.groups = {k: np.array(v, np.int64) for k, v in groups.items()}
        # the groups in catalog order, by their first offering (without spot prices: by their first on-demand one)
        on_demand = {k: v[~self.spot_only[v]] for k, v in self.groups.items()}
        self.group_order = {True: list(self.groups),
                            False: sorted((k for k, v in on_demand.items() if len(v)), key=lambda k: int(on_demand[k][0]))}
        self.shapes = sorted({(o.gpu, o.gpu_count) for o in kept})
        self._counted: dict[int, tuple[Callable[[Any], bool], np.ndarray]] = {}

    def counted(self, limited: Callable[[Any], bool] | None) -> np.ndarray:
        """Per offering: on-prem, or ``limited`` (a quota counts its GPUs); remembered per function."""
        hit = self._counted.get(id(limited))
        if hit is None:
            flags = self.onprem.copy()
            if limited is not None:
                flags |= np.array([limited(o) for o in self.offerings], bool)
            hit = self._counted[id(limited)] = (limited, flags)  # the function is kept so its id stays its own
        return hit[1]


def build_candidates(
    deployment: Any,
    model: Any,
    offerings: Sequence[Offering] | OfferingTable,
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

    ``offerings``: the catalog's, or their OfferingTable (build it once when there are many deployments).
    ``sources`` are (region id, share) of the users; ``rtt(a, b)`` the round trip between region ids.
    ``estimate_batch(model, [(GPU, gpus, quantization)], input, output, tpot_slo_ms=, kv_cache_dtype=,
    utilization=)`` is the performance model. ``limited(c)`` says whether a quota counts c's GPUs (pruning
    then keeps GPU types apart). ``exact_ttft`` keeps faster candidates when latency is the objective;
    otherwise TTFT matters only through which user regions a candidate can answer in time.
    ``region_prune`` drops, after the per-region dominance pruning, what it finds beaten from elsewhere.
    """
    table = offerings if isinstance(offerings, OfferingTable) else OfferingTable(offerings, gpus)
    regions = regions or {}
    pue_by_region = pue_by_region or {}
    carbon_by_region = carbon_by_region or {}
    out = DeploymentCandidates(deployment=deployment.name, candidates=[], providers_seen=set(table.providers_seen))
    t = deployment.traffic
    slo = deployment.slo
    spot_ok = deployment.spot in ("allow", "prefer")
    utilization = 1.0 / (1.0 + t.headroom)

    # 1. what vLLM can run per GPU type (bf16 may be planned as fp16; what it cannot run is never offered), then
    # performance per (gpu, g, quantization), computed once per distinct configuration.
    verdicts = {gname: [compat.resolve(model, gpus[gname], q) for q in deployment.quantization]
                for gname in {gname for gname, _ in table.shapes if gname in gpus}}
    # accelerators that are not GPUs (TPU, Trainium) only where the deployment's hardware policy names them
    named = set().union(*(p.named_gpus() for p in policies))
    opted_out = {gname for gname in verdicts if compat.opt_in(gpus[gname]) and gname not in named}
    verdicts = {gname: ([] if gname in opted_out else v) for gname, v in verdicts.items()}
    configs = sorted({(gname, g, v.quantization) for gname, count in table.shapes if gname in gpus
                      for g in gpu_options(count, None) for v in verdicts[gname] if v.quantization})
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

    max_len = compat.max_model_len(deployment, model)
    seq = t.input_tokens + t.output_tokens
    offs = table.offerings

    def usable(pos: np.ndarray) -> np.ndarray:  # without the offerings kept for a spot price this one cannot use
        return pos if spot_ok else pos[~table.spot_only[pos]]

    _reject_all(out, table, usable(table.unknown_gpu), MEMORY, lambda k: f"unknown GPU {offs[k].gpu}")
    _reject_all(out, table, usable(table.no_price), NO_PRICE,
                lambda k: f"{offs[k].region} {offs[k].instance_type}: no price in the catalog")
    # 2. offerings grouped by GPU shape; every check below is one array operation over a group's offerings.
    rtt_rs = np.array([[rtt(s, r) for s, _ in sources] for r in table.regions]).reshape(len(table.regions), len(sources))
    best_rtt = rtt_rs.min(axis=1) if len(sources) else np.zeros(len(table.regions))
    bits = (1 << np.arange(len(sources), dtype=np.int64)) if sources else np.zeros(0, np.int64)
    rows = _Rows(table, spot_ok)
    for gname, count, max_gpus in table.group_order[spot_ok]:
        pos = usable(table.groups[(gname, count, max_gpus)])
        reg = table.region[pos]
        opts = gpu_options(count, max_gpus)
        if gname in opted_out:
            _reject_all(out, table, pos, OPT_IN, lambda k: (f"{offs[k].instance_type} ({offs[k].gpu}): not a GPU; offered only "
                                                            f"to a deployment whose hardware policy names {offs[k].gpu}"))
            continue
        if compat.single_node(gpus[gname]):
            opts = [g for g in opts if g <= count]
        planned: set[str] = set()
        for v in verdicts[gname]:
            if v.reason is not None:  # not offered, or offered as another dtype: counted either way
                _reject_all(out, table, pos, v.reason, lambda k, v=v: f"{offs[k].instance_type} ({offs[k].gpu}, {v.requested}): {v.message}")
            q = v.quantization
            if q is None or q in planned:
                continue
            planned.add(q)
            fitting = [g for g in opts if perf.get((gname, g, q)) is not None and perf[(gname, g, q)].fits]
            if not fitting:
                e = perf.get((gname, opts[-1], q)) if opts else None
                msg = getattr(e, "reason", "") or f"{model.name} ({q}) does not fit in {opts[-1] if opts else 0}×{gname}"
                _reject_all(out, table, pos, MEMORY, lambda k, msg=msg: f"{offs[k].instance_type} ({offs[k].gpu}, {q}): {msg}")
                continue
            for g in fitting[: 1 + extra_sizes]:
                e = perf[(gname, g, q)]
                tp = min(g, count)
                rule, why = PARALLEL, compat.parallel_reason(model, tp)
                if why is None:
                    rule, why = CONTEXT, compat.context_reason(model, max_len, e.kv_capacity_tokens, seq)
                if why is not None:
                    _reject_all(out, table, pos, rule, lambda k, why=why: f"{g}×{offs[k].gpu} ({q}): {why}")
                    continue
                if e.requests_per_s <= 0 or e.tpot_ms > slo.tpot_p95_ms:
                    _reject_all(out, table, pos, SLO_TPOT, lambda k: f"{g}×{offs[k].gpu} ({q}): TPOT {e.tpot_ms:.1f} ms > SLO {slo.tpot_p95_ms:g} ms",
                                score=e.tpot_ms)
                    continue
                lat = best_rtt[reg] + e.ttft_ms
                late = lat > slo.ttft_p95_ms
                if late.any():
                    _reject_all(out, table, pos[late], SLO_TTFT, lambda k: (
                        f"{offs[k].region} {g}×{offs[k].gpu} ({q}): TTFT {e.ttft_ms:.0f} ms + RTT "
                        f"{best_rtt[table.region[k]]:.0f} ms > SLO {slo.ttft_p95_ms:g} ms"), score=lat[late])
                reach_r = ((rtt_rs + e.ttft_ms <= slo.ttft_p95_ms) * bits).sum(axis=1) if len(sources) else np.zeros(len(table.regions), np.int64)
                live = np.nonzero(~late)[0]
                rows.extend(pos[live], g, q, e, reach_r[reg[live]])
    return _finish(out, rows, deployment, gpus, regions, pue_by_region, carbon_by_region, policies, prune=prune, limited=limited,
                   exact_ttft=exact_ttft, carbon=carbon, region_prune=region_prune)


class _Rows:
    """Candidate figures as parallel arrays (one entry per offering x size x quantization x market); offerings
    (positions in the table) and estimates are referred to by position."""

    def __init__(self, table: OfferingTable, spot_ok: bool) -> None:
        self.table = table
        self.spot_price = table.spot_price if spot_ok else np.full(len(table.offerings), math.nan)
        self.ests: list[Any] = []
        self.qs: list[str] = []
        self._parts: list[tuple[np.ndarray, int, int, np.ndarray]] = []  # (positions, g, quantization, reach)

    def extend(self, pos: np.ndarray, g: int, q: str, est: Any, reach: np.ndarray) -> None:
        """The offerings at positions ``pos`` at one size and quantization (estimate ``est``)."""
        if q not in self.qs:
            self.qs.append(q)
        self.ests.append(est)
        self._parts.append((pos, g, self.qs.index(q), reach))

    def finish(self) -> None:
        """All rows as arrays, in one pass: each part's on-demand (on-prem) rows, then its spot rows."""
        parts = self._parts or [(np.zeros(0, np.int64), 0, 0, np.zeros(0, np.int64))]
        part = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
        pos = np.concatenate([p[0] for p in parts])
        rows = np.r_[np.arange(len(pos)), np.nonzero(~np.isnan(self.spot_price[pos]))[0]]
        is_spot = np.arange(len(rows)) >= len(pos)
        order = np.argsort(2 * part[rows] + is_spot, kind="stable")
        rows, is_spot = rows[order], is_spot[order]
        self.est = part[rows]
        self.off = pos[rows]
        self.g = np.array([p[1] for p in parts], np.int64)[self.est]
        self.q = np.array([p[2] for p in parts], np.int64)[self.est]
        self.reach = np.concatenate([p[3] for p in parts]).astype(np.int64)[rows]
        od = np.where(self.table.onprem[self.off], MARKETS.index("onprem"), MARKETS.index("on_demand"))
        self.market = np.where(is_spot, MARKETS.index("spot"), od)
        self.price = np.where(is_spot, self.spot_price[self.off], self.table.od_price[self.off]).astype(float)

    def __len__(self) -> int:
        return len(self.off)

    def offering(self, i: int) -> Offering:
        return self.table.offerings[int(self.off[i])]

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


def _reject_all(out: DeploymentCandidates, table: OfferingTable, pos: np.ndarray, reason: str, message: Callable[[int], str],
                score: float | np.ndarray | None = None) -> None:
    """Reject the offerings at table positions ``pos`` for one reason: counted per provider, one example per
    provider (``message`` of a position): its first, or its lowest scored when ``score`` is an array over ``pos``."""
    if len(pos) == 0:
        return
    prov = table.provider[pos]
    counts = np.bincount(prov, minlength=len(table.providers))
    examples: dict[str, tuple[str, float | None]] = {}
    present, first = np.unique(prov, return_index=True)
    for p in present[np.argsort(first)].tolist():  # providers in the order they come (the first example wins ties)
        mine = np.nonzero(prov == p)[0]
        if isinstance(score, np.ndarray):
            j = int(mine[np.argmin(score[mine])])
            examples[table.providers[p]] = (message(int(pos[j])), float(score[j]))
        else:
            examples[table.providers[p]] = (message(int(pos[mine[0]])), score)
    out.reject({table.providers[p]: int(counts[p]) for p in np.nonzero(counts)[0].tolist()}, reason, examples)


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

    table = rows.table
    off = rows.off
    region, gpu, count, max_gpus = table.region[off], table.gpu[off], table.count[off], table.max_gpus[off]
    ok = np.ones(n, bool)
    fields = {"region": region, "gpu": gpu, "market": rows.market, "quantization": rows.q}
    reads = sorted(set().union(*(getattr(p, "reads", fields) for p in policies)))
    if reads and n:
        # one verdict per distinct combination of the fields the policies read
        _, first, key = np.unique(_codes(*(fields[f] for f in reads)), return_index=True, return_inverse=True)
        verdict = [next((r for p in policies if (r := p.reject(deployment, make(int(i))))), None) for i in first]
        ok = np.array([v is None for v in verdict])[key]
        bad = np.nonzero(~ok)[0]
        why = {k: verdict[key[i]] for i, k in zip(bad.tolist(), off[bad].tolist())}  # an offering's reason (the last one)
        _reject_all(out, table, off[bad], POLICY, lambda k: why[k])
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
        lim = table.counted(limited)[off[idx]]
        if any(getattr(p, "per_gpu_type", False) for p in policies):  # rows tie the choice to GPU types
            lim = np.ones(len(idx), bool)
        group = _codes(region[idx], market, np.where(lim, gpu[idx], -1))
        kept = _pareto(sel, group, lim, unit, np.minimum(rps, req), co2, gpus_unit, ttft, reach,
                       exact_ttft=exact_ttft, carbon=carbon)
        if region_prune is not None and len(kept) > 1:
            keep = region_prune(CandidateRows(table.region_names[region[idx[kept]]], np.array(MARKETS)[market[kept]], unit[kept],
                                              np.minimum(rps, req)[kept], reach[kept], co2[kept], lim[kept]))
            kept = kept[keep]
    else:
        kept = sel
    out.candidates = [make(i) for i in idx[kept].tolist()]
    if prune:
        dropped = np.setdiff1d(sel, kept)
        out.pruned += len(dropped)
        cover = np.ceil(req / rps - 1e-9) * unit
        prov = table.provider[off[idx[dropped]]]
        order = np.lexsort((cover[dropped], prov))  # per provider, the cheapest cover first
        first = np.r_[True, prov[order][1:] != prov[order][:-1]] if len(order) else np.zeros(0, bool)
        for j in dropped[order[first]].tolist():
            out.dominated[rows.offering(idx[j]).provider] = make(int(idx[j]))
        acc = gpu[idx[dropped]]
        order = np.lexsort((cover[dropped], acc))  # per accelerator, the cheapest cover first
        first = np.r_[True, acc[order][1:] != acc[order][:-1]] if len(order) else np.zeros(0, bool)
        for j in dropped[order[first]].tolist():
            out.dominated_gpu[rows.offering(idx[j]).gpu] = make(int(idx[j]))
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


def _priced(o: Offering) -> bool:
    return o.usd_per_hour is not None and not (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour))


def _cheapest(offerings: Sequence[Offering]) -> tuple[list[Offering], list[bool], set[str]]:
    """The cheapest on-demand and the cheapest spot offering per region and GPU shape (and one unpriced offering
    per shape, so its rejection is reported), in catalog order; whether each is kept for its spot price alone;
    every provider seen."""
    best: dict[tuple, Offering] = {}
    best_spot: dict[tuple, Offering] = {}
    seen: set[str] = set()
    for o in offerings:
        seen.add(o.provider)
        k = (o.region, o.gpu, o.gpu_count, o.max_gpus)
        if not _priced(o):
            best.setdefault(("noprice",) + k, o)
            continue
        if k not in best or o.usd_per_hour < best[k].usd_per_hour:
            best[k] = o
        if o.spot_usd_per_hour is not None and (k not in best_spot or o.spot_usd_per_hour < best_spot[k].spot_usd_per_hour):
            best_spot[k] = o
    on_demand = {id(o) for o in best.values()}
    spot = {id(o) for o in best_spot.values()}
    kept = [o for o in offerings if id(o) in on_demand or id(o) in spot]
    return kept, [id(o) not in on_demand for o in kept], seen


def _index(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values, sorted, and each value's position among them."""
    uniq, inv = np.unique(np.array(values, dtype=str), return_inverse=True) if values else (np.zeros(0, str), np.zeros(0, int))
    return uniq.tolist(), inv.astype(np.int64)
