"""Measured performance profiles (written by `orch bench`) that override the model's figures.

A profile is one (model, GPU, GPU count, quantization) measured at several concurrencies and
request shapes. When one matches, estimates interpolate it and say source="measured".
Files: YAML or JSON, one profile each, in $ORCH_PROFILE_DIR (os.pathsep-separated list allowed) or
~/.config/orch/profiles.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError, field_validator

from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.perf.types import Estimate

SHAPE_TOLERANCE = math.log(2.0)  # a profile point counts for a request shape within 2x in and out


class ProfilePoint(BaseModel):
    concurrency: int = Field(ge=1)
    input_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    output_tokens_per_s: float = Field(ge=0)
    requests_per_s: float = Field(ge=0)
    ttft_p50_ms: float = Field(ge=0)
    ttft_p95_ms: float = Field(ge=0)
    tpot_p50_ms: float = Field(ge=0)
    tpot_p95_ms: float = Field(ge=0)


class Profile(BaseModel):
    model: str
    gpu: str
    gpus: int = Field(ge=1)
    quantization: str
    kv_cache_dtype: str = "auto"
    engine: str = "vllm"
    measured_at: datetime
    endpoint: str
    points: list[ProfilePoint] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        # an endpoint URL with user:password@ would leak a secret into a file
        return re.sub(r"//[^/@]+@", "//", v)

    def key(self) -> tuple[str, str, int, str]:
        return profile_key(self.model, self.gpu, self.gpus, self.quantization)


def profile_key(model: str, gpu: str, gpus: int, quantization: str) -> tuple[str, str, int, str]:
    """Canonical (model, gpu, gpus, quantization), so aliases match."""
    from orchestrator.catalog.gpus import canonical_gpu_name
    from orchestrator.model_registry import lookup_model

    arch = lookup_model(model)
    return (arch.name if arch else model.lower(), canonical_gpu_name(gpu) or gpu, gpus, quantization.lower())


def default_dirs() -> list[Path]:
    env = os.environ.get("ORCH_PROFILE_DIR")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".config" / "orch" / "profiles"]


def load_profiles(dir: Path | list[Path] | None = None) -> list[Profile]:  # noqa: A002 - API name
    """Every profile file (*.yaml, *.yml, *.json) in the given directory or directories."""
    import json

    import yaml

    dirs = default_dirs() if dir is None else ([dir] if isinstance(dir, (str, Path)) else list(dir))
    profiles: list[Profile] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            continue
        for path in sorted(d.iterdir()):
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            text = path.read_text(encoding="utf-8")
            try:
                data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
                profiles.append(Profile.model_validate(data))
            except (ValidationError, ValueError, yaml.YAMLError) as exc:
                raise UserError(f"{path}: not a valid performance profile: {exc}") from None
    return profiles


def save_profile(profile: Profile, dir: Path | None = None) -> Path:  # noqa: A002 - API name
    """Write one profile as YAML; the file name is derived from its key. Returns the path."""
    import yaml

    target = Path(dir) if dir is not None else default_dirs()[0]
    target.mkdir(parents=True, exist_ok=True)
    model, gpu, gpus, q = profile.key()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}__{gpu}x{gpus}__{q}") + ".yaml"
    path = target / name
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    clear_cache()
    return path


@cache
def _index() -> dict[tuple[str, str, int, str], Profile]:
    index: dict[tuple[str, str, int, str], Profile] = {}
    for p in load_profiles():
        old = index.get(p.key())
        if old is None or p.measured_at > old.measured_at:
            index[p.key()] = p
    return index


_LISTENERS: list[Callable[[], None]] = []  # caches built from the profiles (perf/api.py registers its own)


def on_clear(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever the profiles are forgotten: the estimates cached from them go too, without this
    module importing the modules that cache them."""
    _LISTENERS.append(listener)


def clear_cache() -> None:
    """Forget loaded profiles (and the cached estimates that used them)."""
    _index.cache_clear()
    for listener in _LISTENERS:
        listener()


def find_profile(model: str, gpu: str, gpus: int, quantization: str) -> Profile | None:
    index = _index()
    if not index:
        return None
    return index.get(profile_key(model, gpu, gpus, quantization))


def _points_for_shape(profile: Profile, input_tokens: int, output_tokens: int) -> list[ProfilePoint]:
    def dist(p: ProfilePoint) -> tuple[float, float]:
        return abs(math.log(p.input_tokens / input_tokens)), abs(math.log(p.output_tokens / output_tokens))

    near = [p for p in profile.points if max(dist(p)) <= SHAPE_TOLERANCE]
    if not near:
        return []
    best = min(sum(dist(p)) for p in near)
    chosen = [p for p in near if abs(sum(dist(p)) - best) < 1e-9]
    return sorted(chosen, key=lambda p: p.concurrency)


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    import numpy as np

    return float(np.interp(x, xs, ys))


def apply_profile(
    est: Estimate,
    profile: Profile,
    input_tokens: int,
    output_tokens: int,
    tpot_slo_ms: float | None,
    utilization: float,
) -> Estimate:
    """The estimate with throughput/latency replaced by the profile's, interpolated in concurrency.

    The TPOT SLO is checked against the measured p95; max batch is the largest concurrency (linear
    between measured points) that meets it, or the largest measured one without an SLO.
    Memory figures stay the model's. Returns `est` unchanged when no point is near this shape.
    """
    pts = _points_for_shape(profile, input_tokens, output_tokens)
    if not pts:
        return est
    cs = [float(p.concurrency) for p in pts]
    tpot95 = [p.tpot_p95_ms for p in pts]
    if tpot_slo_ms is None:
        batch = cs[-1]
    elif tpot95[0] > tpot_slo_ms:
        batch = 0.0
    else:
        batch = cs[0]
        for (c0, t0), (c1, t1) in zip(zip(cs, tpot95), zip(cs[1:], tpot95[1:])):
            if t1 <= tpot_slo_ms:
                batch = c1
                continue
            if t1 > t0:
                batch = c0 + (tpot_slo_ms - t0) / (t1 - t0) * (c1 - c0)
            break
        batch = math.floor(batch)
    b = max(batch, 1.0)
    rps = _interp(b, cs, [p.requests_per_s for p in pts]) if batch > 0 else 0.0
    tput = _interp(b, cs, [p.output_tokens_per_s for p in pts]) if batch > 0 else 0.0
    at_load = max(cs[0], utilization * b)
    reason = est.reason
    if batch == 0 and tpot_slo_ms is not None:
        reason = f"even batch 1 misses the TPOT SLO: measured p95 {tpot95[0]:.1f} ms > {tpot_slo_ms} ms"
    return dataclasses.replace(
        est,
        reason=reason,
        max_batch=int(batch),
        tpot_ms_batch1=pts[0].tpot_p50_ms,
        tpot_ms=_interp(b, cs, tpot95),
        max_output_tokens_per_s=tput,
        requests_per_s=rps,
        ttft_ms=_interp(at_load, cs, [p.ttft_p95_ms for p in pts]),
        ttft_ms_unloaded=pts[0].ttft_p50_ms,
        source="measured",
    )
