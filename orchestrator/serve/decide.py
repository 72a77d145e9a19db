"""How many replicas a deployment should run: pure rules over observed load, with hysteresis and cool-downs.

The load is measured against each replica's capacity at the SLO (a measured profile, else the performance
model), not a raw QPS threshold: ``need`` is how many replicas the observed load fills completely, by the
larger of two views of it (output tokens/s against the tokens/s a replica sustains at the TPOT SLO, and
requests in flight, running or queued, against the batch a replica runs at that SLO).

- Scale out when the load has stayed above ``target`` × capacity for ``scale_out_after_s``: to as many replicas
  as the smallest load of that window needs at the target (at least one more).
- Scale in, one replica at a time, when for ``scale_in_after_s`` one replica fewer would still have stayed
  below the target by the ``band`` (hysteresis: a load hovering at the line moves nothing).
- Nothing within ``cooldown_s`` of the last change; never below the minimum (or the spot policy's on-demand
  floor) nor above the maximum; nothing on a window the observations do not cover (gaps are not zero load).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.perf.capacity import Capacity


@dataclass(frozen=True)
class Observation:
    t: float  # unix seconds
    replicas: int  # replicas whose metrics were read
    output_tokens_per_s: float  # generated tokens/s over the last interval, summed over them
    running: float  # requests running, summed
    waiting: float  # requests queued, summed


@dataclass(frozen=True)
class Rules:
    min_replicas: int
    max_replicas: int
    target: float  # of capacity at the SLO, in (0, 1]
    scale_out_after_s: float = 30.0
    scale_in_after_s: float = 300.0
    cooldown_s: float = 120.0
    band: float = 0.15
    floor: int = 0  # replicas that must stay whatever the load (the spot policy's on-demand floor)


@dataclass(frozen=True)
class Decision:
    replicas: int  # how many there should be
    change: int  # replicas - current
    reason: str


def need(o: Observation, cap: Capacity) -> float:
    """Replicas this load fills at 100 % of their capacity at the SLO."""
    by_tokens = o.output_tokens_per_s / cap.output_tokens_per_s if cap.output_tokens_per_s > 0 else 0.0
    by_requests = (o.running + o.waiting) / cap.concurrency if cap.concurrency > 0 else 0.0
    return max(by_tokens, by_requests)


def _window(history: Sequence[Observation], now: float, seconds: float) -> list[Observation] | None:
    """The observations of the last ``seconds``, or None when the history does not reach back that far."""
    if not history or history[0].t > now - seconds:
        return None
    inside = [o for o in history if o.t >= now - seconds]
    return inside or None


def decide(history: Sequence[Observation], cap: Capacity, rules: Rules, current: int, now: float,
           last_change: float | None = None) -> Decision:
    """``history``: oldest first; ``current``: replicas the plan has now."""
    low = max(rules.min_replicas, rules.floor, 1)
    high = max(rules.max_replicas, low)

    def hold(reason: str) -> Decision:
        return Decision(current, 0, reason)

    if current < low:
        return Decision(low, low - current, f"below the minimum of {low}")
    if current > high:
        return Decision(high, high - current, f"above the maximum of {high}")
    if last_change is not None and now - last_change < rules.cooldown_s:
        return hold(f"cooling down ({now - last_change:.0f} of {rules.cooldown_s:.0f} s since the last change)")
    last = history[-1] if history else None
    if last is None:
        return hold("no observation yet")
    util = need(last, cap) / max(current, 1)

    out = _window(history, now, rules.scale_out_after_s)
    if out is not None and current < high:
        needs = [need(o, cap) for o in out]
        if all(n > rules.target * current for n in needs):
            want = min(high, max(current + 1, math.ceil(min(needs) / rules.target - 1e-9)))
            return Decision(want, want - current, f"load {min(needs) / current:.0%} to {max(needs) / current:.0%} "
                            f"of capacity for {rules.scale_out_after_s:.0f} s, above the target {rules.target:.0%}")
    inn = _window(history, now, rules.scale_in_after_s)
    if inn is not None and current > low:
        peak = max(need(o, cap) for o in inn)
        fewer = current - 1
        if peak <= rules.target * fewer * (1.0 - rules.band):
            return Decision(fewer, -1, f"load at most {peak / current:.0%} of capacity for "
                            f"{rules.scale_in_after_s:.0f} s: {fewer} replica(s) would stay under "
                            f"{rules.target * (1 - rules.band):.0%}")
    return hold(f"load {util:.0%} of capacity (target {rules.target:.0%})")
