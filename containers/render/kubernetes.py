"""A ContainerSpec as Kubernetes objects: Deployment + Service, or LeaderWorkerSet + Service for multi-node
(containers.render.kubernetes_lws), with the ConfigMap of its files and the NetworkPolicy of its ingress when it
has them (containers.render.kubernetes_extra). The pod itself: containers.render.kubernetes_pod; where it may
run: containers.render.kubernetes_nodes.

A pod with sidecars (the gateway: vllm-router and its Caddy edge) is one pod of several containers; its Service
publishes every port of the pod (``ContainerSpec.all_ports``).

Objects are built with the official client's models and serialized with ``ApiClient.sanitize_for_serialization``
(camelCase dicts, ready to apply).
"""

from __future__ import annotations

from typing import Any, Literal

from containers.labels import LABEL_ROLE
from containers.render.kubernetes_extra import (
    FILES_ANNOTATION,
    files_digest,
    ingress_cidrs,
    render_config_map,
    render_network_policy,
)
from containers.render.kubernetes_lws import render_leader_worker_set
from containers.render.kubernetes_nodes import Convention
from containers.render.kubernetes_pod import pod_spec
from containers.spec import ContainerSpec

ServiceType = Literal["ClusterIP", "LoadBalancer"]
SERVICE_TYPES: tuple[str, ...] = ("ClusterIP", "LoadBalancer")

INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY = {"app.kubernetes.io/managed-by": "orch", "app.kubernetes.io/name": "vllm"}


def _service(
    spec: ContainerSpec,
    namespace: str,
    labels: dict[str, str],
    selector: dict[str, str],
    service_type: ServiceType = "ClusterIP",
) -> Any:
    """Every port of the pod. A LoadBalancer admits the networks of the ingress of those ports (each port's own
    networks are the NetworkPolicy's) and keeps the client's address (``externalTrafficPolicy: Local``), so the
    NetworkPolicy sees who connects."""
    from kubernetes import client

    annotations = {}
    if spec.metrics_path:
        port = next(iter(spec.ports.values()), 8000)
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/path": spec.metrics_path, "prometheus.io/port": str(port)}
    ports = spec.all_ports()
    ranges = ingress_cidrs(spec, set(ports.values())) if service_type == "LoadBalancer" else []
    return client.V1Service(
        api_version="v1",
        kind="Service",
        metadata=client.V1ObjectMeta(name=spec.name, namespace=namespace, labels=labels, annotations=annotations or None),
        spec=client.V1ServiceSpec(
            type=service_type,
            selector=selector,
            ports=[client.V1ServicePort(name=n[:15], port=p, target_port=p, protocol="TCP") for n, p in ports.items()],
            load_balancer_source_ranges=ranges or None,
            external_traffic_policy="Local" if service_type == "LoadBalancer" and spec.ingress else None,
        ),
    )


def _deployment(
    spec: ContainerSpec,
    *,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None,
    pod_selector: dict[str, str],
    replicas: int,
    convention: Convention,
) -> Any:
    from kubernetes import client

    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels, annotations=annotations), spec=pod_spec(spec, convention)
    )
    return client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name=spec.name, namespace=namespace, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=pod_selector),
            # GPUs are scarce: replace pods one by one without a surge pod that may never schedule
            strategy=client.V1DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=client.V1RollingUpdateDeployment(max_surge=0, max_unavailable=1),
            ),
            template=template,
        ),
    )


def _labels(spec: ContainerSpec) -> dict[str, str]:
    labels = {**MANAGED_BY, **spec.labels, INSTANCE_LABEL: spec.name}
    if spec.role == "gateway":
        labels = {**labels, "app.kubernetes.io/name": "vllm-router", LABEL_ROLE: "gateway"}
    return labels


def render_kubernetes(
    spec: ContainerSpec,
    *,
    namespace: str,
    replicas: int = 1,
    convention: Convention = "nfd",
    nodes_per_replica: int = 1,
    service_type: ServiceType = "ClusterIP",
) -> list[dict[str, Any]]:
    """Manifests (plain dicts) for ``spec``, in the order to apply them: [ConfigMap of its files, if any;
    NetworkPolicy of its ingress, if any; Deployment, Service], or a LeaderWorkerSet in the Deployment's place
    when a replica spans ``nodes_per_replica`` > 1 nodes (``spec.gpus`` GPUs on each).

    ``service_type`` applies to a gateway's Service (LoadBalancer: the endpoint outside the cluster); replicas
    are reached in the cluster only (ClusterIP)."""
    from kubernetes import client

    if service_type not in SERVICE_TYPES:
        raise ValueError(f"unknown service type {service_type!r}; known: {', '.join(SERVICE_TYPES)}")
    api = client.ApiClient()
    labels = _labels(spec)
    pod_selector = {INSTANCE_LABEL: spec.name}
    digest = files_digest(spec)
    annotations = {FILES_ANNOTATION: digest} if digest else None
    objects: list[dict[str, Any]] = []
    config_map = render_config_map(spec, namespace, labels)
    if config_map:
        objects.append(config_map)
    policy = render_network_policy(spec, namespace, labels, pod_selector,
                                   group_selector=pod_selector if nodes_per_replica > 1 else None)
    if policy:
        objects.append(policy)

    if nodes_per_replica <= 1:
        svc_type: ServiceType = service_type if spec.role == "gateway" else "ClusterIP"
        objects.append(api.sanitize_for_serialization(_deployment(
            spec, namespace=namespace, labels=labels, annotations=annotations, pod_selector=pod_selector,
            replicas=replicas, convention=convention)))
        objects.append(api.sanitize_for_serialization(_service(spec, namespace, labels, pod_selector, svc_type)))
        return objects

    objects.append(render_leader_worker_set(spec, namespace=namespace, labels=labels, annotations=annotations,
                                            replicas=replicas, convention=convention, nodes=nodes_per_replica))
    objects.append(api.sanitize_for_serialization(_service(spec, namespace, labels, {**pod_selector, LABEL_ROLE: "leader"})))
    return objects
