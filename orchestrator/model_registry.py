"""The model registry (orchestrator/data/models.yaml): names and aliases to architectures, and a model named by
registry name or by a Hugging Face config.json path. The record itself is orchestrator/model_arch.py."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.model_arch import (  # noqa: F401 - re-exported
    CHECKPOINT_FORMATS,
    WEIGHT_FORMATS,
    Checkpoint,
    ModelArch,
)
from orchestrator.suggest import did_you_mean

_FIELDS = set(ModelArch.__dataclass_fields__) - {"name"}


@cache
def _registry() -> tuple[dict[str, ModelArch], dict[str, str]]:
    import yaml  # only when a model is looked up

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = resources.files("orchestrator.data").joinpath("models.yaml").read_text(encoding="utf-8")
    models: dict[str, ModelArch] = {}
    aliases: dict[str, str] = {}
    for name, row in yaml.load(text, Loader=loader).items():  # noqa: S506 - a safe loader
        row = dict(row)
        extra = row.pop("aliases", None) or []
        row["checkpoints"] = tuple(Checkpoint(quantization=q, **c) for q, c in (row.pop("checkpoints", None) or {}).items())
        unknown = set(row) - _FIELDS
        if unknown:
            raise ValueError(f"models.yaml: {name}: unknown field(s) {', '.join(sorted(unknown))}")
        row.setdefault("active_params_b", row["params_b"])
        arch = ModelArch(name=name, **row)
        models[name] = arch
        for key in {name, f"{name}-instruct", arch.hf_id, *extra}:
            key = key.lower()
            if aliases.get(key, name) != name:
                raise ValueError(f"models.yaml: {key!r} names both {aliases[key]} and {name}")
            aliases[key] = name
    return models, aliases


def all_models() -> list[ModelArch]:
    return list(_registry()[0].values())


def lookup_model(name: str) -> ModelArch | None:
    """A registry model by name or alias (case-insensitive), or None."""
    models, aliases = _registry()
    canonical = aliases.get(name.strip().lower())
    return models[canonical] if canonical else None


def resolve_model(name: str, base_dir: Path | None = None) -> ModelArch:
    """A registry name/alias, or a path (relative to base_dir) to a Hugging Face config.json."""
    arch = lookup_model(name)
    if arch is not None:
        return arch
    if name.endswith(".json"):
        from orchestrator.hf_config import load_hf_config

        path = Path(name) if base_dir is None else base_dir / name
        return load_hf_config(path)
    known = sorted(_registry()[1])
    raise UserError(
        f"unknown model {name!r}{did_you_mean(name, known)}; "
        f"use a registry name (orch catalog models) or a path to a Hugging Face config.json"
    )
