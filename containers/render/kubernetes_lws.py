"""A multi-node replica on Kubernetes: a LeaderWorkerSet (leaderworkerset.x-k8s.io) whose leader starts the Ray
head, waits for the group's workers and serves; the workers join the leader's Ray cluster. Tensor-parallel inside
a node, pipeline-parallel across nodes (vLLM's Ray executor).
"""

from __future__ import annotations

import shlex
from typing import Any

from containers.labels import LABEL_ROLE
from containers.render.kubernetes_nodes import Convention
from containers.render.kubernetes_pod import pod_spec
from containers.spec import ContainerSpec

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
RAY_PORT = 6379


def _leader_command(spec: ContainerSpec, nodes: int) -> list[str]:
    """Ray head, wait for the group's workers to join, then serve (tensor-parallel per node x pipeline across)."""
    serve = shlex.join(["vllm", "serve", *spec.args])
    return [
        "/bin/sh",
        "-c",
        (f"ray start --head --port={RAY_PORT} && "
         f'until [ "$(ray status 2>/dev/null | grep -c " node_")" -ge "{nodes}" ]; do sleep 5; done && '
         f"exec {serve}"),
    ]


def _worker_command() -> list[str]:
    # LWS injects LWS_LEADER_ADDRESS into every pod of the group.
    return ["/bin/sh", "-c", f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block']


def render_leader_worker_set(
    spec: ContainerSpec,
    *,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None,
    replicas: int,
    convention: Convention,
    nodes: int,
) -> dict[str, Any]:
    """The LeaderWorkerSet of ``replicas`` groups of ``nodes`` pods (``spec.gpus`` GPUs on each)."""
    from kubernetes import client

    if spec.sidecars:
        raise ValueError(f"{spec.name}: a multi-node replica (LeaderWorkerSet) cannot have sidecars")
    api = client.ApiClient()
    leader_labels = {**labels, LABEL_ROLE: "leader"}
    worker_labels = {**labels, LABEL_ROLE: "worker"}
    leader = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=leader_labels, annotations=annotations),
        spec=pod_spec(spec, convention, command=_leader_command(spec, nodes), args=[]),
    )
    worker = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=worker_labels, annotations=annotations),
        spec=pod_spec(spec, convention, command=_worker_command(), args=[], probes=False),
    )
    for tmpl in (leader, worker):
        tmpl.spec.containers[0].args = None
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {
                "size": nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": api.sanitize_for_serialization(leader),
                "workerTemplate": api.sanitize_for_serialization(worker),
            },
        },
    }
