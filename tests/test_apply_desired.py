"""Plan → desired replicas (stable ids, fallbacks) and the diff against what exists."""

from __future__ import annotations

from orchestrator.apply.desired import desired_replicas, group_key, plan_id, replica_id
from orchestrator.apply.diff import Resource, counts, diff
from orchestrator.plan import Plan
from providers.base import Handle

import test_apply_fakeprovider as fake


def _plan(tmp, deployments, project="acme", solve_seconds=0.01) -> Plan:  # type: ignore[no-untyped-def]
    path = tmp / "plan.json"
    fake.write_plan(path, project, "sha", deployments)
    plan = Plan.model_validate_json(path.read_text())
    plan.solve_seconds = solve_seconds
    return plan


def test_replica_ids_are_stable_distinct_and_dns_safe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, {"chat": [[fake.group("fake:a", 2), fake.group("fake:b", 1)]]})
    ids = [d.id for d in desired_replicas(plan)]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert ids[0].startswith("acme-chat-") and ids[0].endswith("-0") and ids[1].endswith("-1")
    again = _plan(tmp_path, {"chat": [[fake.group("fake:a", 2), fake.group("fake:b", 1)]]}, solve_seconds=9.0)
    assert [d.id for d in desired_replicas(again)] == ids  # a re-solved, equal plan names the same replicas
    assert plan_id(again) == plan_id(plan)
    long = replica_id("p" * 63, "d" * 63, "abcdef", 12)
    assert len(long) <= 63 and long.endswith("-abcdef-12")
    assert replica_id("p" * 63, "d" * 63, "abcdef", 12) != replica_id("p" * 63, "e" * 63, "abcdef", 12)


def test_group_key_changes_with_what_makes_a_replica_different(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.plan import ReplicaGroup

    base = ReplicaGroup(**fake.group("fake:a", 1))
    assert group_key(base) == group_key(base.model_copy(update={"count": 7, "usd_per_hour": 9.0}))
    for change in ({"instance_type": "other"}, {"quantization": "fp8"}, {"market": "spot"}, {"region": "fake:b"},
                   {"tensor_parallel": 2}):
        assert group_key(base.model_copy(update=change)) != group_key(base)


def test_fallback_choice_selects_the_option(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, {"chat": [[fake.group("fake:a", 2)], [fake.group("fake:b", 3, "big")]],
                            "batch": [[fake.group("fake:a", 1)]]})
    first = desired_replicas(plan)
    moved = desired_replicas(plan, {"chat": 1})
    assert sorted(d.group.region for d in first if d.deployment.name == "chat") == ["fake:a"] * 2
    assert sorted(d.group.region for d in moved if d.deployment.name == "chat") == ["fake:b"] * 3
    assert [d.id for d in first if d.deployment.name == "batch"] == [d.id for d in moved if d.deployment.name == "batch"]
    assert {d.option for d in moved if d.deployment.name == "chat"} == {1}
    assert desired_replicas(plan, {"chat": 99})[0].option == 1  # clamped to the last fallback


def _res(rid: str, handle: str, in_state: bool = True) -> Resource:
    return Resource(rid, "chat", "fake", "fake:a", Handle("fake", handle, "fake:a", "running"), True, in_state)


def test_diff_create_keep_adopt_delete_and_duplicates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, {"chat": [[fake.group("fake:a", 3)]]})
    d0, d1, d2 = (d.id for d in desired_replicas(plan))
    changes = diff(desired_replicas(plan), [
        _res(d0, "h0"),                      # known: keep
        _res(d1, "h1", in_state=False),      # labelled but unknown to state: adopt
        _res(d0, "h0-dup", in_state=False),  # a duplicate of d0: delete it, keep the known one
        _res("acme-chat-gone-0", "h9"),      # no longer desired: delete
    ])
    by = {(c.action, c.replica_id, c.resource.handle.id if c.resource else None) for c in changes}
    assert by == {("keep", d0, "h0"), ("adopt", d1, "h1"), ("create", d2, None), ("delete", d0, "h0-dup"),
                  ("delete", "acme-chat-gone-0", "h9")}
    assert counts(changes) == {"create": 1, "keep": 1, "adopt": 1, "delete": 2}
    assert all(c.usd_per_hour == 1.0 for c in changes if c.action != "delete")
