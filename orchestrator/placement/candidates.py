"""Candidates: every (offering, GPUs per replica, quantization, market) that can serve a deployment.

A candidate's *unit* is what one buys: one instance (hosting gpu_count/g replicas when the replica
needs g GPUs and g divides the instance's GPUs), or, for multi-node replicas (g > gpu_count), the
g/gpu_count instances one replica spans (tensor parallel inside a node, pipeline parallel across).

Each rejected option is counted per provider and region with its reason, for the explanation. ``build_candidates``
takes one deployment's ``CandidateRequest`` and the placement's ``CandidateContext``; what passes its checks becomes
rows (rows.py), which policies and dominance pruning turn into the deployment's candidates.
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
from orchestrator.placement.pruning import RegionPrune
from orchestrator.placement.rows import POLICY, Rows, to_candidates
from orchestrator.solver.problem import CLOUD_PUE, Candidate  # noqa: F401 - re-exported (tests, policies)

if TYPE_CHECKING:
    from orchestrator.model_arch import ModelArch
    from orchestrator.spec.models import Deployment
    from policies.base import Policy

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)

# Rejection categories (keys of DeploymentCandidates.rejected[...]); what vLLM can launch (dtype, hardware, checkpoint,
# parallelism, context) is orchestrator/compat.py's, from orchestrator/data/vllm_compat.yaml.
MEMORY, SLO_TPOT, SLO_TTFT, NO_PRICE = "memory", "slo_tpot", "slo_ttft", "no_price"  # POLICY: rows.py's
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

    def reject_at(self, table: OfferingTable, pos: np.ndarray, reason: str, message: Callable[[int], str],
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
        self.reject({table.providers[p]: int(counts[p]) for p in np.nonzero(counts)[0].tolist()}, reason, examples)


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


@dataclass(frozen=True)
class CandidateContext:
    """What every deployment's candidates share in one placement: the catalog (``offerings``: its OfferingTable,
    built once), the round trips between region ids, the performance model, the sites' PUE and grid carbon, and
    the objective's pruning rules.

    ``estimate_batch(model, [(GPU, gpus, quantization)], input, output, tpot_slo_ms=, kv_cache_dtype=,
    utilization=)`` is the performance model. ``limited(c)`` says whether a quota counts c's GPUs (pruning then
    keeps GPU types apart). ``exact_ttft`` keeps faster candidates when latency is the objective; otherwise TTFT
    matters only through which user regions a candidate can answer in time."""

    offerings: OfferingTable
    gpus: dict[str, GPU]
    rtt: RttFn
    estimate_batch: Estimator
    regions: dict[str, Region] = field(default_factory=dict)
    pue_by_region: dict[str, float] = field(default_factory=dict)
    carbon_by_region: dict[str, float] = field(default_factory=dict)
    extra_sizes: int = 2  # sizes kept beyond the smallest that fits
    prune: bool = True
    limited: Callable[[Candidate], bool] | None = None
    exact_ttft: bool = False
    carbon: bool = False


@dataclass(frozen=True)
class CandidateRequest:
    """What build_candidates needs of one deployment: its spec, its model, its users (region id, share), the
    policies that apply to it, and ``region_prune``, which drops, after the per-region dominance pruning, what it
    finds beaten from elsewhere."""

    deployment: Deployment
    model: ModelArch
    sources: list[tuple[str, float]]
    policies: Sequence[Policy] = ()
    region_prune: RegionPrune | None = None


def build_candidates(req: CandidateRequest, ctx: CandidateContext) -> DeploymentCandidates:
    """All candidates of one deployment, with the reasons for everything rejected: what vLLM can run and the
    performance per configuration first, then each GPU shape's offerings as arrays, then policies and pruning."""
    gen = _Generation(req, ctx)
    for gname, count, max_gpus in ctx.offerings.group_order[gen.spot_ok]:
        gen.shape(gname, count, max_gpus)
    return to_candidates(gen.out, gen.rows, req, ctx)


