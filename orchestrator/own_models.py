"""The user's own models in the plan: a fine-tuned checkpoint by location and LoRA adapters on the base model.

From the deployment file's ``checkpoint:`` and ``lora:`` (orchestrator/spec/models.py) to what the plan carries
(``DeploymentPlan.checkpoint`` / ``.lora``, read by containers/own_models.py to launch vLLM), what the solver prices
(``moved_data``: the weights' copy to each serving region, as data egress) and what the performance model adds
(``lora_load``: orchestrator/perf/lora.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

BF16_BYTES = 2.0
COPIES_PER_MONTH = 1.0  # the weights move to a serving region once a month (pulled, then cached in the region)
DEFAULT_LORA_RANK = 16  # vLLM's default --max-lora-rank, for an adapter whose rank is unknown


class CheckpointPlan(BaseModel):
    """What vLLM loads instead of the registry's weights."""

    uri: str  # for vLLM: s3://, gs://, az://CONTAINER/path, or an absolute directory
    kind: str  # s3 | gs | azure | path
    region: str | None = None
    size_gb: float
    tokenizer: str | None = None  # --tokenizer; None: the checkpoint's own
    env: dict[str, str] = Field(default_factory=dict)  # e.g. AZURE_STORAGE_ACCOUNT_NAME


class AdapterPlan(BaseModel):
    name: str  # the request's model
    uri: str  # as CheckpointPlan.uri
    kind: str
    rank: int
    env: dict[str, str] = Field(default_factory=dict)


class LoraPlan(BaseModel):
    adapters: list[AdapterPlan]
    max_loras: int
    max_rank: int  # a rank vLLM accepts (orchestrator.perf.lora.VLLM_LORA_RANKS)


def checkpoint_gb(d: Any, model: Any) -> float:
    """The checkpoint's size: as given, else the base model's weights at bf16."""
    ck = getattr(d, "checkpoint", None)
    if ck is not None and ck.size_gb:
        return float(ck.size_gb)
    return float(model.params_b * BF16_BYTES) if model is not None else 0.0


def _rank(adapter: Any, base_dir: Path | None) -> int:
    if adapter.rank:
        return int(adapter.rank)
    from orchestrator.spec.checks_own import adapter_rank
    from orchestrator.storage_uri import parse_uri

    loc = parse_uri(adapter.uri, base_dir)
    return (adapter_rank(loc) if loc.kind == "path" else None) or DEFAULT_LORA_RANK


def lora_load(d: Any, base_dir: Path | None = None) -> Any:
    """The deployment's orchestrator.perf.lora.LoraLoad, or None without lora:."""
    if getattr(d, "lora", None) is None:
        return None
    from orchestrator.perf.lora import LoraLoad, vllm_rank

    ranks = [_rank(a, base_dir) for a in d.lora.adapters]
    top = vllm_rank(max([*ranks, d.lora.max_rank or 1]))
    return LoraLoad(max_loras=d.lora.max_loras or len(ranks), max_rank=top, adapters=len(ranks))


def moved_data(d: Any, model: Any) -> list[tuple[str, float]]:
    """(region, GB per month) of the weights a deployment copies to each serving region: its checkpoint and its
    adapters that name a region, COPIES_PER_MONTH times a month. Priced like ``data:`` sources (placement/inputs.py)."""
    out: list[tuple[str, float]] = []
    ck, lora = getattr(d, "checkpoint", None), getattr(d, "lora", None)
    if ck is not None and ck.region:
        out.append((ck.region, checkpoint_gb(d, model) * COPIES_PER_MONTH))
    if lora is not None and model is not None:
        from orchestrator.perf.lora import adapter_gb

        for a in lora.adapters:
            if a.region:
                out.append((a.region, adapter_gb(model, a.rank or DEFAULT_LORA_RANK) * COPIES_PER_MONTH))
    return out


def _tokenizer(value: str | None, model: Any, base_dir: Path | None) -> str | None:
    if value is None:
        return None
    if value == "base":
        hf_id = model.hf_id
        return str(Path(hf_id).parent) if hf_id.endswith(".json") else hf_id
    local = (base_dir / value) if base_dir is not None and not Path(value).is_absolute() else Path(value)
    return str(local.resolve()) if local.exists() else value


def plan_fields(d: Any, model: Any, base_dir: Path | None = None) -> dict[str, Any]:
    """``checkpoint`` and ``lora`` for the deployment's DeploymentPlan (both None when the file names neither)."""
    from orchestrator.storage_uri import parse_uri

    out: dict[str, Any] = {"checkpoint": None, "lora": None}
    ck = getattr(d, "checkpoint", None)
    if ck is not None:
        loc = parse_uri(ck.uri, base_dir)
        out["checkpoint"] = CheckpointPlan(uri=loc.vllm_uri(), kind=loc.kind, region=ck.region,
                                           size_gb=round(checkpoint_gb(d, model), 3),
                                           tokenizer=_tokenizer(ck.tokenizer, model, base_dir), env=dict(loc.env))
    load = lora_load(d, base_dir)
    if load is not None:
        adapters = []
        for a in d.lora.adapters:
            loc = parse_uri(a.uri, base_dir)
            adapters.append(AdapterPlan(name=a.name, uri=loc.vllm_uri(), kind=loc.kind, rank=_rank(a, base_dir),
                                        env=dict(loc.env)))
        out["lora"] = LoraPlan(adapters=adapters, max_loras=load.max_loras, max_rank=load.max_rank)
    return out
