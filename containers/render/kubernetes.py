"""A ContainerSpec as Kubernetes objects: Deployment + Service, or LeaderWorkerSet + Service for multi-node, with
the ConfigMap of its files and the NetworkPolicy of its ingress when it has them (containers.render.kubernetes_extra).

A pod with sidecars (the gateway: vllm-router and its Caddy edge) is one pod of several containers; its Service
publishes every port of the pod (``ContainerSpec.all_ports``).

Objects are built with the official client's models and serialized with ``ApiClient.sanitize_for_serialization``
(camelCase dicts, ready to apply). GPU node selection follows one of three conventions
(/work/shared/facts/vllm.md, "Kubernetes"): GKE, Karpenter (EKS) or NVIDIA GPU feature discovery (NFD).
Secrets (the HF token, API keys) come from Secrets through ``secretKeyRef``; their values are never in a manifest.
"""

from __future__ import annotations

import shlex
from typing import Any, Literal

from containers.names import dns_label
from containers.render.kubernetes_extra import (
    FILES_ANNOTATION,
    FILES_VOLUME,
    ROLE_LABEL,
    config_map_name,
    containers_of,
    file_keys,
    files_digest,
    ingress_cidrs,
    render_config_map,
    render_network_policy,
)
from containers.spec import ContainerSpec, Probe

Convention = Literal["gke", "karpenter", "nfd"]
CONVENTIONS: tuple[str, ...] = ("gke", "karpenter", "nfd")
ServiceType = Literal["ClusterIP", "LoadBalancer"]
SERVICE_TYPES: tuple[str, ...] = ("ClusterIP", "LoadBalancer")
CONTAINER_NAMES = {"gateway": "router", "edge": "edge"}

INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY = {"app.kubernetes.io/managed-by": "orch", "app.kubernetes.io/name": "vllm"}
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
RAY_PORT = 6379

# canonical GPU name -> node label value, per convention. GKE: accelerator names of GKE GPU node pools;
# Karpenter: karpenter.k8s.aws/instance-gpu-name (lowercase model); NFD: nvidia.com/gpu.product as GPU feature
# discovery writes it (the product name from nvidia-smi, spaces -> '-').
GKE_ACCELERATOR = {
    "T4": "nvidia-tesla-t4",
    "L4": "nvidia-l4",
    "A100-40GB": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "H100": "nvidia-h100-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
}
KARPENTER_GPU_NAME = {
    "T4": "t4",
    "A10G": "a10g",
    "L4": "l4",
    "L40S": "l40s",
    "A100-40GB": "a100",
    "A100-80GB": "a100",
    "H100": "h100",
    "H200": "h200",
    "B200": "b200",
}
NFD_PRODUCT = {
    "T4": "Tesla-T4",
    "A10G": "NVIDIA-A10G",
    "L4": "NVIDIA-L4",
    "L40S": "NVIDIA-L40S",
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "H100": "NVIDIA-H100-80GB-HBM3",
    "H100-PCIe": "NVIDIA-H100-PCIe",
    "H200": "NVIDIA-H200",
    "B200": "NVIDIA-B200",
}


# Extended resources of each vendor's device plugin: NVIDIA and AMD GPU operators; GKE's TPU resource
# (cloud.google.com/kubernetes-engine/docs/concepts/tpus); the Neuron device plugin on EKS (one per chip).
DEVICE_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "google": "google.com/tpu",
                   "aws": "aws.amazon.com/neuron"}
# GKE node labels of a single-host TPU slice: cloud.google.com/gke-tpu-accelerator and gke-tpu-topology
# (GKE "Plan TPUs" docs, from memory, not re-read 2026-12-04: v5e tpu-v5-lite-podslice, v6e tpu-v6e-slice).
GKE_TPU_ACCELERATOR = {"TPU-v5e": "tpu-v5-lite-podslice", "TPU-v6e": "tpu-v6e-slice"}
GKE_TPU_TOPOLOGY = {1: "1x1", 4: "2x2", 8: "2x4"}


def _gke_tpu(gpu: str, chips: int) -> dict[str, str]:
    out = {}
    if gpu in GKE_TPU_ACCELERATOR:
        out["cloud.google.com/gke-tpu-accelerator"] = GKE_TPU_ACCELERATOR[gpu]
    if chips in GKE_TPU_TOPOLOGY:
        out["cloud.google.com/gke-tpu-topology"] = GKE_TPU_TOPOLOGY[chips]
    return out


