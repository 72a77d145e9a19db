"""Semantic checks of a deployment file: rules that need the model registry, the catalog, the
policy registry or the performance model. All problems are returned together.

The spec may be partial (salvaged from a file with structural errors): every check reads a field
only when ``CheckInput.ok(path)`` says no structural error touches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import OrchError
from orchestrator.spec.models import CloudProvider, Deployment, DeploymentFile
from orchestrator.spec.problems import Issue, issues_from_validation
from orchestrator.spec.yaml_source import FieldPath
from orchestrator.suggest import did_you_mean

SHARE_TOLERANCE = 0.001
LOCAL_REGION = "local:this-machine"
CLOUDS = ("aws", "gcp", "azure", "lambdalabs", "runpod", "nebius", "coreweave", "vultr")  # catalog.offerings CLOUDS + GPU_CLOUDS


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a possibly partial model: missing required fields read as ``default``."""
    return default if obj is None else getattr(obj, name, default)


def _num(v: float) -> str:
    return f"{v:g}"


@dataclass
class CheckInput:
    spec: DeploymentFile  # may be partial: see module docstring
    base_dir: Path
    bad: frozenset[FieldPath] = frozenset()  # paths with structural errors
    models: dict[int, Any] = field(default_factory=dict)  # deployment index -> ModelArch, filled by check_models

    def ok(self, *path: Any) -> bool:
        """True when no structural error is at, above or below ``path``."""
        n = len(path)
        return not any(b[:n] == path or path[: len(b)] == b for b in self.bad)

    def bad_at(self, *path: Any) -> bool:
        """True when a structural error is at ``path`` or above it (the value itself is unusable)."""
        return any(path[: len(b)] == b for b in self.bad)

    def deployments(self) -> Iterator[tuple[int, Deployment]]:
        for i, d in enumerate(_get(self.spec, "deployments", None) or []):
            if d is not None and not self.bad_at("deployments", i):
                yield i, d


def check_names(inp: CheckInput) -> Iterator[Issue]:
    first: dict[str, int] = {}
    for i, d in inp.deployments():
        if not inp.ok("deployments", i, "name"):
            continue
        name = d.name
        if name in first:
            yield Issue(("deployments", i, "name"), f'duplicate deployment name "{name}" (also deployments[{first[name]}])')
        else:
            first[name] = i
    onprem = _get(_get(inp.spec, "providers"), "onprem")
    seen: dict[str, int] = {}
    for k, site in enumerate(_get(onprem, "sites", None) or []):
        path = ("providers", "onprem", "sites", k, "name")
        if site is None or not inp.ok(*path):
            continue
        if site.name in seen:
            yield Issue(path, f'duplicate on-prem site name "{site.name}" (also sites[{seen[site.name]}])')
        else:
            seen[site.name] = k


def check_shares(inp: CheckInput) -> Iterator[Issue]:
    for i, d in inp.deployments():
        path = ("deployments", i, "traffic", "sources")
        if not inp.ok(*path):
            continue
        sources = _get(_get(d, "traffic"), "sources", None) or []
        if not sources:
            continue  # users at the first data source's region, or anywhere: the solver decides
        total = sum(s.share for s in sources)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            yield Issue(path, f"traffic shares sum to {total:.4g}; they must sum to 1 (±{SHARE_TOLERANCE})")
        seen: set[str] = set()
        for j, s in enumerate(sources):
            if s.region in seen:
                yield Issue((*path, j, "region"), f'region "{s.region}" is listed twice; merge the shares')
            seen.add(s.region)


def check_models(inp: CheckInput) -> Iterator[Issue]:
    from orchestrator.model_registry import lookup_model, resolve_model

    for i, d in inp.deployments():
        path = ("deployments", i, "model")
        if not inp.ok(*path):
            continue
        name = d.model
        if lookup_model(name) is None and name.endswith(".json"):
            file = inp.base_dir / name
            if not file.is_file():
                yield Issue(path, f"model config file not found: {file}")
                continue
        try:
            inp.models[i] = resolve_model(name, inp.base_dir)
        except OrchError as exc:
            yield Issue(path, str(exc))
        except (OSError, ValueError, KeyError) as exc:
            yield Issue(path, f"cannot read model config {name}: {exc}")


