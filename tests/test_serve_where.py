"""Where the autoscaler adds and what it removes: the placement the MILP gives with the running replicas fixed."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.placement import place
from orchestrator.plan import ReplicaGroup
from orchestrator.serve.where import cheapest_addition, replan, spot_floor, with_groups, without_one
from orchestrator.spec.loader import load_spec_text

SPEC = """
version: 1
project: scale
deployments:
  - name: chat
    model: llama-3.1-8b
    quantization: [bf16]
    traffic: {{requests_per_second: {rps}, input_tokens: 1000, output_tokens: 200, headroom: 0.2}}
    slo: {{ttft_p95_ms: 2000, tpot_p95_ms: 60}}
    spot: {spot}
providers:
  aws:
    regions: [us-east-1, us-east-2]
    quotas: {quotas}
{budget}
"""


def spec(rps: float = 2.0, quotas: str = "[]", spot: str = "forbid", budget: str = ""):  # type: ignore[no-untyped-def]
    return load_spec_text(SPEC.format(rps=rps, quotas=quotas, spot=spot, budget=budget), "scale.yaml")


def _key(g: ReplicaGroup) -> tuple:
    return (g.region, g.instance_type, g.gpu, g.gpus_per_replica, g.quantization, g.market)


def test_addition_is_the_cheapest_place_with_the_running_replicas_holding_their_gpus() -> None:
    first = place(spec(), with_fallbacks=False).deployments[0].replicas
    assert len(first) == 1
    g = first[0]
    # a quota of exactly what runs now on that GPU type: the next replica must go elsewhere, to what `orch place`
    # picks when that GPU type has no quota left at all
    quota = f"[{{gpu: {g.gpu}, max_gpus: {g.gpus_per_replica * g.count}}}]"
    added = cheapest_addition(spec(quotas=quota), "chat", 1.0, [g])
    # the same demand: 1 req/s of capacity to add, headroom 0.2 kept (cheapest_addition's docstring)
    alt = place(spec(rps=1.0 / 1.2, quotas=f"[{{gpu: {g.gpu}, max_gpus: 0}}]"), with_fallbacks=False).deployments[0].replicas
    assert [_key(a) for a in added] == [_key(a) for a in alt]
    assert all(a.gpu != g.gpu for a in added)
    # no quota: what `orch place` picks for that demand alone (one more of what runs when that is the cheapest)
    same = cheapest_addition(spec(), "chat", 1.0, [g])
    alone = place(spec(rps=1.0 / 1.2), with_fallbacks=False).deployments[0].replicas
    assert [_key(a) for a in same] == [_key(a) for a in alone] and sum(a.count for a in same) == 1


def test_no_room_left_is_a_clear_error() -> None:
    first = place(spec(), with_fallbacks=False).deployments[0].replicas[0]
    with pytest.raises(UserError, match="no place left"):
        cheapest_addition(spec(quotas="[{max_gpus: %d}]" % (first.gpus_per_replica * first.count)), "chat", 1.0,
                          [first])
    running_cost_month = first.usd_per_hour * 730
    with pytest.raises(UserError, match="no place left"):  # the budget counts what runs
        cheapest_addition(spec(budget=f"budget: {{monthly_usd: {running_cost_month + 1:.2f}}}"), "chat", 1.0,
                          [first])


def _group(region: str, price: float, count: int, market: str = "on_demand", cap: float = 5.0) -> ReplicaGroup:
    return ReplicaGroup(provider="aws", region=region, instance_type=f"t-{price}", gpu="L4", gpus_per_replica=1,
                        tensor_parallel=1, quantization="bf16", market=market, count=count,
                        usd_per_hour=price * count, capacity_rps=cap)


def test_scale_in_removes_the_dearest_first_and_keeps_the_on_demand_floor() -> None:
    groups = [_group("aws:us-east-1", 1.0, 2), _group("aws:us-east-2", 3.0, 1, "spot")]
    out, gone = without_one(groups)  # type: ignore[misc]
    assert gone.usd_per_hour == 3.0 and sum(g.count for g in out) == 2
    groups = [_group("aws:us-east-1", 1.0, 1), _group("aws:us-east-2", 3.0, 1, "on_demand"),
              _group("aws:us-east-2", 2.0, 1, "spot")]
    out, gone = without_one(groups, floor=0.5)  # type: ignore[misc]
    # dropping the $3 on-demand replica would leave 1 of 2 on demand: 50 % is still the floor
    assert gone.usd_per_hour == 3.0
    out, gone = without_one(out, floor=0.6)  # type: ignore[misc]
    assert gone.market == "spot"  # the $1 on-demand one must stay: spot alone would be 0 % on demand
    assert without_one([_group("aws:us-east-1", 1.0, 1)]) is None  # never the last replica


def test_groups_grow_or_append_and_the_plan_reprices() -> None:
    plan = place(spec(), with_fallbacks=False)
    g = plan.deployments[0].replicas[0]
    grown = with_groups([g], [g.model_copy(update={"count": 1, "usd_per_hour": g.usd_per_hour / g.count})])
    assert len(grown) == 1 and grown[0].count == g.count + 1
    assert grown[0].usd_per_hour == pytest.approx(g.usd_per_hour / g.count * (g.count + 1), rel=1e-3)
    new = replan(plan, "chat", grown)
    assert new.deployments[0].usd_per_hour > plan.deployments[0].usd_per_hour


def test_spot_floor_reads_the_deployments_spot_rule() -> None:
    assert spot_floor(spec(spot="allow"), "chat") == 0.5
    assert spot_floor(spec(spot="prefer"), "chat") == 0.2
    assert spot_floor(spec(spot="forbid"), "chat") == 0.0


AUTOSCALED = SPEC.replace("    spot: {spot}\n", "    spot: {spot}\n    autoscale: {{min_replicas: {lo}, max_replicas: {hi}}}\n")


def test_apply_brings_the_plan_within_min_and_max_and_keeps_what_the_autoscaler_chose() -> None:
    from orchestrator.serve.autoscale import settle

    def loaded(lo: int, hi: int, rps: float):  # type: ignore[no-untyped-def]
        return load_spec_text(AUTOSCALED.format(rps=rps, quotas="[]", spot="forbid", budget="", lo=lo, hi=hi),
                              "scale.yaml")

    said: list[str] = []
    big = loaded(1, 2, 400.0)
    plan = place(big, with_fallbacks=False)
    planned = sum(g.count for g in plan.deployments[0].replicas)
    assert planned > 2  # the demand alone would take more than the maximum
    capped = settle(plan, big, None, said.append)
    assert sum(g.count for g in capped.deployments[0].replicas) == 2 and "within autoscale" in said[-1]
    small = loaded(3, 5, 1.0)
    plan = place(small, with_fallbacks=False)
    raised = settle(plan, small, None, said.append)
    assert sum(g.count for g in raised.deployments[0].replicas) >= 3  # replicas, not capacity: min_replicas counts them
    # the file unchanged since the autoscaler's last plan: its replicas stay
    autoscaled = raised.model_copy(update={"spec_sha256": small.sha256})
    kept = settle(plan, small, autoscaled, said.append)
    assert kept.deployments[0].replicas == autoscaled.deployments[0].replicas
    changed = settle(plan, small, autoscaled.model_copy(update={"spec_sha256": "other"}), said.append)
    assert sum(g.count for g in changed.deployments[0].replicas) >= 3
