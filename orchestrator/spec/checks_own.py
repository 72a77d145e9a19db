"""Semantic checks of the user's own models: ``checkpoint:`` (a fine-tune by location) and ``lora:`` (adapters).

Each problem is located at the field that causes it: an unknown URI scheme at ``uri``, a region that does not exist
or cannot hold that kind of storage at ``region``, object storage without a region (or an adapter without a rank)
at the entry itself, a checkpoint without ``model:`` at ``checkpoint``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.spec.problems import Issue
from orchestrator.spec.yaml_source import FieldPath
from orchestrator.storage_uri import StorageURI, parse_uri

LOCAL_REGION = "local:this-machine"
# quantizations vLLM 0.32 applies to any bf16/fp16 checkpoint (fp8 in flight); int8/int4 need a pre-quantized one
IN_FLIGHT = ("bf16", "fp16", "fp8")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return default if obj is None else getattr(obj, name, default)


def _location(inp: Any, path: FieldPath, entry: Any, known: set[str], what: str) -> Iterator[Issue | StorageURI]:
    """Issues of one ``{uri, region}`` entry, then (if the URI parses) its StorageURI."""
    from orchestrator.spec.checks import _region_issue

    uri, region = _get(entry, "uri"), _get(entry, "region")
    if uri is None or not inp.ok(*path, "uri"):
        return
    try:
        loc = parse_uri(uri, inp.base_dir)
    except ValueError as exc:
        yield Issue((*path, "uri"), str(exc))
        return
    if region is not None and inp.ok(*path, "region"):
        if region not in known:
            yield _region_issue((*path, "region"), region, known)
        elif (why := loc.region_reason(region)) is not None:
            yield Issue((*path, "region"), why)
    elif region is None and loc.object_storage and inp.ok(*path, "region"):
        yield Issue(path, f"{what} in object storage needs region: where the bucket is (e.g. "
                          f"{ {'s3': 'aws:us-east-1', 'gs': 'gcp:us-central1', 'azure': 'azure:eastus'}[loc.kind]}): "
                          "copying it to each serving region is priced as egress")
    yield loc


def _split(items: Iterator[Issue | StorageURI]) -> tuple[list[Issue], StorageURI | None]:
    issues, loc = [], None
    for it in items:
        if isinstance(it, Issue):
            issues.append(it)
        else:
            loc = it
    return issues, loc


def _missing_dir(loc: StorageURI, region: str | None) -> bool:
    """A directory on this machine (relative to the file, or in region local:this-machine) that is not there. An
    absolute path elsewhere may be on the serving hosts only: it is not checked."""
    here = region == LOCAL_REGION or (region is None and not Path(loc.raw).expanduser().is_absolute()
                                      and not loc.raw.startswith("file://"))
    return loc.kind == "path" and here and not Path(loc.path).is_dir()


def check_checkpoint(inp: Any) -> Iterator[Issue]:
    from orchestrator.catalog.regions import all_regions
    from orchestrator.spec.checks import _known_regions

    known: set[str] | None = None
    for i, d in inp.deployments():
        path = ("deployments", i, "checkpoint")
        ck = _get(d, "checkpoint")
        if ck is None or inp.bad_at(*path):
            continue
        if not _get(d, "model"):
            yield Issue(path, "a checkpoint needs its base model: set model: to the registry name or the config.json "
                              "of the architecture it was fine-tuned from")
        known = known if known is not None else _known_regions(inp, all_regions())
        issues, loc = _split(_location(inp, path, ck, known, "a checkpoint"))
        yield from issues
        region = _get(ck, "region")
        if loc is not None and not issues and _missing_dir(loc, region):
            yield Issue((*path, "uri"), f"checkpoint directory not found on this machine: {loc.path}")
        for j, q in enumerate(_get(d, "quantization", None) or []):
            if q not in IN_FLIGHT and inp.ok("deployments", i, "quantization", j):
                yield Issue(("deployments", i, "quantization", j),
                            f"{q} cannot be applied to a checkpoint by location: vLLM quantizes to fp8 in flight but "
                            f"needs a pre-quantized checkpoint for {q}; use {', '.join(IN_FLIGHT)}")


def adapter_rank(loc: StorageURI) -> int | None:
    """``r`` from a local adapter directory's adapter_config.json (PEFT), or None."""
    try:
        r = json.loads((Path(loc.path) / "adapter_config.json").read_text()).get("r")
    except (OSError, ValueError, AttributeError):
        return None
    return int(r) if isinstance(r, int) and r > 0 else None


def check_lora(inp: Any) -> Iterator[Issue]:
    from orchestrator.catalog.regions import all_regions
    from orchestrator.spec.checks import _known_regions

    known: set[str] | None = None
    for i, d in inp.deployments():
        base = ("deployments", i, "lora")
        lora = _get(d, "lora")
        if lora is None or inp.bad_at(*base):
            continue
        known = known if known is not None else _known_regions(inp, all_regions())
        seen: dict[str, int] = {}
        ranks: list[int] = []
        for j, a in enumerate(_get(lora, "adapters", None) or []):
            path = (*base, "adapters", j)
            if a is None or inp.bad_at(*path):
                continue
            name = _get(a, "name")
            if name is not None and inp.ok(*path, "name"):
                if name == _get(d, "name"):
                    yield Issue((*path, "name"), f'adapter name "{name}" is the deployment\'s own name, which '
                                "clients use for the base model; choose another")
                elif name in seen:
                    yield Issue((*path, "name"), f'duplicate adapter name "{name}" (also adapters[{seen[name]}])')
                else:
                    seen[name] = j
            issues, loc = _split(_location(inp, path, a, known, "an adapter"))
            yield from issues
            if loc is None or issues or not inp.ok(*path, "rank"):
                continue
            rank, region = _get(a, "rank"), _get(a, "region")
            if _missing_dir(loc, region) or (loc.kind == "path" and rank is None and not Path(loc.path).is_dir()):
                yield Issue((*path, "uri"), f"adapter directory not found: {loc.path}")
                continue
            found = adapter_rank(loc) if loc.kind == "path" else None
            if rank is None and found is None:
                where = "its adapter_config.json has no r" if loc.kind == "path" else "orch cannot read object storage"
                yield Issue(path, f"rank: needed ({where}); give the adapter's LoRA rank r")
            elif rank is not None and found is not None and rank != found:
                yield Issue((*path, "rank"), f"rank {rank} differs from r = {found} in {loc.path}/adapter_config.json")
            elif (rank or found) is not None:
                ranks.append(int(rank or found))
        max_rank = _get(lora, "max_rank")
        if max_rank is not None and ranks and inp.ok(*base, "max_rank") and max_rank < max(ranks):
            yield Issue((*base, "max_rank"), f"max_rank {max_rank} is below the largest adapter rank, {max(ranks)}: "
                                             "vLLM refuses adapters above it")
