"""Cost model: billed hours split by UTC day, effective vs list price, egress/storage attribution."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestrator.cost import attach_items, billed_spans, cost_by, replica_day_costs
from orchestrator.metering.store import CostItem, Replica


def ts(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp()


def rep(rid: str, start: str, end: str | None, usd: float, list_usd: float, **kw) -> Replica:  # type: ignore[no-untyped-def]
    base = dict(
        project="p", deployment="chat", team="support", model="llama-3.1-8b", provider="aws", region="aws:us-east-1",
        instance_type="g6.xlarge", gpu="L4", gpu_count=1, market="on_demand", plan_id="p1", endpoint=None,
        status="running",
    )
    base.update(kw)
    return Replica(id=rid, usd_per_hour=usd, list_usd_per_hour=list_usd, start=ts(start), end=ts(end) if end else None, **base)


def test_split_by_day_with_effective_and_list_price() -> None:
    r = rep("a", "2026-11-01T22:00:00", "2026-11-02T03:00:00", usd=1.7, list_usd=2.0)  # 15% discount recorded
    lines = replica_day_costs([r], ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"), now=ts("2026-11-30T00:00:00"))
    assert [ln.hours for ln in lines] == [2.0, 3.0]
    assert [round(ln.effective_usd, 6) for ln in lines] == [3.4, 5.1]
    assert [round(ln.list_usd, 6) for ln in lines] == [4.0, 6.0]
    assert lines[1].day == int(ts("2026-11-02T00:00:00"))


def test_running_replica_is_billed_until_now_and_window_clips() -> None:
    r = rep("a", "2026-10-31T20:00:00", None, usd=0.5, list_usd=0.5, gpu_count=4, market="spot")
    now = ts("2026-11-01T06:00:00")
    ((lo, hi, _price),) = billed_spans(r, ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"), now)
    assert (lo, hi) == (ts("2026-11-01T00:00:00"), now)
    (line,) = replica_day_costs([r], ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"), now)
    assert line.hours == 6 and line.gpu_hours == 24 and line.effective_usd == pytest.approx(3.0)


def test_replica_outside_window_costs_nothing() -> None:
    r = rep("a", "2026-10-01T00:00:00", "2026-10-02T00:00:00", usd=1, list_usd=1)
    assert replica_day_costs([r], ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"), ts("2026-11-05T00:00:00")) == []


def test_egress_and_storage_are_attributed() -> None:
    a = rep("a", "2026-11-01T00:00:00", "2026-11-01T06:00:00", usd=1, list_usd=1)
    b = rep("b", "2026-11-01T00:00:00", "2026-11-01T02:00:00", usd=1, list_usd=1)
    lines = replica_day_costs([a, b], ts("2026-11-01T00:00:00"), ts("2026-11-02T00:00:00"), ts("2026-11-05T00:00:00"))
    items = [
        CostItem(ts("2026-11-01T01:00:00"), "a", None, "egress", 10, "GB", 0.9, None),
        CostItem(ts("2026-11-01T01:00:00"), None, "chat", "storage", 100, "GB-month", 8.0, None),  # split 6h:2h
        CostItem(ts("2026-11-01T01:00:00"), None, "other", "egress", 1, "GB", 5.0, None),  # no such deployment
    ]
    unmatched = attach_items(lines, items)
    by_id = {ln.replica.id: ln for ln in lines}
    assert by_id["a"].extra == pytest.approx({"egress": 0.9, "storage": 6.0})
    assert by_id["b"].extra == pytest.approx({"storage": 2.0})
    assert [u.deployment for u in unmatched] == ["other"]
    assert cost_by(lines, "replica") == pytest.approx({"a": 6 + 6.9, "b": 2 + 2.0})
    assert cost_by(lines, "team") == pytest.approx({"support": 16.9})


def test_onprem_and_grouping_keys() -> None:
    # on-prem: usd_per_hour already holds amortized hardware + power x PUE x $/kWh (e.g. 8 GPUs:
    # 8 x 1.10 + 8 x 0.7 kW x 1.3 x 0.21 = 10.329 $/h)
    onprem = rep("o", "2026-11-01T00:00:00", "2026-11-01T10:00:00", usd=10.329, list_usd=10.329, provider="onprem",
                 region="onprem:dc-frankfurt", market="onprem", gpu_count=8, team=None)
    lines = replica_day_costs([onprem], ts("2026-11-01T00:00:00"), ts("2026-11-02T00:00:00"), ts("2026-11-03T00:00:00"))
    assert cost_by(lines, "region") == pytest.approx({"onprem:dc-frankfurt": 103.29})
    assert cost_by(lines, "team") == pytest.approx({"(none)": 103.29})
    assert lines[0].gpu_hours == 80
