"""The autoscaler's decisions on metric series: scale out, scale in, hysteresis, cool-down, floor and maximum."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from orchestrator.metering.scrape import COUNTERS, GAUGES, Sample
from orchestrator.perf.capacity import Capacity
from orchestrator.serve.autoscale import observe
from orchestrator.serve.decide import Observation, Rules, decide, need

CAP = Capacity(output_tokens_per_s=600.0, concurrency=4.0, source="measured")
RULES = Rules(min_replicas=1, max_replicas=4, target=0.7, scale_out_after_s=30, scale_in_after_s=120, cooldown_s=60)


def simulate(load: list[float], rules: Rules = RULES, start: int = 1, step: float = 5.0,
             cap: Capacity = CAP) -> tuple[list[int], list[tuple[float, int, str]]]:
    """Feed ``load`` (demand in tokens/s, one value per ``step`` seconds) through the replicas the decisions give:
    served tokens are capped by capacity, the rest queues. Returns replicas per step and the changes made."""
    history: list[Observation] = []
    replicas, last_change, counts, changes = start, None, [], []
    for i, demand in enumerate(load):
        t = i * step
        served = min(demand, cap.output_tokens_per_s * replicas)
        in_flight = demand / cap.output_tokens_per_s * cap.concurrency
        running = min(in_flight, cap.concurrency * replicas)
        history.append(Observation(t, replicas, served, running, max(0.0, in_flight - running)))
        d = decide(history, cap, rules, replicas, t, last_change)
        if d.change:
            changes.append((t, d.change, d.reason))
            replicas, last_change = d.replicas, t
        counts.append(replicas)
    return counts, changes


def test_need_takes_the_larger_of_tokens_and_requests_in_flight() -> None:
    assert need(Observation(0, 1, 300.0, 1, 0), CAP) == 0.5
    assert need(Observation(0, 1, 300.0, 4, 4), CAP) == 2.0  # a queue says more than the token rate


def test_sustained_load_scales_out_after_the_window_to_what_it_needs() -> None:
    load = [100.0] * 10 + [1500.0] * 30  # 1500 tok/s needs 1500 / (600 x 0.7) = 3.6 -> 4 replicas
    counts, changes = simulate(load)
    assert counts[:10] == [1] * 10
    first = changes[0]
    assert first[1] > 0 and 80.0 <= first[0] <= 90.0, changes  # 30 s after the load began at 50 s
    assert counts[-1] == 4


def test_a_burst_shorter_than_the_window_changes_nothing() -> None:
    counts, changes = simulate([100.0] * 10 + [2000.0] * 5 + [100.0] * 20)
    assert changes == [] and set(counts) == {1}


def test_quiet_load_scales_in_one_at_a_time_after_the_window_and_cooldown() -> None:
    counts, changes = simulate([100.0] * 80, start=3)
    assert [c[1] for c in changes] == [-1, -1]
    # the first after the scale-in window, the next after the cool-down (need is in replicas, not per replica:
    # what was seen before the change still says what the load needs)
    assert changes[0][0] >= 120.0 and changes[1][0] - changes[0][0] >= 60.0
    assert counts[-1] == 1


def test_noise_around_the_target_does_not_flap() -> None:
    rng = random.Random(7)
    # 2 replicas at 55-85 % of their capacity: inside the hysteresis band, no reason to move either way
    load = [2 * 600.0 * rng.uniform(0.45, 0.62) for _ in range(400)]
    counts, changes = simulate(load, start=2)
    assert changes == [], changes
    # a noisy load that needs about 2.2 replicas: at most one step out, never back and forth
    load = [600.0 * rng.uniform(1.3, 1.75) for _ in range(400)]
    counts, changes = simulate(load, start=2)
    assert len(changes) <= 1 and all(c[1] > 0 for c in changes), changes


def test_maximum_minimum_and_floor_hold() -> None:
    counts, _ = simulate([10_000.0] * 60)
    assert max(counts) == 4  # max_replicas
    counts, changes = simulate([0.0] * 100, start=3, rules=Rules(2, 4, 0.7, 30, 60, 30))
    assert min(counts) == 2 and counts[-1] == 2
    counts, _ = simulate([0.0] * 100, start=3, rules=Rules(1, 4, 0.7, 30, 60, 30, floor=3))
    assert set(counts) == {3}  # the spot policy's on-demand floor
    d = decide([], CAP, Rules(2, 4, 0.7), current=1, now=0.0)
    assert (d.replicas, d.change) == (2, 1)  # below the minimum: up at once, load or not


def test_cooldown_and_missing_history_hold() -> None:
    hot = [Observation(t, 1, 2000.0, 4, 8) for t in range(0, 61, 5)]
    assert decide(hot, CAP, RULES, 1, now=60.0, last_change=30.0).change == 0  # within 60 s of the last change
    assert decide(hot, CAP, RULES, 1, now=60.0, last_change=None).change > 0
    assert decide(hot[-3:], CAP, RULES, 1, now=60.0).change == 0  # 10 s of history does not cover 30 s


def test_a_recorded_series_through_observe_scales_out_once_and_back_in_after_the_load() -> None:
    """Real scrapes of a tiny-llama CPU replica under 8 clients, then idle (fixture's header): through the same
    observe() the loop uses, with that replica's measured capacity."""
    path = Path(__file__).parent / "fixtures" / "metrics" / "autoscale_local_ramp.csv"
    rows = list(csv.DictReader(line for line in path.read_text().splitlines() if not line.startswith("#")))
    cap = Capacity(614.0, 4.0, "measured")
    rules = Rules(1, 2, 0.7, scale_out_after_s=10, scale_in_after_s=60, cooldown_s=30)
    previous: dict[str, Sample] = {}
    history: list[Observation] = []
    replicas, last_change, changes = 1, None, []
    for r in rows:
        t = float(r["t"])
        counters = dict.fromkeys(COUNTERS, 0.0)
        counters["generation_tokens"] = float(r["generation_tokens"])
        gauges = dict.fromkeys(GAUGES, 0.0)
        gauges.update(running=float(r["running"]), waiting=float(r["waiting"]))
        s = Sample("r0", t, ok=r["ok"] == "1", counters=counters, gauges=gauges, started_at=float(r["started_at"]))
        obs = observe([s], previous, t)
        previous["r0"] = s
        if obs is None:
            continue
        history.append(obs)
        d = decide(history, cap, rules, replicas, t, last_change)
        if d.change:
            changes.append((t, d.change))
            replicas, last_change = d.replicas, t
    ups = [c for c in changes if c[1] > 0]
    downs = [c for c in changes if c[1] < 0]
    assert ups and ups[0][1] == 1  # 1 -> 2 (the maximum)
    assert len(changes) <= 4, changes  # no flapping: out, in, at most once more
    assert all(b[0] - a[0] >= rules.cooldown_s for a, b in zip(changes, changes[1:]))
    assert not downs or downs[0][0] > ups[0][0]
