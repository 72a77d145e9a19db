"""The plan apply carries out: solved now from the deployment file, or a saved one checked against it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError
from orchestrator.plan import Plan

if TYPE_CHECKING:
    from orchestrator.spec.loader import LoadedSpec
    from orchestrator.spec.models import DeploymentFile, Providers


def read_plan(path: Path) -> Plan:
    from pydantic import ValidationError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read plan {path}: {exc.strerror}") from None
    try:
        return Plan.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: not an orch plan ({where}: {first['msg']}); make one with `orch place FILE -o {path}`") from None


def mismatch(plan: Plan, loaded: LoadedSpec, plan_path: Path) -> str | None:
    """Why ``plan`` was not made from this deployment file (None when it was)."""
    spec = loaded.spec
    if plan.spec_sha256 == loaded.sha256 and plan.project == spec.project:
        return None
    in_plan = [d.name for d in plan.deployments]
    in_file = [d.name for d in spec.deployments]
    lines = [
        f"plan {plan_path} was not made from {loaded.path}:",
        f"  plan: spec sha256 {plan.spec_sha256 or '(none)'}, project {plan.project}, deployments {', '.join(in_plan) or '-'}",
        f"  file: spec sha256 {loaded.sha256}, project {spec.project}, deployments {', '.join(in_file) or '-'}",
    ]
    only_plan = sorted(set(in_plan) - set(in_file))
    only_file = sorted(set(in_file) - set(in_plan))
    if plan.project != spec.project:
        lines.append(f"  project differs: {plan.project} (plan) vs {spec.project} (file)")
    if only_plan:
        lines.append(f"  only in the plan: {', '.join(only_plan)}")
    if only_file:
        lines.append(f"  only in the file: {', '.join(only_file)}")
    if not (only_plan or only_file or plan.project != spec.project):
        lines.append("  same deployment names: the file was edited after the plan was made")
    lines.append(f"re-plan with `orch place {loaded.path} -o {plan_path}`, or apply without --plan")
    return "\n".join(lines)


def resolve_plan(loaded: LoadedSpec, plan_path: Path | None, objective: str) -> Plan:
    if plan_path is not None:
        plan = read_plan(plan_path)
        why = mismatch(plan, loaded, plan_path)
        if why:
            raise UserError(why)
    else:
        from orchestrator.placement import place

        plan = place(loaded, objective=objective)
    if plan.status not in ("optimal", "feasible"):
        detail = "\n".join(plan.messages) or "no feasible placement"
        raise UserError(f"the plan is {plan.status}; nothing to apply:\n{detail}")
    return plan


def providers_json(spec: DeploymentFile) -> dict[str, Any] | None:
    """The spec's providers section (settings only: credentials never appear in a deployment file)."""
    return spec.providers.model_dump(mode="json") if spec.providers else None


def providers_from_json(data: dict[str, Any] | None) -> Providers | None:
    from orchestrator.spec.models import Providers

    return Providers.model_validate(data) if data else None


def places_from_settings(settings: Providers | None) -> list[tuple[str, str]]:
    """Every (provider, region) the deployment file names explicitly: where destroy looks for labels."""
    if settings is None:
        return []
    out: list[tuple[str, str]] = []
    for name in ("aws", "gcp", "azure"):
        cloud = getattr(settings, name)
        for r in (cloud.regions or []) if cloud else []:
            out.append((name, r if ":" in r else f"{name}:{r}"))
    if settings.onprem:
        out += [("onprem", f"onprem:{s.name}") for s in settings.onprem.sites]
    if settings.local:
        out.append(("local", "local:this-machine"))
    return out
