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

from containers.labels import LABEL_DEPLOYMENT, LABEL_PROJECT, LABEL_REPLICA, LABEL_ROLE
from containers.spec import ContainerSpec
from orchestrator.plan import DeploymentPlan, GatewayPlan, Plan, ReplicaGroup
from orchestrator.priced import PricedReplica
from providers.base import Placement

# What each kind of container takes from a target's container_kwargs.
_VLLM_KWARGS = ("port", "extra_args", "load_format", "image", "gpu_memory_utilization", "hf_token")
_GATEWAY_KWARGS = ("bind", "control_bind")

MAX_ID = 63  # a DNS label: it becomes k8s names, GCP label values and VM names


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def group_key(group: ReplicaGroup, role: str = "replica") -> str:
    ident = ("gateway|" if role == "gateway" else "") + "|".join(
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
                                               "replicas", "fallbacks", "gateways"}
                         | {k for k in ("checkpoint", "lora") if getattr(d, k) is not None})  # ids of older plans stay
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
    gateway: GatewayPlan | None = None  # set on a deployment's gateway, which apply handles like a replica

    @property
    def role(self) -> str:
        return "replica" if self.gateway is None else "gateway"

    @property
    def priced(self) -> PricedReplica:
        """Where this replica runs and what an hour of it costs (effective and list)."""
        return self.group.replica()

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
        """The container of this replica: vLLM (containers.vllm) with the endpoint's API key, or the gateway
        (containers.gateway). kwargs come from the target (port, load_format; bind for a gateway)."""
        if self.gateway is not None:
            from containers.gateway import GatewayNetwork, build_gateway_container

            gw = self.gateway
            labels = {LABEL_PROJECT: self.project, LABEL_DEPLOYMENT: self.deployment.name, LABEL_REPLICA: self.id,
                      LABEL_ROLE: "gateway"}
            network = GatewayNetwork(allow_cidrs=tuple(gw.allow_cidrs), control_cidrs=tuple(gw.control_cidrs),
                                     **{k: v for k, v in kwargs.items() if k in _GATEWAY_KWARGS})
            return build_gateway_container(project=self.project, deployment=self.deployment.name, gateway=self.id,
                                           port=gw.port, policy=gw.policy, labels=labels, network=network)
        from containers.gateway import API_KEY
        from containers.vllm import VllmLaunch, build_vllm_container

        gateways = self.deployment.gateways
        return build_vllm_container(
            project=self.project, deployment=self.deployment, group=self.group, replica=self.id, api_key=API_KEY,
            control_cidrs=sorted({c for g in gateways for c in g.control_cidrs}) if gateways else None,
            launch=VllmLaunch(**{k: v for k, v in kwargs.items() if k in _VLLM_KWARGS}),
        )


def gateway_group(gw: GatewayPlan) -> ReplicaGroup:
    """A gateway as a group of one CPU replica: what apply records, bills and shows for it."""
    market = "on_demand" if gw.provider in ("aws", "gcp", "azure") else "onprem"
    return ReplicaGroup(provider=gw.provider, region=gw.region, instance_type=gw.instance_type, gpu="CPU",
                        gpus_per_replica=0, tensor_parallel=1, quantization="none", market=market, count=1,
                        usd_per_hour=gw.usd_per_hour)


def desired_for(project: str, pid: str, dep: DeploymentPlan, option: int) -> list[DesiredReplica]:
    """The deployment's replicas under ``option`` (0: the plan's choice), then its gateways."""
    opts = options(dep)
    option = min(option, len(opts) - 1)
    out: list[DesiredReplica] = []
    for group in opts[option]:
        key = group_key(group)
        for n in range(group.count):
            out.append(
                DesiredReplica(project, pid, dep, group, key, option, n, replica_id(project, dep.name, key, n))
            )
    for gw in dep.gateways:
        group = gateway_group(gw)
        key = group_key(group, "gateway")
        out.append(DesiredReplica(project, pid, dep, group, key, option, 0,
                                  replica_id(project, dep.name, f"gw{key}", 0), gateway=gw))
    return out


def desired_replicas(plan: Plan, choice: dict[str, int] | None = None) -> list[DesiredReplica]:
    """Every replica the plan wants; ``choice`` maps a deployment to the fallback option in force."""
    pid = plan_id(plan)
    out: list[DesiredReplica] = []
    for dep in plan.deployments:
        out.extend(desired_for(plan.project, pid, dep, (choice or {}).get(dep.name, 0)))
    return out
