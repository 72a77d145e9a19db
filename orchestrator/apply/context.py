"""Which project status/destroy act on, with its provider settings and last applied plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UserError
from orchestrator.plan import Plan

if TYPE_CHECKING:
    from orchestrator.spec.models import Providers
    from orchestrator.state.db import StateDB


@dataclass
class ProjectContext:
    project: str
    settings: Providers | None
    plan: Plan | None  # the last plan apply carried out, if any
    places: list[tuple[str, str]] = field(default_factory=list)  # (provider, region) to ask by labels


def project_context(db: StateDB, file: Path | None, project: str | None = None) -> ProjectContext:
    """From FILE when given (its project and provider settings), else from state (the only project there)."""
    from orchestrator.apply.converge import all_places
    from orchestrator.apply.planfile import places_from_settings, providers_from_json
    from orchestrator.state import store

    settings = None
    if file is not None:
        from orchestrator.spec.loader import load_spec

        loaded = load_spec(file, check=False)
        project = loaded.spec.project
        settings = loaded.spec.providers
    if project is None:
        known = store.projects(db)
        if not known:
            raise UserError("the state database knows no project; pass the deployment FILE")
        if len(known) > 1:
            raise UserError(f"the state database holds several projects ({', '.join(known)}); pass the deployment FILE")
        project = known[0]
    rec = store.latest_plan(db, project)
    plan = Plan.model_validate(rec.plan) if rec is not None else None
    if settings is None and rec is not None:
        settings = providers_from_json(rec.providers)
    places = places_from_settings(settings)
    if plan is not None:
        places += all_places(plan)
    return ProjectContext(project, settings, plan, list(dict.fromkeys(places)))
