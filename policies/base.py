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

Optional knowledge the solver, the candidates and the messages ask of a kind (safe defaults, so the solver names
no kind): ``bound_safe`` and ``spot_rule`` (what the cost bound may assume), ``difficulty_factor`` (scheduling),
``named_gpus`` (opt-in accelerators), ``over_limit``/``relax_hint``/``declared_at`` (infeasibility),
``prefers`` and ``explain_note`` (why a cheaper candidate is not the plan).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import UserError
from policies.registry import get_kind, kinds

if TYPE_CHECKING:  # imported for types only: keeps policy modules light
    from orchestrator.solver.model import ModelBuilder
    from orchestrator.solver.problem import Candidate
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
    #: True when an all-on-demand plan always satisfies the rows and the policy adds no objective terms: the cost
    #: bound of solver/bounds.py may then ignore it (beyond ``spot_rule``). False is always safe (no bound pruning).
    bound_safe: ClassVar[bool] = False
    #: How much harder a deployment with this policy is to solve (the decomposed solve takes the hardest first).
    difficulty_factor: ClassVar[float] = 1.0
    #: True when the policy is a lexicographic preference (objective "preference", solved before the user's
    #: objective): its ``explain_note`` then explains a choice before the SLOs do.
    prefers: ClassVar[bool] = False

    def __init__(self, name: str, params: BaseModel, *, implicit: bool = False) -> None:
        self.name = name
        self.params = params
        #: True for a policy the deployment gets from a field of its own (``spot: allow``), not from ``policies:``
        self.implicit = implicit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.params!r})"

    def reject(self, deployment: Deployment | None, candidate: Candidate) -> str | None:
        return None

    def add_constraints(self, builder: ModelBuilder, deployment: Deployment | None, candidates: list[Candidate]) -> None:
        return None

    def objective_terms(self, builder: ModelBuilder, deployment: Deployment | None, candidates: list[Candidate]) -> None:
        return None

    def spot_rule(self, deployment: Deployment | None) -> tuple[float, int] | None:
        """(on-demand floor, spot failure domains) the rows impose, for the cost bound; None: no spot rows."""
        return None

    def named_gpus(self) -> frozenset[str]:
        """Accelerators this policy names: those offered only where a policy names them (TPU, Trainium) are then
        candidates."""
        return frozenset()

    def over_limit(self, need_usd_month: float) -> tuple[tuple, str] | None:
        """A project-wide policy: (spec path, message) when the cheapest plan meeting every SLO, at
        ``need_usd_month``, breaks it; None when it does not or the policy cannot say."""
        return None

    def relax_hint(self, need_usd_month: float) -> str:
        """Appended to "policy X cannot be met" when the deployment's cheapest plan without it costs ``need``."""
        return ""

    def declared_at(self, deployment_index: int) -> tuple:
        """The spec path where the policy is declared (for located messages)."""
        return ("policies", self.name)

    def explain_note(self, deployment: Deployment | None, candidate: Candidate) -> str | None:
        """Why ``candidate``, cheaper on its own, may not be in the plan because of this policy; None: not this one."""
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