def scheduling(spec: ContainerSpec, convention: Convention) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(nodeSelector, tolerations) for the spec's GPU type and market under ``convention``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    if spec.gpus > 0:
        # GPU nodes are commonly tainted <vendor>.com/gpu:NoSchedule (GKE and the GPU operators do it).
        taint = DEVICE_RESOURCE.get(spec.gpu_vendor, "nvidia.com/gpu")
        tolerations.append({"key": taint, "operator": "Exists", "effect": "NoSchedule"})
        if spec.gpu_vendor == "google" and convention == "gke":  # GKE TPU node pools: accelerator and topology
            selector.update(_gke_tpu(spec.gpu_type or "", spec.gpus))
        gpu = spec.gpu_type or ""
        table = {"gke": GKE_ACCELERATOR, "karpenter": KARPENTER_GPU_NAME, "nfd": NFD_PRODUCT}[convention]
        key = {
            "gke": "cloud.google.com/gke-accelerator",
            "karpenter": "karpenter.k8s.aws/instance-gpu-name",
            "nfd": "nvidia.com/gpu.product",
        }[convention]
        if gpu in table:
            selector[key] = table[gpu]
    if convention == "gke" and spec.spot:
        selector["cloud.google.com/gke-spot"] = "true"
        tolerations.append(
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        )
    elif convention == "karpenter":
        selector["karpenter.sh/capacity-type"] = "spot" if spec.spot else "on-demand"
    return selector, tolerations


def _probe(p: Probe | None) -> Any:
    from kubernetes import client

    if p is None:
        return None
    return client.V1Probe(
        http_get=client.V1HTTPGetAction(path=p.path, port=p.port),
        initial_delay_seconds=p.initial_delay_s or None,
        period_seconds=p.period_s,
        timeout_seconds=p.timeout_s,
        failure_threshold=p.failure_threshold,
    )


def _memory(gb: float) -> str:
    return f"{int(gb)}Gi" if float(gb).is_integer() else f"{round(gb * 1024)}Mi"


def _command(spec: ContainerSpec) -> list[str] | None:
    """The container's command; with ``pip_install``, wrapped to install the packages first (as the docker
    renderer does): ``sh -c 'pip install ... && exec "$@"' sh <command...>``, the args following."""
    command = list(spec.command)
    if spec.pip_install:
        install = "pip install -q --no-cache-dir " + shlex.join(spec.pip_install)
        command = ["sh", "-c", f'{install} && exec "$@"', "sh", *command]
    return command or None


def _container_name(spec: ContainerSpec, main: bool) -> str:
    """vllm for a replica (as always), router and edge for a gateway's two; a sidecar's own name otherwise."""
    if spec.role in CONTAINER_NAMES:
        return CONTAINER_NAMES[spec.role]
    return "vllm" if main else dns_label(spec.name)


def _container(
    spec: ContainerSpec,
    name: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    probes: bool = True,
    extra_env: list[Any] | None = None,
    mounts: list[Any],
) -> Any:
    from kubernetes import client

    env = [client.V1EnvVar(name=k, value=v) for k, v in sorted(spec.env.items())]
    for key, ref in sorted(spec.secret_env.items()):
        env.append(
            client.V1EnvVar(
                name=key,
                value_from=client.V1EnvVarSource(
                    # optional unless required: public models need no token (gated ones fail loudly at download);
                    # an API key is required: the pod does not start without it
                    secret_key_ref=client.V1SecretKeySelector(name=ref.name, key=ref.key, optional=not ref.required)
                ),
            )
        )
    env += extra_env or []

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if spec.gpus > 0:
        resource = DEVICE_RESOURCE.get(spec.gpu_vendor, "nvidia.com/gpu")  # each vendor's device plugin
        limits[resource] = str(spec.gpus)
        requests[resource] = str(spec.gpus)
    if spec.cpu:
        requests["cpu"] = f"{spec.cpu:g}"
    if spec.memory_gb:
        requests["memory"] = _memory(spec.memory_gb)
        limits["memory"] = _memory(spec.memory_gb)

    return client.V1Container(
        name=name,
        image=spec.image,
        command=command if command is not None else _command(spec),
        args=args if args is not None else (spec.args or None),
        env=env or None,
        ports=[client.V1ContainerPort(name=n[:15], container_port=p) for n, p in spec.ports.items()] or None,
        resources=client.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        volume_mounts=mounts or None,
        startup_probe=_probe(spec.startup) if probes else None,
        readiness_probe=_probe(spec.readiness) if probes else None,
        liveness_probe=_probe(spec.liveness) if probes else None,
    )