class _Generation:
    """One deployment's candidate generation: what it computes once (verdicts and estimates per configuration,
    round trips per region), the rejections it counts (``out``) and the rows it keeps (``rows``)."""

    def __init__(self, req: CandidateRequest, ctx: CandidateContext) -> None:
        self.req, self.ctx, self.table = req, ctx, ctx.offerings
        d, table = req.deployment, ctx.offerings
        self.out = DeploymentCandidates(deployment=d.name, candidates=[], providers_seen=set(table.providers_seen))
        self.spot_ok = d.spot in ("allow", "prefer")
        self._performance()
        self.max_len = compat.max_model_len(d, req.model)
        self.seq = d.traffic.input_tokens + d.traffic.output_tokens
        offs = table.offerings
        self.reject(self.usable(table.unknown_gpu), MEMORY, lambda k: f"unknown GPU {offs[k].gpu}")
        self.reject(self.usable(table.no_price), NO_PRICE,
                    lambda k: f"{offs[k].region} {offs[k].instance_type}: no price in the catalog")
        # every check below is one array operation over a GPU shape's offerings
        sources, rtt = req.sources, ctx.rtt
        self.rtt_rs = np.array([[rtt(s, r) for s, _ in sources] for r in table.regions]).reshape(len(table.regions), len(sources))
        self.best_rtt = self.rtt_rs.min(axis=1) if len(sources) else np.zeros(len(table.regions))
        self.bits = (1 << np.arange(len(sources), dtype=np.int64)) if sources else np.zeros(0, np.int64)
        self.rows = Rows(table, self.spot_ok)

    def _performance(self) -> None:
        """What vLLM can run per GPU type (bf16 may be planned as fp16; what it cannot run is never offered), then
        performance per (gpu, g, quantization), computed once per distinct configuration."""
        d, model, gpus, table = self.req.deployment, self.req.model, self.ctx.gpus, self.table
        verdicts = {gname: [compat.resolve(model, gpus[gname], q) for q in d.quantization]
                    for gname in {gname for gname, _ in table.shapes if gname in gpus}}
        # accelerators that are not GPUs (TPU, Trainium) only where the deployment's hardware policy names them
        named = set().union(*(p.named_gpus() for p in self.req.policies))
        self.opted_out = {gname for gname in verdicts if compat.opt_in(gpus[gname]) and gname not in named}
        self.verdicts = {gname: ([] if gname in self.opted_out else v) for gname, v in verdicts.items()}
        configs = sorted({(gname, g, v.quantization) for gname, count in table.shapes if gname in gpus
                          for g in gpu_options(count, None) for v in self.verdicts[gname] if v.quantization})
        t = d.traffic
        ests = self.ctx.estimate_batch(
            model, [(gpus[gname], g, q) for gname, g, q in configs], t.input_tokens, t.output_tokens,
            tpot_slo_ms=d.slo.tpot_p95_ms, kv_cache_dtype=d.kv_cache_dtype, utilization=1.0 / (1.0 + t.headroom),
        ) if configs else []
        self.perf = dict(zip(configs, ests))

    def usable(self, pos: np.ndarray) -> np.ndarray:
        """``pos`` without the offerings kept for a spot price this deployment cannot use."""
        return pos if self.spot_ok else pos[~self.table.spot_only[pos]]

    def reject(self, pos: np.ndarray, reason: str, message: Callable[[int], str], score: float | np.ndarray | None = None,
               ) -> None:
        self.out.reject_at(self.table, pos, reason, message, score)

    def shape(self, gname: str, count: int, max_gpus: int | None) -> None:
        """The offerings of one GPU shape: per quantization, the sizes that fit, each checked by ``size``."""
        table, offs = self.table, self.table.offerings
        pos = self.usable(table.groups[(gname, count, max_gpus)])
        reg = table.region[pos]
        opts = gpu_options(count, max_gpus)
        if gname in self.opted_out:
            self.reject(pos, OPT_IN, lambda k: (f"{offs[k].instance_type} ({offs[k].gpu}): not a GPU; offered only "
                                                f"to a deployment whose hardware policy names {offs[k].gpu}"))
            return
        if compat.single_node(self.ctx.gpus[gname]):
            opts = [g for g in opts if g <= count]
        planned: set[str] = set()
        for v in self.verdicts[gname]:
            if v.reason is not None:  # not offered, or offered as another dtype: counted either way
                self.reject(pos, v.reason, lambda k, v=v: f"{offs[k].instance_type} ({offs[k].gpu}, {v.requested}): {v.message}")
            q = v.quantization
            if q is None or q in planned:
                continue
            planned.add(q)
            fitting = [g for g in opts if self.perf.get((gname, g, q)) is not None and self.perf[(gname, g, q)].fits]
            if not fitting:
                e = self.perf.get((gname, opts[-1], q)) if opts else None
                msg = getattr(e, "reason", "") or f"{self.req.model.name} ({q}) does not fit in {opts[-1] if opts else 0}×{gname}"
                self.reject(pos, MEMORY, lambda k, msg=msg, q=q: f"{offs[k].instance_type} ({offs[k].gpu}, {q}): {msg}")
                continue
            for g in fitting[: 1 + self.ctx.extra_sizes]:
                self.size(pos, reg, count, g, q, self.perf[(gname, g, q)])

    def size(self, pos: np.ndarray, reg: np.ndarray, count: int, g: int, q: str, e: Any) -> None:
        """The offerings at ``pos`` (in regions ``reg``, ``count`` GPUs each) at g GPUs per replica and quantization
        q (estimate ``e``): parallelism, context and SLO checks, then rows for those that pass."""
        table, offs, slo, model = self.table, self.table.offerings, self.req.deployment.slo, self.req.model
        rule, why = PARALLEL, compat.parallel_reason(model, min(g, count))
        if why is None:
            rule, why = CONTEXT, compat.context_reason(model, self.max_len, e.kv_capacity_tokens, self.seq)
        if why is not None:
            self.reject(pos, rule, lambda k: f"{g}×{offs[k].gpu} ({q}): {why}")
            return
        if e.requests_per_s <= 0 or e.tpot_ms > slo.tpot_p95_ms:
            self.reject(pos, SLO_TPOT, lambda k: f"{g}×{offs[k].gpu} ({q}): TPOT {e.tpot_ms:.1f} ms > SLO {slo.tpot_p95_ms:g} ms",
                        score=e.tpot_ms)
            return
        lat = self.best_rtt[reg] + e.ttft_ms
        late = lat > slo.ttft_p95_ms
        if late.any():
            self.reject(pos[late], SLO_TTFT, lambda k: (
                f"{offs[k].region} {g}×{offs[k].gpu} ({q}): TTFT {e.ttft_ms:.0f} ms + RTT "
                f"{self.best_rtt[table.region[k]]:.0f} ms > SLO {slo.ttft_p95_ms:g} ms"), score=lat[late])
        n_regions = len(table.regions)
        reach_r = (((self.rtt_rs + e.ttft_ms <= slo.ttft_p95_ms) * self.bits).sum(axis=1) if len(self.req.sources)
                   else np.zeros(n_regions, np.int64))
        live = np.nonzero(~late)[0]
        self.rows.extend(pos[live], g, q, e, reach_r[reg[live]])
