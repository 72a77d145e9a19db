"""`orch report --by adapter`: each LoRA deployment's tokens and cost per adapter (rows ``deployment/adapter``).

Tokens come from adapter_usage_hourly (orchestrator/metering/adapters.py: an estimate, see there). Each replica-day
line is split into one part per adapter that served in it: the adapter's attributed counters, and its share of the
line's cost (compute, extras, billed time, planned egress) in proportion to its tokens (input + output). Tokens the
meter counted outside any split interval stay in ``deployment/(unattributed)``; deployments without adapters, and
replica-days with no adapter usage recorded, are ``deployment/(no adapter)``; a gateway's cost is
``deployment/(gateway)``. The parts of a line add up to the line, so the total is the same as by any other grouping.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.cost import ReplicaDayCost
from orchestrator.metering.adapters import ESTIMATE_NOTE, NO_ADAPTER
from orchestrator.metering.store import UsageDay
from orchestrator.metering.tables import ADAPTER_COUNTERS

UNATTRIBUTED = "(unattributed)"
GATEWAY = "(gateway)"
TOKENS = ("prompt_tokens", "generation_tokens")


def _replica(line: Any, adapter: str) -> Any:
    """The line's replica, its deployment renamed ``deployment/adapter`` (the key the report groups by)."""
    return dataclasses.replace(line.replica, deployment=f"{line.replica.deployment}/{adapter}")


def _part(line: Any, adapter: str, share: float, counters: dict[str, float] | None, first: bool) -> Any:
    """``line``'s part for ``adapter``: ``share`` of its cost, and ``counters`` (else ``share`` of its own)."""
    from orchestrator.reports.aggregate import Line

    c = line.cost
    cost = ReplicaDayCost(
        _replica(line, adapter), c.day, c.seconds * share, c.effective_usd * share, c.list_usd * share,
        c.extra_usd * share, {k: v * share for k, v in c.extra.items()},
        {k: (q * share, unit) for k, (q, unit) in c.extra_quantity.items()},
    )
    u = line.usage
    usage = None
    if u is not None:
        scaled = {k: v * share for k, v in u.counters.items()}
        if counters is not None:
            scaled.update(counters)
        usage = UsageDay(u.replica_id, u.day, u.samples_ok if first else 0, u.samples_err if first else 0,
                         u.resets if first else 0, u.covered_seconds * share, scaled, u.gauge_means)
    return Line(cost, usage, line.capacity_tps, line.planned_usd_per_m, line.est_egress_usd * share)


def split_line(line: Any, parts: dict[str, dict[str, float]] | None) -> list[Any]:
    """``line`` as its adapters' parts (see the module docstring)."""
    if line.replica.details.get("role") == "gateway":
        return [_part(line, GATEWAY, 1.0, None, True)]
    if not parts:
        return [_part(line, NO_ADAPTER, 1.0, None, True)]
    entries = {a: dict(v) for a, v in parts.items()}
    rest = {k: max(line.counter(k) - sum(v[k] for v in entries.values()), 0.0) for k in ADAPTER_COUNTERS}
    if rest["prompt_tokens"] + rest["generation_tokens"] >= 1.0:
        entries[UNATTRIBUTED] = rest
    weights = {a: v["prompt_tokens"] + v["generation_tokens"] for a, v in entries.items()}
    total = sum(weights.values())
    if total <= 0:
        return [_part(line, NO_ADAPTER, 1.0, None, True)]
    out = []
    for i, (adapter, counters) in enumerate(sorted(entries.items())):
        out.append(_part(line, adapter, weights[adapter] / total, counters, i == 0))
    return out


def adapter_report(engine: Any, lines: list[Any], start: float, end: float, unattributed_usd: float = 0.0) -> Any:
    """The report grouped by ``deployment/adapter``."""
    from orchestrator.metering.adapters import usage_by_adapter_day
    from orchestrator.reports.aggregate import make_report

    usage = usage_by_adapter_day(engine, start, end)
    parts = [p for ln in lines for p in split_line(ln, usage.get((ln.replica.id, ln.cost.day)))]
    report = make_report(parts, start, end, "deployment", unattributed_usd)
    report.by = "adapter"
    if usage:
        report.notes.insert(0, ESTIMATE_NOTE)
    return report
