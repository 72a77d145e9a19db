"""What the MILP is built from: plain numbers per deployment and candidate, no catalog or spec lookups."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.candidates import Candidate
from orchestrator.catalog.types import HOURS_PER_MONTH

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


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
    policies: list[Any] = field(default_factory=list)
    spec: Any = None  # the spec Deployment handed to policy hooks
    tokens_per_request: float = 0.0  # input + output, for $ per 1M tokens

    @property
    def required_rps(self) -> float:
        return self.rps * (1.0 + self.headroom)

    def subset(self, keep: list[int]) -> DeploymentInput:
        """The same deployment with only the candidates at positions ``keep`` (and their matrix columns)."""
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


@dataclass
class SolverInput:
    deployments: list[DeploymentInput]
    limits: list[ResourceLimit] = field(default_factory=list)
    global_policies: list[Any] = field(default_factory=list)  # called with deployment=None, all candidates
    renumber: bool = True  # False: keep the candidates' idx (a subproblem of a larger input)

    def __post_init__(self) -> None:
        if self.renumber:
            self.index()

    def index(self) -> None:
        i = 0
        for d in self.deployments:
            for c in d.candidates:
                c.idx = i
                i += 1

    @property
    def candidates(self) -> list[Candidate]:
        return [c for d in self.deployments for c in d.candidates]
