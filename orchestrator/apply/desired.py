"""Plan → desired replicas, each with a stable id and the placement/container it launches with.

A replica's id is ``<project>-<deployment>-<group key>-<n>``; the group key hashes what makes a
group distinct (provider, region, instance type, GPUs, parallelism, quantization, market), so the same
group in a later plan (or in a fallback) keeps its replicas, and a rerun finds what it made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from containers.spec import ContainerSpec
from orchestrator.plan import DeploymentPlan, Plan, ReplicaGroup
from providers.base import Placement

MAX_ID = 63  # a DNS label: it becomes k8s names, GCP label values and VM names


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def group_key(group: ReplicaGroup) -> str:
    ident = "|".join(
        str(x)
        for x in (
            group.provider, group.region, group.instance_type, group.gpu, group.gpus_per_replica,
            group.instances_per_replica, group.tensor_parallel, group.pipeline_parallel,
            group.quantization, group.market,
        )
    )
    return _h(ident, 6)


def replica_id(project: str, deployment: str, gkey: str, n: int) -> str:
    base = f"{project}-{deployment}"
    tail = f"-{gkey}-{n}"
    if len(base) + len(tail) > MAX_ID:
        base = base[: MAX_ID - len(tail) - 7].rstrip("-") + "-" + _h(base, 6)
    return base + tail


def plan_id(plan: Plan) -> str:
    """Hash of what the plan decides (not of solve time or messages): equal plans share an id."""
    body = {
        "project": plan.project,
        "deployments": [
            d.model_dump(mode="json", include={"name", "model", "hf_id", "max_model_len", "kv_cache_dtype",
                                               "replicas", "fallbacks"})
            for d in plan.deployments
        ],
    }
    return "p" + _h(json.dumps(body, sort_keys=True), 11)


def options(dep: DeploymentPlan) -> list[list[ReplicaGroup]]:
    """The deployment's ranked configurations: the chosen one, then its fallbacks."""
    return [dep.replicas, *dep.fallbacks]


@dataclass(frozen=True)
class DesiredReplica:
    project: str
    plan_id: str
    deployment: DeploymentPlan
    group: ReplicaGroup
    group_key: str
    option: int  # 0: the plan's choice; k: fallbacks[k-1]
    index: int  # within the group
    id: str

    @property
    def usd_per_hour(self) -> float:
        return self.group.usd_per_hour / max(self.group.count, 1)

    @property
    def list_usd_per_hour(self) -> float | None:
        total = getattr(self.group, "list_usd_per_hour", None)
        return total / max(self.group.count, 1) if total else None

    @property
    def gpu_count(self) -> int:
        return self.group.gpus_per_replica

    def placement(self) -> Placement:
        return Placement(
            project=self.project,
            deployment=self.deployment.name,
            plan_id=self.plan_id,
            replica=self.id,
            region=self.group.region,
            instance_type=self.group.instance_type,
            gpu=self.group.gpu,
            gpu_count=self.group.gpus_per_replica,
            market=self.group.market,
        )

    def container(self, **kwargs: Any) -> ContainerSpec:
        """The vLLM container of this replica (containers.vllm); kwargs come from the target (port, load_format)."""
        from containers.vllm import build_vllm_container

        return build_vllm_container(
            project=self.project, deployment=self.deployment, group=self.group, replica=self.id, **kwargs
        )


def desired_for(project: str, pid: str, dep: DeploymentPlan, option: int) -> list[DesiredReplica]:
    opts = options(dep)
    option = min(option, len(opts) - 1)
    out: list[DesiredReplica] = []
    for group in opts[option]:
        key = group_key(group)
        for n in range(group.count):
            out.append(
                DesiredReplica(project, pid, dep, group, key, option, n, replica_id(project, dep.name, key, n))
            )
    return out


def desired_replicas(plan: Plan, choice: dict[str, int] | None = None) -> list[DesiredReplica]:
    """Every replica the plan wants; ``choice`` maps a deployment to the fallback option in force."""
    pid = plan_id(plan)
    out: list[DesiredReplica] = []
    for dep in plan.deployments:
        out.extend(desired_for(plan.project, pid, dep, (choice or {}).get(dep.name, 0)))
    return out
