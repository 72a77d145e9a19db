"""Model architectures: what the performance model needs to know about an LLM."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.suggest import did_you_mean


@dataclass(frozen=True)
class ModelArch:
    name: str  # canonical lowercase registry name, e.g. llama-3.1-8b
    hf_id: str  # Hugging Face repo id vLLM serves, e.g. meta-llama/Llama-3.1-8B-Instruct
    params_b: float  # total parameters, billions
    active_params_b: float  # per token (== params_b for dense models)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    kv_bytes_per_token_bf16: float | None = None  # override (MLA); else 2*layers*kv_heads*head_dim*2
    experts: int | None = None
    experts_per_token: int | None = None
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return bool(self.experts)

    def kv_bytes_per_token(self, kv_bytes_per_value: float = 2.0) -> float:
        if self.kv_bytes_per_token_bf16 is not None:
            return self.kv_bytes_per_token_bf16 * kv_bytes_per_value / 2.0
        return 2.0 * self.layers * self.kv_heads * self.head_dim * kv_bytes_per_value


@cache
def _registry() -> tuple[dict[str, ModelArch], dict[str, str]]:
    import yaml  # only when a model is looked up

    text = resources.files("orchestrator.data").joinpath("models.yaml").read_text(encoding="utf-8")
    models: dict[str, ModelArch] = {}
    aliases: dict[str, str] = {}
    for name, row in yaml.safe_load(text).items():
        extra = row.pop("aliases", [])
        row.setdefault("active_params_b", row["params_b"])
        arch = ModelArch(name=name, **row)
        models[name] = arch
        for key in [name, f"{name}-instruct", arch.hf_id, *extra]:
            aliases[key.lower()] = name
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
