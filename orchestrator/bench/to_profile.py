"""Bench results -> a measured performance Profile (orchestrator.perf.profiles) the perf model uses."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from orchestrator.bench.loadgen import LevelResult, LoadSettings


def to_profile(
    results: list[LevelResult],
    load: LoadSettings,
    *,
    model: str,
    gpu: str,
    gpus: int,
    quantization: str,
    endpoint: str,
    measured_at: datetime | None = None,
):  # -> orchestrator.perf.profiles.Profile
    """A Profile with one point per concurrency level that served at least one request (measured under ``load``)."""
    from orchestrator.perf.profiles import Profile, ProfilePoint

    points = [
        ProfilePoint(
            concurrency=r.concurrency,
            input_tokens=round(r.input_tokens_mean) or load.input_tokens,
            output_tokens=load.output_tokens,
            output_tokens_per_s=r.output_tokens_per_s,
            requests_per_s=r.requests_per_s,
            ttft_p50_ms=r.ttft_p50_ms,
            ttft_p95_ms=r.ttft_p95_ms,
            tpot_p50_ms=r.tpot_p50_ms if r.tpot_p50_ms is not None else 0.0,
            tpot_p95_ms=r.tpot_p95_ms if r.tpot_p95_ms is not None else 0.0,
        )
        for r in results
        if r.requests > 0
    ]
    return Profile(
        model=model,
        gpu=gpu,
        gpus=gpus,
        quantization=quantization,
        measured_at=measured_at or datetime.now(timezone.utc),
        endpoint=endpoint,
        points=points,
    )


def write_profile(profile, out_dir: Path | None) -> Path:  # noqa: ANN001 - perf's Profile
    """Save through the perf package, so `orch estimate` finds it."""
    from orchestrator.perf.profiles import save_profile

    return save_profile(profile, out_dir)
