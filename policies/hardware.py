"""hardware: allowed GPU types only (e.g. one type everywhere, for bit-reproducible results)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from policies.base import Policy, PolicyParams
from policies.registry import register


class HardwareParams(PolicyParams):
    gpus: list[str] = Field(min_length=1, description="GPU types, e.g. [H100, H200]")

    @field_validator("gpus")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        from orchestrator.catalog.gpus import get_gpu

        return [get_gpu(g).name for g in v]  # UserError with a suggestion on a typo


@register
class Hardware(Policy):
    kind: ClassVar[str] = "hardware"
    reads: ClassVar[frozenset[str]] = frozenset({"gpu"})
    Params: ClassVar[type[PolicyParams]] = HardwareParams
    bound_safe: ClassVar[bool] = True  # a filter: no rows, no objective terms

    def named_gpus(self) -> frozenset[str]:
        return frozenset(self.params.gpus)

    def reject(self, deployment, candidate):  # noqa: ANN001, ANN201
        if candidate.gpu in self.params.gpus:
            return None
        return f"hardware ({self.name}): GPU {candidate.gpu} not in {', '.join(self.params.gpus)}"
