"""The plan: what `orch place` decides and `orch apply` carries out (the JSON contract of issue 4)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from orchestrator.own_models import CheckpointPlan, LoraPlan
from orchestrator.priced import PricedReplica

Market = Literal["on_demand", "spot", "onprem"]


class ReplicaGroup(BaseModel):
    """``count`` identical replicas of one deployment on one offering."""

    provider: str
    region: str  # provider-qualified
    instance_type: str
    gpu: str
    gpus_per_replica: int
    instances_per_replica: int = 1  # >1 when a replica spans nodes (LeaderWorkerSet / multi-VM)
    tensor_parallel: int
    pipeline_parallel: int = 1
    quantization: str
    market: Market
    count: int
    usd_per_hour: float  # for the whole group, effective: after negotiated discounts, spot or on-prem price
    list_usd_per_hour: float | None = None  # for the whole group, before discounts (None in older plans: = usd_per_hour)
    capacity_rps: float = 0.0  # per replica, at the SLO
    ttft_ms: float = 0.0
    tpot_ms: float = 0.0
    instances: int = 0  # instances (VMs/nodes) the whole group occupies; 0 in plans from before this field
    gpus_per_instance: int = 0
    traffic: dict[str, float] = Field(default_factory=dict)  # user region -> requests/s the plan routes here

    def replica(self) -> PricedReplica:
        """One of the group's replicas, priced: the record apply, state and metering carry from here on."""
        n = max(self.count, 1)
        usd = self.usd_per_hour / n
        return PricedReplica(provider=self.provider, region=self.region, instance_type=self.instance_type,
                             gpu=self.gpu, gpu_count=self.gpus_per_replica, market=self.market, usd_per_hour=usd,
                             list_usd_per_hour=self.list_usd_per_hour / n if self.list_usd_per_hour is not None else usd)

    def resize(self, count: int) -> None:
        """Change the number of replicas; the group's prices follow (per replica unchanged)."""
        n = max(self.count, 1)
        self.usd_per_hour = round(self.usd_per_hour / n * count, 4)
        if self.list_usd_per_hour is not None:
            self.list_usd_per_hour = round(self.list_usd_per_hour / n * count, 4)
        self.count = count


class GatewayPlan(BaseModel):
    """Where one gateway of a deployment runs, whose users it answers, and which replicas it routes them to."""

    provider: str
    region: str  # provider-qualified
    instance_type: str  # the host: a small CPU VM on a cloud, this machine, an on-prem site
    usd_per_hour: float = 0.0
    port: int
    policy: str
    users: list[str] = Field(default_factory=list)  # user regions that enter here (empty: all)
    upstream: list[str] = Field(default_factory=list)  # regions of the replicas the plan routes those users to
    allow_cidrs: list[str] = Field(default_factory=list)
    control_cidrs: list[str] = Field(default_factory=list)


class Predicted(BaseModel):
    ttft_p95_ms: float
    tpot_p95_ms: float
    capacity_rps: float
    usd_per_million_tokens: float


class DeploymentPlan(BaseModel):
    name: str
    model: str  # canonical registry name
    hf_id: str  # what vLLM serves
    team: str | None = None
    max_model_len: int
    kv_cache_dtype: str = "auto"
    replicas: list[ReplicaGroup]
    predicted: Predicted
    usd_per_hour: float
    egress_usd_per_month: float
    fallbacks: list[list[ReplicaGroup]] = Field(default_factory=list)  # ranked; best first
    explanation: dict = Field(default_factory=dict)
    gateways: list[GatewayPlan] = Field(default_factory=list)  # empty: no gateway (gateway.enabled false)
    checkpoint: CheckpointPlan | None = None  # the user's own weights, served instead of hf_id's
    lora: LoraPlan | None = None  # LoRA adapters served on the model (vLLM --enable-lora)
    # where the figures come from (model | measured profile), the error band, the edge the SLOs were checked at, and
    # the roofline terms (orchestrator/perf/provenance.py)
    performance: dict = Field(default_factory=dict)


class Totals(BaseModel):
    usd_per_hour: float
    usd_per_month: float
    egress_usd_per_month: float
    gateways_usd_per_hour: float = 0.0  # the gateways' hosts, on top of usd_per_hour (not part of the objective)


class Plan(BaseModel):
    project: str
    # optimal: proven (relative gap <= 1e-4); feasible: the time limit stopped the proof, ``gap`` says how far
    # from the optimum it may be; infeasible; timeout: no plan found within the time limit
    status: Literal["optimal", "feasible", "infeasible", "timeout"]
    gap: float = 0.0
    objective: str
    objective_value: float | None = None
    solve_seconds: float
    deployments: list[DeploymentPlan] = Field(default_factory=list)
    total: Totals | None = None
    spec_sha256: str = ""  # of the deployment file, so apply can refuse a mismatched plan
    catalog_as_of: str = ""  # the dates of the prices the plan uses (one date, or "first..last")
    messages: list[str] = Field(default_factory=list)  # infeasibility explanations
