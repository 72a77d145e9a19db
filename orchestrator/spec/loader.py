"""Load a deployment file: YAML -> pydantic -> semantic checks, with every problem located.

    loaded = load_spec("deploy.yaml")
    loaded.spec                      # DeploymentFile
    loaded.problem(("deployments", 0, "slo", "tpot_p95_ms"), "no GPU meets this")  # -> Problem at its line
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import Problem, SpecError
from orchestrator.spec.models import DeploymentFile
from orchestrator.spec.problems import Issue, dotted, issues_from_validation
from orchestrator.spec.yaml_source import MAX_NODES, FieldPath, SourceMap, parse_yaml, read_yaml


@dataclass
class LoadedSpec:
    spec: DeploymentFile
    path: Path
    base_dir: Path  # relative paths in the file (model config.json) resolve against this
    sha256: str  # hex digest of the file's bytes: plans and state record which file they came from
    source_map: SourceMap
    warnings: list[Problem] = field(default_factory=list)  # what apply will need that the file does not give yet

    def locate(self, path: FieldPath, prefer_key: bool = False) -> tuple[int, int] | None:
        """1-based (line, column) of ``path``, or of its nearest parent that has a position."""
        hit = self.source_map.locate(tuple(path), prefer_key)
        return hit[1] if hit else None

    def problem(self, path: FieldPath, message: str, *, at_key: bool = False) -> Problem:
        """A Problem pointing at ``path`` in this file (solver messages, plan explanations)."""
        return _problem(str(self.path), self.source_map, Issue(tuple(path), message, at_key))


def _problem(file: str, source_map: SourceMap, issue: Issue) -> Problem:
    hit = source_map.locate(issue.path, prefer_key=issue.at_key)
    line, col = hit[1] if hit else (None, None)
    return Problem(message=issue.message, path=dotted(issue.path), file=file, line=line, column=col)


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def validate_data(
    data: dict[str, Any], *, file: str, source_map: SourceMap, base_dir: Path, check: bool = True
) -> DeploymentFile:
    """Validate parsed YAML data; raises SpecError with every structural and semantic problem."""
    from orchestrator.spec.checks import CheckInput, run_checks
    from orchestrator.spec.salvage import salvage

    issues: list[Issue] = []
    spec: Any
    try:
        spec = DeploymentFile.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, DeploymentFile, data)
        spec = salvage(DeploymentFile, data)
    if check and spec is not None:
        inp = CheckInput(spec=spec, base_dir=base_dir, bad=frozenset(i.path for i in issues))
        issues.extend(run_checks(inp))
        if not any(i.path[:1] == ("providers",) for i in issues):
            from orchestrator.apply.launch_settings import launch_issues

            issues.extend(launch_issues(spec.providers)[0])
    if issues:
        raise SpecError(problems=_sorted([_problem(file, source_map, i) for i in _dedupe(issues)]))
    return spec


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: set[tuple[FieldPath, str]] = set()
    out = []
    for i in issues:
        if (i.path, i.message) not in seen:
            seen.add((i.path, i.message))
            out.append(i)
    return out


def load_spec(path: str | Path, *, check: bool = True, max_nodes: int = MAX_NODES) -> LoadedSpec:
    """Read, validate and (with ``check``) semantically check a deployment file.

    Raises SpecError listing every problem, each with file:line:column and the field path.
    """
    path = Path(path)
    doc = read_yaml(path, max_nodes=max_nodes)
    return _finish(path, doc.raw, doc.data, doc.source_map, check)


def load_spec_text(text: str | bytes, path: str | Path = "<string>", *, check: bool = True) -> LoadedSpec:
    """Like load_spec, from text already in memory; ``path`` names it in messages and sets base_dir."""
    path = Path(path)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    doc = parse_yaml(raw, str(path))
    return _finish(path, raw, doc.data, doc.source_map, check)


def _finish(path: Path, raw: bytes, data: dict[str, Any], source_map: SourceMap, check: bool) -> LoadedSpec:
    base_dir = path.resolve().parent
    spec = validate_data(data, file=str(path), source_map=source_map, base_dir=base_dir, check=check)
    warnings: list[Problem] = []
    if check:
        from orchestrator.apply.launch_settings import launch_issues

        warnings = _sorted([_problem(str(path), source_map, i) for i in launch_issues(spec.providers)[1]])
    return LoadedSpec(
        spec=spec, path=path, base_dir=base_dir, sha256=hashlib.sha256(raw).hexdigest(), source_map=source_map,
        warnings=warnings,
    )
