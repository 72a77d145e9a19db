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
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator import compat
from orchestrator.catalog.types import (  # noqa: F401
    GPU,
    HOURS_PER_MONTH,
    MARKETS,
    ON_DEMAND,
    ONPREM_PROVIDERS,
    SPOT,
    Offering,
    Region,
)
from orchestrator.placement.offerings import OfferingTable
from orchestrator.placement.pruning import CandidateRows, DominanceColumns, RegionPrune, codes, pareto
from orchestrator.solver.problem import CLOUD_PUE, Candidate  # noqa: F401 - re-exported (tests, policies)

if TYPE_CHECKING:
    from orchestrator.model_arch import ModelArch
    from orchestrator.spec.models import Deployment
    from policies.base import Policy
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)

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


def gpu_options(gpu_count: int, max_gpus: int | None) -> list[int]:
    """GPUs per replica that an instance with gpu_count GPUs can host: divisors, or whole-node multiples."""
    opts = [g for g in POWERS_OF_TWO if g <= gpu_count and gpu_count % g == 0]
    if gpu_count >= 8:  # multi-node replicas only from full nodes (NVLink/IB class machines)
        opts += [gpu_count * k for k in (2, 4) if gpu_count * k <= 64]
    if max_gpus is not None:
        opts = [g for g in opts if g <= max_gpus]
    return opts


def build_candidates(
    deployment: Deployment,
    model: ModelArch,
    offerings: Sequence[Offering] | OfferingTable,
    gpus: dict[str, GPU],
    sources: list[tuple[str, float]],
    rtt: RttFn,
    policies: Sequence[Policy] = (),
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


def _finish(out: DeploymentCandidates, rows: _Rows, deployment: Deployment, gpus: dict[str, GPU], regions: dict[str, Region],
            pue_by_region: dict[str, float], carbon_by_region: dict[str, float], policies: Sequence[Policy], *, prune: bool,
            limited: Callable[[Candidate], bool] | None, exact_ttft: bool, carbon: bool,
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
        _, first, key = np.unique(codes(*(fields[f] for f in reads)), return_index=True, return_inverse=True)
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
    inv = codes(region[idx], market, gpu[idx], cnt, g, rows.q[idx], max_gpus[idx])
    order = np.lexsort((unit, inv))
    first_of = np.ones(len(order), bool)
    first_of[1:] = inv[order][1:] != inv[order][:-1]
    sel = np.sort(order[first_of])
    if prune:
        lim = table.counted(limited)[off[idx]]
        if any(getattr(p, "per_gpu_type", False) for p in policies):  # rows tie the choice to GPU types
            lim = np.ones(len(idx), bool)
        group = codes(region[idx], market, np.where(lim, gpu[idx], -1))
        cols = DominanceColumns(unit=unit, capacity=np.minimum(rps, req), co2=co2, gpus=gpus_unit, ttft=ttft, reach=reach,
                                counted=lim)
        kept = pareto(sel, group, cols, exact_ttft=exact_ttft, carbon=carbon)
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
