"""What the MILP is built from: plain numbers per deployment and candidate, no catalog or spec lookups.

Candidate is the record the placement pipeline (orchestrator/placement/) hands the engine: one option to buy. It
carries no number: it is compared and hashed by identity, and the model, solutions and warm starts key by the
candidate itself. A subproblem (``DeploymentInput.subset``, one deployment of a larger input) shares the whole
problem's Candidate objects, never copies them, so its columns and plans read back against the whole problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.catalog.types import HOURS_PER_MONTH, Offering

if TYPE_CHECKING:
    from orchestrator.spec.models import Deployment
    from policies.base import Policy

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0

# Power usage effectiveness of hyperscaler data centres, for cloud carbon: Google published a fleet PUE of 1.1
# for Q2 2021 (CNBC, 2022-04-13, https://www.cnbc.com/2022/04/13/google-data-center-goal-100percent-green-energy-by-2030.html,
# citing Google's efficiency page https://www.google.com/about/datacenters/efficiency/); the Uptime Institute 2021
# survey average for large data centres was 1.57 (same source). One figure, 1.1, for AWS, GCP and Azure (as of 2021-2022).
CLOUD_PUE = 1.1


@dataclass(eq=False)  # identity: the keys of unit columns, solutions and warm starts
class Candidate:
    deployment: str
    offering: Offering
    gpus_per_replica: int
    quantization: str
    market: str  # on_demand | spot | onprem
    rps_per_replica: float  # at the TPOT SLO
    ttft_ms: float  # p95 at the planned utilization, without network
    tpot_ms: float
    usd_per_instance_hour: float  # for this market
    grid_g_per_kwh: float = 0.0
    pue: float = CLOUD_PUE
    gpu_tdp_w: float = 0.0
    reach: int = -1  # bitmask of the user regions it can answer within the TTFT SLO (-1: all)
    # derived from the fields above when created (read many times by the bounds and the model: a cached_property
    # takes a lock on first use in Python 3.11, and that cost 0.1 s over the candidates of 5,000 x 50)
    instances_per_replica: int = field(init=False, repr=False)
    replicas_per_unit: int = field(init=False, repr=False)
    instances_per_unit: int = field(init=False, repr=False)  # one instance, or the instances one replica spans
    gpus_per_unit: int = field(init=False, repr=False)
    tensor_parallel: int = field(init=False, repr=False)
    pipeline_parallel: int = field(init=False, repr=False)
    usd_per_unit_hour: float = field(init=False, repr=False)
    rps_per_unit: float = field(init=False, repr=False)
    carbon_g_per_unit_hour: float = field(init=False, repr=False)

    @property
    def provider(self) -> str:
        return self.offering.provider

    @property
    def region(self) -> str:
        return self.offering.region

    @property
    def gpu(self) -> str:
        return self.offering.gpu

    @property
    def instance_type(self) -> str:
        return self.offering.instance_type

    def __post_init__(self) -> None:
        n = self.offering.gpu_count
        self.instances_per_replica = max(1, self.gpus_per_replica // n)
        self.replicas_per_unit = max(1, n // self.gpus_per_replica)
        self.instances_per_unit = self.instances_per_replica
        self.gpus_per_unit = n * self.instances_per_unit
        self.tensor_parallel = min(self.gpus_per_replica, n)
        self.pipeline_parallel = self.instances_per_replica
        self.usd_per_unit_hour = self.usd_per_instance_hour * self.instances_per_unit
        self.rps_per_unit = self.rps_per_replica * self.replicas_per_unit
        self.carbon_g_per_unit_hour = self.gpus_per_unit * self.gpu_tdp_w / 1000.0 * self.pue * self.grid_g_per_kwh

    @property
    def list_usd_per_instance_hour(self) -> float:
        """The price before negotiated discounts (the catalog's list price); spot and on-prem prices have none."""
        listed = self.offering.list_usd_per_hour
        return listed if self.market == "on_demand" and listed is not None else self.usd_per_instance_hour

    def describe(self) -> str:
        n = f"{self.gpus_per_replica}×{self.gpu}"
        return f"{self.region} {self.instance_type} ({n}, {self.quantization}, {self.market})"




@dataclass
class DeploymentInput:
    """One deployment as the solver sees it.

    rtt_ms[s][c]: network round trip from user region s to candidate c's region.
    response_usd_per_rps_month[s][c]: egress $ per month of serving 1 req/s of region s's users from c.
    data_egress_usd_month: serving region -> $ per month of moving the deployment's data there (> 0 only).
    """

    name: str
    rps: float
    headroom: float
    sources: list[tuple[str, float]]
    ttft_slo_ms: float
    candidates: list[Candidate]
    rtt_ms: list[list[float]]
    response_usd_per_rps_month: list[list[float]]
    data_egress_usd_month: dict[str, float] = field(default_factory=dict)
    policies: list[Policy] = field(default_factory=list)
    spec: Deployment | None = None  # the spec Deployment handed to policy hooks
    tokens_per_request: float = 0.0  # input + output, for $ per 1M tokens

    @property
    def required_rps(self) -> float:
        return self.rps * (1.0 + self.headroom)

    def subset(self, keep: list[int]) -> DeploymentInput:
        """The same deployment with only the candidates at positions ``keep`` (and their matrix columns); the
        Candidate objects are shared, not copied (they are keys by identity)."""
        return dataclasses.replace(
            self, candidates=[self.candidates[i] for i in keep], rtt_ms=[[row[i] for i in keep] for row in self.rtt_ms],
            response_usd_per_rps_month=[[row[i] for i in keep] for row in self.response_usd_per_rps_month],
        )


@dataclass
class ResourceLimit:
    """GPUs summed over every deployment's candidates that ``match`` are at most ``max_gpus``.

    ``match`` reads only a candidate's provider, region and GPU (the model asks it once per combination)."""

    name: str  # shown to users: "aws quota H100 in us-east-1"
    kind: str  # quota | inventory
    max_gpus: float
    match: Callable[[Candidate], bool]
    where: tuple = ()  # spec field path, for infeasibility messages


@dataclass(frozen=True)
class Held:
    """What deployments outside the problem hold, fixed (a plan B's subproblem, adding a replica): GPUs per limit
    name (quotas, inventory), and $ per month (against a project budget)."""

    used_gpus: dict[str, float] = field(default_factory=dict)
    usd_per_month: float = 0.0


NOTHING_HELD = Held()


@dataclass
class SolverInput:
    deployments: list[DeploymentInput]
    limits: list[ResourceLimit] = field(default_factory=list)
    global_policies: list[Policy] = field(default_factory=list)  # called with deployment=None, all candidates

    @property
    def candidates(self) -> list[Candidate]:
        return [c for d in self.deployments for c in d.candidates]
