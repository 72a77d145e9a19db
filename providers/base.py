"""The one protocol every provider implements, and the records it exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

# the labels every resource carries: their home is containers/labels.py (imported here for the providers)
from containers.labels import LABEL_DEPLOYMENT, LABEL_PLAN, LABEL_PROJECT, LABEL_REPLICA  # noqa: F401
from containers.names import vm_name
from containers.spec import ContainerSpec

State = Literal["pending", "running", "stopped", "terminated", "unknown"]


@dataclass(frozen=True)
class Placement:
    """Where one replica runs: a plan's replica group, narrowed to one replica."""

    project: str
    deployment: str
    plan_id: str
    replica: str  # value of LABEL_REPLICA
    region: str  # provider-qualified
    instance_type: str
    gpu: str
    gpu_count: int
    market: Literal["on_demand", "spot", "onprem"] = "on_demand"
    zone: str | None = None

    @property
    def region_name(self) -> str:
        return self.region.split(":", 1)[1]

    def vm_name(self, max_len: int = 63) -> str:
        """The VM's name on every cloud: 'orch-<project>-<deployment>-<group>-<n>', each part once."""
        return vm_name(self.project, self.deployment, self.replica, max_len)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_PROJECT: self.project,
            LABEL_DEPLOYMENT: self.deployment,
            LABEL_PLAN: self.plan_id,
            LABEL_REPLICA: self.replica,
        }


@dataclass
class Handle:
    """A launched replica as the provider sees it."""

    provider: str
    id: str  # instance id, VM name, k8s object name, pid, host/container
    region: str
    state: State
    labels: dict[str, str] = field(default_factory=dict)
    endpoint: str | None = None  # http://host:port of the vLLM server, once known
    launched_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """What every provider does; what only some can do is in providers.abilities (live offerings among them)."""

    name: str

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        """The exact calls/manifests launch would make: for `orch apply --dry-run`, no credentials needed."""
        ...

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        """Start one replica. Raises CapacityError, QuotaError, AuthError or TransientError."""
        ...

    def describe(self, handle_id: str, region: str) -> Handle:
        """Current state of one replica. Raises NotFoundError when it is gone."""
        ...

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        """Every live resource carrying all these labels: how apply adopts and destroy finds orphans."""
        ...

    def terminate(self, handle: Handle) -> None:
        """Stop and delete one replica. Idempotent: a replica already gone is not an error."""
        ...
