"""Cost model: billed hours × effective price, plus recorded egress and storage.

A replica is billed over its billing periods (state's ``billing_periods``): from launch (not from when
vLLM answers, as clouds bill instances from launch) to termination or now, each period at the price
in force then. An apply that changes a kept replica's price closes one period and opens the next, so
the new price applies from that apply on. Prices are effective: list minus the negotiated discount,
the spot price for spot, and for on-prem the amortized hardware plus power × PUE × $/kWh; the list
price is the one before discounts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.metering.store import CostItem, Period, Replica

DAY = 86400.0


@dataclass
class ReplicaDayCost:
    """Compute cost of one replica on one UTC day, within the report window.

    A day on which the price changed (or the replica id was relaunched) is still one line: its cost is
    exact (each span at its own price) and its unit prices are the hour-weighted means.
    """

    replica: Replica
    day: int  # unix seconds of the UTC day start
    seconds: float  # billed inside the day and the window
    effective_usd: float
    list_usd: float
    extra_usd: float = 0.0  # egress + storage attributed to this replica-day
    extra: dict[str, float] = field(default_factory=dict)  # by kind
    extra_quantity: dict[str, tuple[float, str]] = field(default_factory=dict)  # by kind: (quantity, unit)

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def gpu_hours(self) -> float:
        return self.hours * self.replica.gpu_count

    @property
    def total_usd(self) -> float:
        return self.effective_usd + self.extra_usd

    @property
    def usd_per_hour(self) -> float:
        return self.effective_usd / self.hours if self.seconds > 0 else self.replica.usd_per_hour

    @property
    def list_usd_per_hour(self) -> float:
        return self.list_usd / self.hours if self.seconds > 0 else self.replica.list_usd_per_hour


def billed_spans(replica: Replica, start: float, end: float, now: float) -> list[tuple[float, float, Period]]:
    """The parts of [start, end) during which the replica was billed, each with the price then in force."""
    out = []
    for p in replica.billing():
        lo = max(start, p.start)
        hi = min(end, p.end if p.end is not None else now)
        if hi > lo:
            out.append((lo, hi, p))
    return out


def billed_usd(replica: Replica, now: float) -> float:
    """Compute cost from the first launch until now (status's "cost so far")."""
    return sum((hi - lo) / 3600.0 * p.usd_per_hour for lo, hi, p in billed_spans(replica, 0.0, now, now))


def replica_day_costs(replicas: Iterable[Replica], start: float, end: float, now: float) -> list[ReplicaDayCost]:
    """Compute cost per replica per UTC day over [start, end), each span at the price in force then."""
    out: list[ReplicaDayCost] = []
    for r in replicas:
        days: dict[int, ReplicaDayCost] = {}
        for lo, hi, p in billed_spans(r, start, end, now):
            day = lo - lo % DAY
            while day < hi:
                a, b = max(lo, day), min(hi, day + DAY)
                if b > a:
                    h = (b - a) / 3600.0
                    ln = days.setdefault(int(day), ReplicaDayCost(r, int(day), 0.0, 0.0, 0.0))
                    ln.seconds += b - a
                    ln.effective_usd += h * p.usd_per_hour
                    ln.list_usd += h * p.list_usd_per_hour
                day += DAY
        out.extend(days[d] for d in sorted(days))
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
            qty, _unit = ln.extra_quantity.get(it.kind, (0.0, it.unit))
            ln.extra_quantity[it.kind] = (qty + it.quantity * share, it.unit)
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
