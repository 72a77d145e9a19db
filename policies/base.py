"""The small base every policy kind extends: three hooks, all no-ops by default.

The solver only ever calls these hooks, so a new kind is one module here and nothing else:
- ``reject(deployment, candidate)``: filter; a string says why (kept for the explanation). It is asked
  once per distinct combination of the candidate fields the kind ``reads`` (region, gpu, market,
  quantization; all four unless the kind says fewer), so it must look at no others.
- ``add_constraints(builder, deployment, candidates)``: rows over the builder's columns.
- ``objective_terms(builder, deployment, candidates)``: terms added to an objective
  (``builder.add_objective(col, coef, objective)``; objective "preference" is solved first,
  lexicographically, before the user's objective).

``deployment`` is None for a project-wide policy (the global budget); ``candidates`` are then all
of the project's candidates.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import UserError
from policies.registry import get_kind, kinds

if TYPE_CHECKING:  # imported for types only: keeps policy modules light
    from orchestrator.candidates import Candidate
    from orchestrator.solver.model import ModelBuilder
    from orchestrator.spec.models import Deployment, PolicyRef


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Policy:
    kind: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = PolicyParams
    #: True when the policy only filters candidates: dropping it cannot make a plan infeasible by rows.
    adds_rows: ClassVar[bool] = False
    #: The candidate fields ``reject`` looks at (the provider is part of the region id).
    reads: ClassVar[frozenset[str]] = frozenset({"region", "gpu", "market", "quantization"})
    #: True when the rows tie a deployment's choice to GPU types: a candidate is then judged dominated only by one
    #: of its own GPU type (a cheaper one of another type may be ruled out by the rows).
    per_gpu_type: ClassVar[bool] = False

    def __init__(self, name: str, params: BaseModel) -> None:
        self.name = name
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.params!r})"

    def reject(self, deployment: Deployment | None, candidate: Candidate) -> str | None:
        return None

    def add_constraints(self, builder: ModelBuilder, deployment: Deployment | None, candidates: list[Candidate]) -> None:
        return None

    def objective_terms(self, builder: ModelBuilder, deployment: Deployment | None, candidates: list[Candidate]) -> None:
        return None


def matches_region(region: str, patterns: list[str]) -> bool:
    """Region ids against globs: "aws:eu-*", "onprem:*", or a bare provider name "onprem"."""
    for p in patterns:
        if ":" not in p and region.split(":", 1)[0] == p:
            return True
        if fnmatch.fnmatchcase(region, p):
            return True
    return False


def make_policy(name: str, kind: str, params: dict[str, Any]) -> Policy:
    """Instantiate a policy kind with validated parameters (UserError naming the policy otherwise)."""
    from orchestrator.suggest import did_you_mean

    cls = get_kind(kind)
    if cls is None:
        raise UserError(f"policy {name!r}: unknown kind {kind!r}{did_you_mean(kind, kinds())}; known: {', '.join(kinds())}")
    try:
        p = cls.Params.model_validate(params)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UserError(f"policy {name!r} ({kind}): {msgs}") from None
    return cls(name, p)


def from_ref(name: str, ref: PolicyRef) -> Policy:
    params = dict(ref.model_extra or {})
    return make_policy(name, ref.kind, params)