def _volumes(spec: ContainerSpec) -> tuple[list[Any], list[Any]]:
    """(pod volumes, this container's mounts) for one container's shm and volumes."""
    from kubernetes import client

    mounts = []
    volumes = []
    if spec.shm_gb:
        volumes.append(
            client.V1Volume(name="dshm", empty_dir=client.V1EmptyDirVolumeSource(medium="Memory", size_limit=f"{int(spec.shm_gb)}Gi"))
        )
        mounts.append(client.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    for vol in spec.volumes:
        if vol.kind == "memory":
            size = f"{int(vol.size_gb)}Gi" if vol.size_gb else None
            src = client.V1Volume(name=vol.name, empty_dir=client.V1EmptyDirVolumeSource(medium="Memory", size_limit=size))
        elif vol.kind == "host_path" and vol.host_path:
            src = client.V1Volume(name=vol.name, host_path=client.V1HostPathVolumeSource(path=vol.host_path))
        else:  # model cache: node-local scratch sized for the weights (a PVC can replace it)
            size = f"{int(vol.size_gb)}Gi" if vol.size_gb else None
            src = client.V1Volume(name=vol.name, empty_dir=client.V1EmptyDirVolumeSource(size_limit=size))
        volumes.append(src)
        mounts.append(client.V1VolumeMount(name=vol.name, mount_path=vol.mount_path))
    return volumes, mounts


def _pod_spec(
    spec: ContainerSpec,
    convention: Convention,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    probes: bool = True,
    extra_env: list[Any] | None = None,
) -> Any:
    """The pod: the spec's container, then one per sidecar (sharing its network namespace, as pods do), the
    files of all of them from one ConfigMap, mounted read-only at each file's path."""
    from kubernetes import client

    pod = containers_of(spec)
    volumes: list[Any] = []
    mounts: list[list[Any]] = []
    for c in pod:
        vols, ms = _volumes(c)
        volumes += [v for v in vols if v.name not in {u.name for u in volumes}]
        mounts.append(ms)
    keys = file_keys(spec)
    if keys:
        volumes.append(client.V1Volume(name=FILES_VOLUME, config_map=client.V1ConfigMapVolumeSource(name=config_map_name(spec.name))))
        for i, path, key in keys:
            mounts[i].append(client.V1VolumeMount(name=FILES_VOLUME, mount_path=path, sub_path=key, read_only=True))

    names = [_container_name(c, i == 0) for i, c in enumerate(pod)]
    if len(set(names)) < len(names):
        names = [dns_label(c.name) for c in pod]
    containers = [_container(spec, names[0], command=command, args=args, probes=probes, extra_env=extra_env, mounts=mounts[0])]
    containers += [_container(c, n, mounts=m) for c, n, m in zip(pod[1:], names[1:], mounts[1:])]
    selector, tolerations = scheduling(spec, convention)
    return client.V1PodSpec(
        containers=containers,
        volumes=volumes or None,
        node_selector=selector or None,
        tolerations=[client.V1Toleration(**t) for t in tolerations] or None,
        termination_grace_period_seconds=60,
    )


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


def _leader_command(spec: ContainerSpec, nodes: int) -> list[str]:
    """Ray head, wait for the group's workers to join, then serve (tensor-parallel per node x pipeline across)."""
    serve = shlex.join(["vllm", "serve", *spec.args])
    return [
        "/bin/sh",
        "-c",
        f"ray start --head --port={RAY_PORT} && "
        f'until [ "$(ray status 2>/dev/null | grep -c " node_")" -ge "{nodes}" ]; do sleep 5; done && '
        f"exec {serve}",
    ]


def _worker_command() -> list[str]:
    # LWS injects LWS_LEADER_ADDRESS into every pod of the group.
    return ["/bin/sh", "-c", f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block']


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
    labels = {**MANAGED_BY, **spec.labels, INSTANCE_LABEL: spec.name}
    if spec.role == "gateway":
        labels = {**labels, "app.kubernetes.io/name": "vllm-router", ROLE_LABEL: "gateway"}
    pod_selector = {INSTANCE_LABEL: spec.name}
    digest = files_digest(spec)
    annotations = {FILES_ANNOTATION: digest} if digest else None
    svc_type: ServiceType = service_type if spec.role == "gateway" else "ClusterIP"
    objects: list[dict[str, Any]] = []
    config_map = render_config_map(spec, namespace, labels)
    if config_map:
        objects.append(config_map)
    policy = render_network_policy(spec, namespace, labels, pod_selector,
                                   group_selector=pod_selector if nodes_per_replica > 1 else None)
    if policy:
        objects.append(policy)

    if nodes_per_replica <= 1:
        template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels, annotations=annotations), spec=_pod_spec(spec, convention)
        )
        deployment = client.V1Deployment(
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
        objects.append(api.sanitize_for_serialization(deployment))
        objects.append(api.sanitize_for_serialization(_service(spec, namespace, labels, pod_selector, svc_type)))
        return objects

    if spec.sidecars:
        raise ValueError(f"{spec.name}: a multi-node replica (LeaderWorkerSet) cannot have sidecars")
    leader_labels = {**labels, ROLE_LABEL: "leader"}
    worker_labels = {**labels, ROLE_LABEL: "worker"}
    leader = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=leader_labels, annotations=annotations),
        spec=_pod_spec(spec, convention, command=_leader_command(spec, nodes_per_replica), args=[]),
    )
    worker = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=worker_labels, annotations=annotations),
        spec=_pod_spec(spec, convention, command=_worker_command(), args=[], probes=False),
    )
    for tmpl in (leader, worker):
        tmpl.spec.containers[0].args = None
    lws = {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {
                "size": nodes_per_replica,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": api.sanitize_for_serialization(leader),
                "workerTemplate": api.sanitize_for_serialization(worker),
            },
        },
    }
    objects.append(lws)
    objects.append(api.sanitize_for_serialization(_service(spec, namespace, labels, {**pod_selector, ROLE_LABEL: "leader"})))
    return objects
