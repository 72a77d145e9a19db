"""The Kubernetes-native alternative to `orch autoscale`: each autoscaled replica group on a Kubernetes site as
one Deployment (or LeaderWorkerSet) of its replicas plus an HPA or a KEDA ScaledObject on vLLM's running
requests, aimed at the same target utilization of capacity at the SLO.

orch's own loop is what runs by default: it chooses *where* to add (the cheapest place, any provider) and drains
at the gateway first. These manifests are for teams that want the cluster to own the replica count of a group
instead; apply them in place of running the loop for that deployment, not beside it (two owners of one count
fight). The gateway then finds the group's pods through the group's Service.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from orchestrator.errors import UserError
from orchestrator.plan import Plan


def native_manifests(plan: Plan, loaded: Any, kind: Literal["hpa", "keda"],
                     prometheus_url: str | None = None) -> list[dict[str, Any]]:
    from containers.render.kubernetes import render_kubernetes
    from containers.render.kubernetes_extra import Scaling, render_autoscaler
    from orchestrator.apply.desired import desired_replicas
    from orchestrator.serve.autoscale import capacity_of

    spec = loaded.spec
    sites = {f"onprem:{s.name}": s for s in (spec.providers.onprem.sites if spec.providers and spec.providers.onprem
                                               and spec.providers.onprem.kind == "kubernetes" else [])}
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for d in desired_replicas(plan):
        sd = next((x for x in spec.deployments if x.name == d.deployment.name), None)
        site = sites.get(d.group.region)
        if d.gateway is not None or sd is None or sd.autoscale is None or site is None:
            continue
        if (d.deployment.name, d.group_key) in seen:
            continue
        seen.add((d.deployment.name, d.group_key))
        container = d.container()
        group_name = container.name.rsplit("-", 1)[0]  # the replica's name without its index: the group's
        container = dataclasses.replace(container, name=group_name)
        cap = capacity_of(d.deployment, d.group, sd)
        nodes = max(1, d.group.instances_per_replica)
        out += render_kubernetes(container, namespace=site.namespace, replicas=d.group.count,
                                 nodes_per_replica=nodes)
        scaling = Scaling(min_replicas=sd.autoscale.min_replicas, max_replicas=sd.autoscale.max_replicas,
                          target_running_per_replica=round(max(1.0, cap.concurrency * sd.autoscale.target_utilization), 2))
        out.append(render_autoscaler(
            group_name, scaling, namespace=site.namespace, kind=kind, prometheus_url=prometheus_url,
            target_kind="LeaderWorkerSet" if nodes > 1 else "Deployment", labels=container.labels))
    if not out:
        raise UserError(f"{loaded.path}: no autoscaled deployment has replicas on a Kubernetes site "
                        "(providers.onprem.kind: kubernetes); the native path applies to Kubernetes only")
    return out