def check_max_model_len(inp: CheckInput) -> Iterator[Issue]:
    for i, d in inp.deployments():
        path = ("deployments", i, "max_model_len")
        arch = inp.models.get(i)
        limit = _get(d, "max_model_len")
        if arch is None or limit is None or not inp.ok(*path):
            continue
        if limit > arch.max_context:
            yield Issue(path, f"max_model_len {limit} exceeds {arch.name}'s context window of {arch.max_context} tokens")


def check_quantizations(inp: CheckInput) -> Iterator[Issue]:
    """A quantization vLLM can serve only from a pre-quantized checkpoint (int8, int4) that the model lacks:
    located at the list item, naming the checkpoints that exist (orchestrator/compat.py)."""
    from orchestrator import compat

    for i, d in inp.deployments():
        arch = inp.models.get(i)
        path = ("deployments", i, "quantization")
        if arch is None or not inp.ok(*path):
            continue
        for j, q in enumerate(_get(d, "quantization", None) or []):
            if (msg := compat.checkpoint_reason(arch, q)) is not None:
                yield Issue((*path, j), msg)


def _known_regions(inp: CheckInput, catalog: dict[str, Any]) -> set[str]:
    known = set(catalog)
    providers = _get(inp.spec, "providers")
    for site in _get(_get(providers, "onprem"), "sites", None) or []:
        if site is not None and _get(site, "name"):
            known.add(f"onprem:{site.name}")
    if _get(providers, "local") is not None:
        known.add(LOCAL_REGION)
    return known


def _region_issue(path: FieldPath, region: str, known: set[str]) -> Issue:
    return Issue(path, f'unknown region "{region}"{did_you_mean(region, known)}; see `orch catalog list`')


def check_regions(inp: CheckInput) -> Iterator[Issue]:
    from orchestrator.catalog.regions import all_regions

    catalog = all_regions()
    known = _known_regions(inp, catalog)
    for i, d in inp.deployments():
        for j, s in enumerate(_get(_get(d, "traffic"), "sources", None) or []):
            path = ("deployments", i, "traffic", "sources", j, "region")
            if s is not None and inp.ok(*path) and s.region not in known:
                yield _region_issue(path, s.region, known)
        for j, src in enumerate(_get(d, "data", None) or []):
            path = ("deployments", i, "data", j, "region")
            if src is not None and inp.ok(*path) and src.region not in known:
                yield _region_issue(path, src.region, known)
    providers = _get(inp.spec, "providers")
    for cloud in CLOUDS:
        yield from _cloud_regions(inp, cloud, _get(providers, cloud), catalog)


def _cloud_regions(inp: CheckInput, cloud: str, conf: CloudProvider | None, catalog: dict[str, Any]) -> Iterator[Issue]:
    if conf is None:
        return
    names = sorted(r.name for r in catalog.values() if r.provider == cloud)

    def bad(region: str) -> str | None:
        if region in names:
            return None
        if region.startswith(f"{cloud}:") and region.split(":", 1)[1] in names:
            return f'write "{region.split(":", 1)[1]}": regions under providers.{cloud} are not prefixed'
        return f'unknown {cloud} region "{region}"{did_you_mean(region, names)}; known: {", ".join(names) or "none"}'

    for k, region in enumerate(_get(conf, "regions", None) or []):
        path = ("providers", cloud, "regions", k)
        if inp.ok(*path) and (msg := bad(region)):
            yield Issue(path, msg)
    for k, quota in enumerate(_get(conf, "quotas", None) or []):
        path = ("providers", cloud, "quotas", k, "region")
        region = _get(quota, "region")
        if region is not None and inp.ok(*path) and (msg := bad(region)):
            yield Issue(path, msg)


def _gpu_names() -> list[str]:
    from orchestrator.catalog.gpus import all_gpus

    return [g.name for g in all_gpus() if g.vendor != "cpu"]


def _gpu_issue(path: FieldPath, name: str, at_key: bool = False) -> Issue | None:
    from orchestrator.catalog.gpus import canonical_gpu_name

    canonical = canonical_gpu_name(name)
    names = _gpu_names()
    if canonical is not None and canonical in names:
        return None
    return Issue(path, f'unknown GPU type "{name}"{did_you_mean(name, names)}; known: {", ".join(names)}', at_key)


