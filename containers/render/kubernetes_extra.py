"""The Kubernetes objects around a pod beyond its Deployment and Service: the ConfigMap of its files, the
NetworkPolicy of its ``ingress``, and the native autoscaler of a replica group (an HPA or a KEDA ScaledObject).

Plain dicts, ready to apply (``containers.render.kubernetes.render_kubernetes`` returns the first two with the
pod's other objects; ``render_autoscaler`` is separate: orch scales by launching replicas, a cluster may scale
one replica group natively instead).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from containers.labels import LABEL_DEPLOYMENT, LABEL_PROJECT, LABEL_ROLE
from containers.spec import PEERS, ContainerSpec

FILES_VOLUME = "orch-files"
FILES_ANNOTATION = "orch/files-sha256"  # on the pod template: a change of the files rolls the pods (subPath
# mounts do not see ConfigMap updates)
RUNNING_METRIC = "vllm:num_requests_running"  # vLLM's gauge of requests being processed, per replica
KEDA_API_VERSION = "keda.sh/v1alpha1"
WORKLOAD_API = {"Deployment": "apps/v1", "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1"}


def containers_of(spec: ContainerSpec) -> list[ContainerSpec]:
    """The pod's containers: the spec itself, then its sidecars."""
    return [spec, *spec.sidecars]


def config_map_name(name: str) -> str:
    """The ConfigMap holding the files of the pod ``name`` (a DNS subdomain: the name plus a suffix fits)."""
    return f"{name}-files"


def file_keys(spec: ContainerSpec) -> list[tuple[int, str, str]]:
    """(container index, mount path, ConfigMap key) for every file of the pod: the key is the file's base name
    (keys allow ``[-._a-zA-Z0-9]``), prefixed with the container's index when two files share it."""
    out: list[tuple[int, str, str]] = []
    used: set[str] = set()
    for i, c in enumerate(containers_of(spec)):
        for path in sorted(c.files):
            key = re.sub(r"[^-._a-zA-Z0-9]+", "-", PurePosixPath(path).name).strip(".") or "file"
            if key in used:
                key = f"{i}-{re.sub(r'[^-._a-zA-Z0-9]+', '-', path.strip('/'))}"
            used.add(key)
            out.append((i, path, key))
    return out


def files_digest(spec: ContainerSpec) -> str | None:
    """A hash of every file of the pod (for the pod template's annotation), None when it has none."""
    keys = file_keys(spec)
    if not keys:
        return None
    pod = containers_of(spec)
    h = hashlib.sha256()
    for i, path, key in keys:
        h.update(f"{i}\0{path}\0{key}\0{pod[i].files[path]}\0".encode())
    return h.hexdigest()


def render_config_map(spec: ContainerSpec, namespace: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
    """The ConfigMap of the pod's ``files`` (never secrets: keys come from secretKeyRef), None without files."""
    keys = file_keys(spec)
    if not keys:
        return None
    pod = containers_of(spec)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(spec.name), "namespace": namespace, "labels": dict(labels)},
        "data": {key: pod[i].files[path] for i, path, key in keys},
    }


def gateway_selector(spec: ContainerSpec) -> dict[str, str]:
    """Labels of this deployment's gateway pods: its project and deployment, and role gateway."""
    missing = [k for k in (LABEL_PROJECT, LABEL_DEPLOYMENT) if not spec.labels.get(k)]
    if missing:  # without them the selector would admit every gateway in the namespace
        raise ValueError(f"{spec.name}: ingress from 'gateway' needs the labels {', '.join(missing)}")
    return {LABEL_PROJECT: spec.labels[LABEL_PROJECT], LABEL_DEPLOYMENT: spec.labels[LABEL_DEPLOYMENT],
            LABEL_ROLE: "gateway"}


def ingress_cidrs(spec: ContainerSpec, ports: set[int] | None = None) -> list[str]:
    """Every CIDR the spec's ingress admits (on ``ports`` only, when given), sorted and once."""
    return sorted({c for ing in spec.ingress if ports is None or ing.port in ports for c in ing.cidrs})


