"""Where each deployment's gateways go: the plan's replicas and traffic -> GatewayPlan records.

A gateway sits where the plan's traffic comes from. For each user region, the plan routes its requests to some
replica groups; the region of the group that takes most of them is where those users enter. One gateway per
such entry region answers its users and routes them to the replicas the plan sized for them (its upstream);
the other regions' replicas are its failover (orchestrator.serve.sync adds them only while none of its own
answers). A deployment whose users are "near the data" or unstated gets one gateway, in its largest region.

The host: this machine (local), the site (on-prem, already paid for), or on a cloud one small CPU VM
(orchestrator/data/gateway_hosts.csv, priced at the list price there).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from orchestrator.plan import GatewayPlan, ReplicaGroup


@cache
def cloud_hosts() -> dict[str, tuple[str, float]]:
    """provider -> (instance type, $/h) of the gateway host on that cloud."""
    from orchestrator.catalog.gpus import _rows

    return {r["provider"]: (r["instance_type"], float(r["usd_per_hour"])) for r in _rows("gateway_hosts.csv")}


def host_for(provider: str, region: str) -> tuple[str, float]:
    """(instance type, $/h) of a gateway host in ``region``."""
    if provider in cloud_hosts():
        return cloud_hosts()[provider]
    if provider == "local":
        return "this-machine", 0.0
    return "site", 0.0  # on-prem (bare metal or Kubernetes): hardware already paid for


def entry_regions(groups: list[ReplicaGroup]) -> dict[str, str]:
    """user region -> the region of the group taking most of its traffic."""
    best: dict[str, tuple[float, str]] = {}
    for g in groups:
        for user, rps in g.traffic.items():
            if rps > best.get(user, (0.0, ""))[0]:
                best[user] = (rps, g.region)
    return {user: region for user, (_, region) in best.items()}


def plan_gateways(deployment: Any, groups: list[ReplicaGroup]) -> list[GatewayPlan]:
    """The gateways of one deployment (its spec and its chosen replica groups); none when disabled."""
    gw = deployment.gateway
    if not gw.enabled or not groups:
        return []
    entries = entry_regions(groups)
    by_region: dict[str, list[str]] = {}
    for user, region in sorted(entries.items()):
        by_region.setdefault(region, []).append(user)
    if not by_region:  # plans from before traffic was recorded: one gateway, in the largest region
        by_region = {max(groups, key=lambda g: (g.count * max(g.capacity_rps, 1e-9), g.region)).region: []}
    provider_of = {g.region: g.provider for g in groups}
    out: list[GatewayPlan] = []
    for region, users in sorted(by_region.items()):
        upstream = sorted({g.region for g in groups if not users or any(g.traffic.get(u, 0) > 0 for u in users)})
        provider = provider_of[region]
        instance_type, usd = host_for(provider, region)
        out.append(GatewayPlan(
            provider=provider, region=region, instance_type=instance_type, usd_per_hour=usd, port=gw.port,
            policy=gw.policy, users=users, upstream=upstream or [region], allow_cidrs=list(gw.allow_cidrs),
            control_cidrs=list(gw.control_cidrs),
        ))
    return out
