"""Cost model: billed hours × effective price, plus recorded egress and storage.

A replica is billed from ``created_at`` (launch; else ``ready_at``) to ``terminated_at`` (or now),
as clouds bill instances from launch, not from when vLLM answers. ``usd_per_hour`` on the replica
row is already the effective price: list minus the negotiated discount, the spot price for spot,
and for on-prem the amortized hardware plus power × PUE × $/kWh. ``list_usd_per_hour`` is the
price before discounts (equal to effective when not recorded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.metering.store import CostItem, Replica

DAY = 86400.0


@dataclass
class ReplicaDayCost:
    """Compute cost of one replica on one UTC day, within the report window."""

    replica: Replica
    day: int  # unix seconds of the UTC day start
    start: float  # billed interval inside the day
    end: float
    effective_usd: float
    list_usd: float
    extra_usd: float = 0.0  # egress + storage attributed to this replica-day
    extra: dict[str, float] = field(default_factory=dict)  # by kind

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600.0

    @property
    def gpu_hours(self) -> float:
        return self.hours * self.replica.gpu_count

    @property
    def total_usd(self) -> float:
        return self.effective_usd + self.extra_usd


def billed_interval(replica: Replica, start: float, end: float, now: float) -> tuple[float, float] | None:
    """The part of [start, end) during which the replica was billed, or None."""
    if replica.start is None:
        return None
    lo = max(start, replica.start)
    hi = min(end, replica.end if replica.end is not None else now)
    return (lo, hi) if hi > lo else None


def replica_day_costs(replicas: Iterable[Replica], start: float, end: float, now: float) -> list[ReplicaDayCost]:
    """Compute cost per replica per UTC day over [start, end)."""
    out: list[ReplicaDayCost] = []
    for r in replicas:
        span = billed_interval(r, start, end, now)
        if span is None:
            continue
        lo, hi = span
        day = lo - lo % DAY
        while day < hi:
            a, b = max(lo, day), min(hi, day + DAY)
            if b > a:
                h = (b - a) / 3600.0
                out.append(ReplicaDayCost(r, int(day), a, b, h * r.usd_per_hour, h * r.list_usd_per_hour))
            day += DAY
    return out


def attach_items(lines: list[ReplicaDayCost], items: Iterable[CostItem]) -> list[CostItem]:
    """Add egress/storage items to the replica-day they belong to; returns the ones that match none.

    An item names a replica (attributed to that replica on the item's day) or only a deployment
    (split over that deployment's replicas on that day by billed hours).
    """
    by_rday = {(ln.replica.id, ln.day): ln for ln in lines}
    by_dday: dict[tuple[str, int], list[ReplicaDayCost]] = defaultdict(list)
    for ln in lines:
        by_dday[(ln.replica.deployment, ln.day)].append(ln)
    unmatched = []
    for it in items:
        day = int(it.ts - it.ts % DAY)
        targets: list[tuple[ReplicaDayCost, float]] = []
        if it.replica_id and (it.replica_id, day) in by_rday:
            targets = [(by_rday[(it.replica_id, day)], 1.0)]
        elif it.deployment and by_dday.get((it.deployment, day)):
            group = by_dday[(it.deployment, day)]
            total = sum(g.hours for g in group) or 1.0
            targets = [(g, g.hours / total) for g in group]
        if not targets:
            unmatched.append(it)
            continue
        for ln, share in targets:
            ln.extra_usd += it.usd * share
            ln.extra[it.kind] = ln.extra.get(it.kind, 0.0) + it.usd * share
    return unmatched


KEYS: dict[str, Callable[[Replica], str]] = {
    "replica": lambda r: r.id,
    "deployment": lambda r: r.deployment,
    "team": lambda r: r.team or "(none)",
    "provider": lambda r: r.provider,
    "region": lambda r: r.region,
    "model": lambda r: r.model,
}


def cost_by(lines: Iterable[ReplicaDayCost], by: str) -> dict[str, float]:
    """Total cost (compute + extras) per replica, deployment, team, provider, region or model."""
    key = KEYS[by]
    out: dict[str, float] = defaultdict(float)
    for ln in lines:
        out[key(ln.replica)] += ln.total_usd
    return dict(out)