def render_network_policy(
    spec: ContainerSpec,
    namespace: str,
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    *,
    group_selector: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The NetworkPolicy of ``spec.ingress`` (None without it): the pod admits, on each port, its CIDRs
    (``ipBlock``), this deployment's gateway pods (peer "gateway") and the pods of its namespace (peer "network");
    nothing else. A port with no peer gets no rule (an empty ``from`` would admit everyone). ``group_selector``:
    the pods of one multi-node replica, which reach each other on every port (Ray, NCCL).

    Kubelet probes come from the node itself, which common CNIs (Calico, Cilium) admit regardless of policies.
    With a LoadBalancer Service, the client's address is only seen with ``externalTrafficPolicy: Local``.
    """
    if not spec.ingress:
        return None
    rules: list[dict[str, Any]] = []
    for ing in spec.ingress:
        unknown = sorted(set(ing.peers) - set(PEERS))
        if unknown:
            raise ValueError(f"{spec.name}: unknown ingress peer(s) {unknown}; known: {', '.join(PEERS)}")
        peers: list[dict[str, Any]] = [{"ipBlock": {"cidr": c}} for c in ing.cidrs]
        if "gateway" in ing.peers:
            peers.append({"podSelector": {"matchLabels": gateway_selector(spec)}})
        if "network" in ing.peers:
            peers.append({"podSelector": {}})  # every pod of this namespace
        if peers:
            rules.append({"from": peers, "ports": [{"protocol": "TCP", "port": ing.port}]})
    if group_selector:
        rules.append({"from": [{"podSelector": {"matchLabels": dict(group_selector)}}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"podSelector": {"matchLabels": dict(pod_selector)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def _quantity(value: float) -> str:
    """A Kubernetes quantity: '8', or milli-units for a fraction ('2500m')."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def running_query(target_name: str, namespace: str, target_kind: str = "Deployment") -> str:
    """PromQL: the requests running on every pod of the target, summed. Pods carry the ``namespace`` and ``pod``
    labels that Prometheus' Kubernetes discovery (and the Prometheus operator's monitors) give them."""
    # Kubernetes names ([a-z0-9.-]) need no escaping but '.', which a DNS label (orch's names) never holds.
    suffix = "-[0-9]+" if target_kind == "LeaderWorkerSet" else "-[a-z0-9]+-[a-z0-9]+"
    return f'sum({RUNNING_METRIC}{{namespace="{namespace}",pod=~"{target_name}{suffix}"}})'


@dataclass(frozen=True)
class Scaling:
    """Between ``min_replicas`` and ``max_replicas`` replicas, aiming at ``target_running_per_replica`` requests
    running on each (vLLM's ``vllm:num_requests_running``)."""

    min_replicas: int
    max_replicas: int
    target_running_per_replica: float


def render_autoscaler(
    target_name: str,
    scaling: Scaling,
    *,
    namespace: str,
    kind: Literal["hpa", "keda"] = "hpa",
    prometheus_url: str | None = None,
    target_kind: Literal["Deployment", "LeaderWorkerSet"] = "Deployment",
    labels: Mapping[str, str] | None = None,
    query: str | None = None,
) -> dict[str, Any]:
    """The native autoscaler of one replica group (the Deployment or LeaderWorkerSet ``target_name``), as
    ``scaling`` says.

    - ``hpa``: an autoscaling/v2 HorizontalPodAutoscaler on the Pods metric ``vllm:num_requests_running``. The
      HPA reads it from the custom metrics API (custom.metrics.k8s.io), which only a metrics adapter serves: e.g.
      prometheus-adapter with a rule exposing the series under that name for namespace/pod. Without an adapter
      the HPA reports ``FailedGetPodsMetric`` and never scales. For a LeaderWorkerSet the workers have no such
      metric: prefer KEDA there.
    - ``keda``: a KEDA ScaledObject (keda.sh/v1alpha1; KEDA must be installed) with a prometheus trigger that
      queries ``prometheus_url`` for ``sum(vllm:num_requests_running{...})`` over the target's pods (``query``
      replaces it); KEDA divides it by the replicas and compares it with the threshold (AverageValue).

    Either one owns ``spec.replicas`` of the target from then on: re-applying the target with a fixed replica
    count fights the autoscaler.
    """
    min_replicas, max_replicas = scaling.min_replicas, scaling.max_replicas
    target_running_per_replica = scaling.target_running_per_replica
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ValueError(f"need 0 <= min_replicas <= max_replicas, max >= 1; got {min_replicas}..{max_replicas}")
    if target_running_per_replica <= 0:
        raise ValueError("target_running_per_replica must be > 0")
    if target_kind not in WORKLOAD_API:
        raise ValueError(f"unknown target kind {target_kind!r}; known: {', '.join(WORKLOAD_API)}")
    meta = {"name": target_name, "namespace": namespace, **({"labels": dict(labels)} if labels else {})}
    target = {"apiVersion": WORKLOAD_API[target_kind], "kind": target_kind, "name": target_name}
    if kind == "hpa":
        if min_replicas < 1:
            raise ValueError("an HPA needs min_replicas >= 1 (scaling to zero needs KEDA)")
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "metrics": [{
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": RUNNING_METRIC},
                        "target": {"type": "AverageValue", "averageValue": _quantity(target_running_per_replica)},
                    },
                }],
            },
        }
    if kind == "keda":
        if not prometheus_url:
            raise ValueError("a KEDA prometheus trigger needs prometheus_url (e.g. http://prometheus.monitoring:9090)")
        return {
            "apiVersion": KEDA_API_VERSION,
            "kind": "ScaledObject",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": target,
                "minReplicaCount": min_replicas,
                "maxReplicaCount": max_replicas,
                "triggers": [{
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query or running_query(target_name, namespace, target_kind),
                        "threshold": f"{target_running_per_replica:g}",
                    },
                }],
            },
        }
    raise ValueError(f"unknown autoscaler kind {kind!r}; known: hpa, keda")