def check_gpus(inp: CheckInput) -> Iterator[Issue]:
    providers = _get(inp.spec, "providers")
    for k, site in enumerate(_get(_get(providers, "onprem"), "sites", None) or []):
        path = ("providers", "onprem", "sites", k, "gpus")
        if site is None or not inp.ok(*path):
            continue
        for gpu in site.gpus:
            if (issue := _gpu_issue((*path, gpu), str(gpu), at_key=True)) is not None:
                yield issue
    for cloud in CLOUDS:
        for k, quota in enumerate(_get(_get(providers, cloud), "quotas", None) or []):
            path = ("providers", cloud, "quotas", k, "gpu")
            gpu = _get(quota, "gpu")
            if gpu is not None and inp.ok(*path) and (issue := _gpu_issue(path, gpu)) is not None:
                yield issue


def check_policies(inp: CheckInput) -> Iterator[Issue]:
    defined: dict[str, Any] = _get(inp.spec, "policies", None) or {}
    if not inp.bad_at("policies"):
        for i, d in inp.deployments():
            for j, name in enumerate(_get(d, "policies", None) or []):
                path = ("deployments", i, "policies", j)
                if inp.ok(*path) and name not in defined:
                    have = ", ".join(sorted(defined)) or "none"
                    yield Issue(path, f'undefined policy "{name}"{did_you_mean(name, defined)}; defined under policies: {have}')
    from policies.registry import kinds, params_model

    known = kinds()
    if not known:
        return  # no policy kinds are installed yet: nothing to check against
    for name, ref in defined.items():
        path = ("policies", name)
        if ref is None or not inp.ok(*path, "kind"):
            continue
        if ref.kind not in known:
            yield Issue((*path, "kind"), f'unknown policy kind "{ref.kind}"{did_you_mean(ref.kind, known)}; known kinds: {", ".join(known)}')
            continue
        params_cls = params_model(ref.kind)
        if params_cls is None:
            continue
        params = dict(ref.model_extra or {})
        try:
            params_cls.model_validate(params)
        except ValidationError as exc:
            yield from issues_from_validation(exc, params_cls, params, base=path)


def check_slos(inp: CheckInput) -> Iterator[Issue]:
    from orchestrator.perf import best_achievable

    for i, d in inp.deployments():
        arch = inp.models.get(i)
        reads = [("quantization",), ("traffic", "input_tokens"), ("traffic", "output_tokens")]
        if arch is None or not all(inp.ok("deployments", i, *r) for r in reads):
            continue
        from orchestrator import compat

        quants = [q for q in d.quantization if compat.checkpoint_reason(arch, q) is None]  # the others: check_quantizations
        if not quants:
            continue
        try:
            best = best_achievable(arch, quants, d.traffic.input_tokens, d.traffic.output_tokens)
        except (OrchError, ValueError) as exc:  # the model fits on no GPU at these quantizations
            yield Issue(("deployments", i, "model"), str(exc))
            continue
        tpot_where = best.describe() if hasattr(best, "describe") else f"{best.tpot_ms:.1f} ms"
        ttft_where = best.describe_ttft() if hasattr(best, "describe_ttft") else f"{best.ttft_ms:.0f} ms"
        for metric, reached, where in (
            ("tpot_p95_ms", best.tpot_ms, tpot_where),
            ("ttft_p95_ms", best.ttft_ms, ttft_where),
        ):
            path = ("deployments", i, "slo", metric)
            target = _get(_get(d, "slo"), metric)
            if target is None or not inp.ok(*path) or target >= reached:
                continue
            yield Issue(path, f"{metric} {_num(target)} is below what any GPU reaches for {arch.name} (fastest: {where})")


def check_own_models(inp: CheckInput) -> Iterator[Issue]:
    """checkpoint: and lora: (orchestrator/spec/checks_own.py)."""
    from orchestrator.spec.checks_own import check_checkpoint, check_lora

    yield from check_checkpoint(inp)
    yield from check_lora(inp)


# Order matters: check_models fills CheckInput.models for the checks after it.
CHECKS: list[Callable[[CheckInput], Iterator[Issue]]] = [
    check_names,
    check_shares,
    check_models,
    check_max_model_len,
    check_quantizations,
    check_regions,
    check_own_models,
    check_gpus,
    check_policies,
    check_slos,
]


def run_checks(inp: CheckInput) -> list[Issue]:
    issues: list[Issue] = []
    for check in CHECKS:
        issues.extend(check(inp))
    return issues


def check_spec(spec: DeploymentFile, base_dir: Path) -> list[Issue]:
    """Semantic checks of a fully valid spec (the loader calls run_checks itself)."""
    return run_checks(CheckInput(spec=spec, base_dir=base_dir))
