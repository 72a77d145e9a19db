"""Gateways in the plan: where the plan's traffic is served, one per entry region, routing as the plan routes."""

from __future__ import annotations

from pathlib import Path

from orchestrator.placement import place
from orchestrator.serve.sync import GatewayRef, Worker, url_for, wanted
from orchestrator.spec.loader import load_spec

REPO = Path(__file__).resolve().parent.parent


def test_multi_region_gateways_follow_the_plans_routing() -> None:
    loaded = load_spec(REPO / "examples" / "multi-region.yaml")
    plan = place(loaded, with_fallbacks=False)
    for dep, spec_dep in zip(plan.deployments, loaded.spec.deployments):
        assert dep.gateways, dep.name
        users = [u for g in dep.gateways for u in g.users]
        assert len(users) == len(set(users))  # each user region enters at one gateway
        routed = {u for grp in dep.replicas for u in grp.traffic}
        assert set(users) == routed  # every user region the plan serves has its gateway
        for g in dep.gateways:
            # the gateway sits in the region serving most of its users' traffic...
            for u in g.users:
                top = max(dep.replicas, key=lambda grp: grp.traffic.get(u, 0.0))
                assert g.region == top.region or top.traffic.get(u, 0) == max(
                    grp.traffic.get(u, 0.0) for grp in dep.replicas if grp.region == g.region)
            # ...and routes to the regions the plan sends them to
            assert set(g.upstream) == {grp.region for grp in dep.replicas if any(grp.traffic.get(u) for u in g.users)}
            assert g.port == spec_dep.gateway.port and g.usd_per_hour > 0  # a small VM on a cloud, priced
    # somewhere the users split between two serving regions, and so get two gateways (chat-eu at the time of writing)
    assert any(len(d.gateways) == 2 for d in plan.deployments)
    assert plan.total.gateways_usd_per_hour == round(sum(g.usd_per_hour for d in plan.deployments
                                                         for g in d.gateways), 4)


def test_a_gateway_routes_to_its_own_replicas_and_fails_over_to_the_rest() -> None:
    g = GatewayRef("gw", "http://gw:8080", ("aws:us-east-1",), "k", region="aws:us-east-1")
    east = Worker("r0", "aws:us-east-1", "http://3.3.3.3:8000", "http://10.0.0.5:8000")
    west = Worker("r1", "aws:us-west-2", "http://4.4.4.4:8000", "http://10.1.0.7:8000")
    assert wanted(g, [east, west]) == {"http://10.0.0.5:8000"}  # its own, inside the network
    assert wanted(g, [west]) == {"http://4.4.4.4:8000"}  # none of its own answers: the other region, publicly
    assert url_for(g, Worker("r2", "aws:us-east-1", "http://5.5.5.5:8000")) == "http://5.5.5.5:8000"
