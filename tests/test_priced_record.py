"""One priced-replica record from plan to report (issue 19, item 4): the plan's group makes it, apply's desired
replica and diff carry it, the state row stores and returns it, metering's replica is one. A discount survives
every step (list price above the effective one)."""

from __future__ import annotations

from dataclasses import fields

from orchestrator.apply.desired import desired_replicas
from orchestrator.apply.diff import Resource, deletion, diff
from orchestrator.metering import store as metering
from orchestrator.plan import Plan, ReplicaGroup
from orchestrator.priced import PricedReplica
from orchestrator.state import store
from orchestrator.state.db import open_state
from orchestrator.state.models import Replica as ReplicaRow
from providers.base import Handle

import test_apply_fakeprovider as fake


def _discounted(count: int) -> dict:
    g = fake.group("fake:a", count)
    g.update(usd_per_hour=0.8 * count, list_usd_per_hour=1.0 * count)  # a 20 % discount on the group
    return g


def test_the_group_prices_one_replica_and_keeps_the_list_price() -> None:
    p = ReplicaGroup(**_discounted(4)).replica()
    assert (p.usd_per_hour, p.list_usd_per_hour, p.gpu_count) == (0.8, 1.0, 1)
    older = ReplicaGroup(**{**_discounted(2), "list_usd_per_hour": None}).replica()  # a plan from before list prices
    assert older.list_usd_per_hour == older.usd_per_hour == 0.8


def test_every_stage_holds_the_same_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plan.json"
    fake.write_plan(path, "acme", "sha", {"chat": [[_discounted(2)]]})
    plan = Plan.model_validate_json(path.read_text())
    wanted = desired_replicas(plan)
    priced = wanted[0].priced
    assert priced.list_usd_per_hour > priced.usd_per_hour

    changes = diff(wanted, [])
    assert [c.priced for c in changes] == [d.priced for d in wanted]

    db = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with db.session() as s:
        for d in wanted:
            store.upsert_replica(s, d.id, project="acme", deployment="chat", team=None, model="m", **d.priced.columns(),
                                 plan_id="p1", group_key=d.group_key, status="running")
    rows = store.replicas(db, "acme")
    assert [r.priced for r in rows] == [priced, priced]

    # what exists, as apply sees it, and its deletion, carry the row's record
    gone = deletion(Resource(rows[0].id, "chat", "fake", "fake:a", Handle("fake", "h", "fake:a", "running"), True,
                             True, rows[0].priced))
    assert gone.priced == priced and gone.usd_per_hour == 0.8

    metered = metering.replicas(db.engine)
    assert all(isinstance(r, PricedReplica) for r in metered)
    assert {PricedReplica(**{f.name: getattr(r, f.name) for f in fields(PricedReplica)}) for r in metered} == {priced}


def test_the_state_table_stores_every_field_of_the_record() -> None:
    names = {f.name for f in fields(PricedReplica)}
    assert names <= set(ReplicaRow.__table__.columns.keys())


def test_a_row_without_a_list_price_bills_at_its_effective_price() -> None:
    p = PricedReplica.of({"provider": "aws", "region": "aws:us-east-1", "instance_type": "g5.xlarge", "gpu": "A10G",
                          "gpu_count": 1, "market": "on_demand", "usd_per_hour": 1.006, "list_usd_per_hour": None})
    assert p.list_usd_per_hour == 1.006
    unknown = deletion(Resource("r", "chat", "aws", "aws:us-east-1", Handle("aws", "i-1", "aws:us-east-1", "running"),
                                True, False))
    assert (unknown.priced.instance_type, unknown.usd_per_hour) == ("?", 0.0)
