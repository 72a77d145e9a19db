"""The container-level abstraction every provider launches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Probe:
    path: str  # HTTP GET path, e.g. /health
    port: int
    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 5
    failure_threshold: int = 3


@dataclass(frozen=True)
class SecretRef:
    """A secret held by the target platform (k8s Secret, cloud secret manager, env of the orch process).

    The value is never part of a spec, a manifest, state or a log: only where to find it.
    """

    name: str  # secret name, e.g. hf-token
    key: str = "token"
    required: bool = False  # the container must not start without it (an API key), unlike an optional HF token
    env: str | None = None  # where orch's own environment holds it (ORCH_API_KEY): the local platform's store


@dataclass(frozen=True)
class Ingress:
    """Who may open connections to one port of a pod. Providers turn it into security-group (AWS), firewall (GCP)
    or network-security-group (Azure) rules, renderers into a Kubernetes NetworkPolicy. Nothing else may connect.

    ``cidrs``: networks, e.g. the endpoint's allow list or where orch runs. ``peers``: "gateway" (the pods or VMs
    of this deployment's gateways) and "network" (the network the pod itself runs in: its VPC or cluster).
    """

    port: int
    cidrs: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()


PEERS = ("gateway", "network")


@dataclass(frozen=True)
class Volume:
    name: str
    mount_path: str
    kind: Literal["memory", "host_path", "cache"]  # memory: /dev/shm-style tmpfs; cache: model cache
    size_gb: float | None = None
    host_path: str | None = None


@dataclass
class ContainerSpec:
    name: str  # DNS label, unique per replica group
    image: str
    args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)  # empty: the image's entrypoint
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, SecretRef] = field(default_factory=dict)  # env var -> secret reference
    ports: dict[str, int] = field(default_factory=dict)  # name -> container port
    gpus: int = 0
    gpu_type: str | None = None  # canonical GPU name (orchestrator.catalog.gpus)
    gpu_vendor: str = "nvidia"  # nvidia | amd | google (TPU) | aws (Neuron): how a renderer hands the devices over
    shm_gb: float = 0.0
    cpu: float | None = None  # request, cores
    memory_gb: float | None = None  # request
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    volumes: list[Volume] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    spot: bool = False  # scheduling hint for renderers (node selectors / tolerations)
    metrics_path: str | None = None  # Prometheus scrape path, e.g. /metrics
    # Plain files the container reads (mount path -> content; never a secret): a Kubernetes ConfigMap, a file the
    # VM script writes and mounts read-only, a file in the local provider's directory.
    files: dict[str, str] = field(default_factory=dict)
    # The image is a plain Python image: these packages are pip-installed before ``command`` runs (containers only;
    # a local process needs them installed already).
    pip_install: list[str] = field(default_factory=list)
    # Containers that share this one's network namespace and lifetime (a Kubernetes pod's other containers,
    # ``docker run --network container:<name>``, processes started and stopped together). Their ports are
    # published on this container; they are reached on 127.0.0.1 from each other.
    sidecars: list[ContainerSpec] = field(default_factory=list)
    role: str = "replica"  # replica (vLLM) | gateway (vllm-router behind its edge) | edge (the gateway's sidecar)
    ingress: list[Ingress] = field(default_factory=list)  # empty: the platform's defaults (no rules orch manages)

    def all_ports(self) -> dict[str, int]:
        """Every port the pod publishes: this container's, then its sidecars'."""
        out = dict(self.ports)
        for side in self.sidecars:
            out.update(side.ports)
        return out
