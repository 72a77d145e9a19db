"""Measured profiles override the performance model's figures."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestrator.catalog.gpus import get_gpu
from orchestrator.errors import UserError
from orchestrator.model_registry import lookup_model
from orchestrator.perf import (
    Profile,
    ProfilePoint,
    Workload,
    clear_caches,
    estimate,
    estimate_batch,
    load_profiles,
    save_profile,
)


def _profile(**over) -> Profile:
    pts = [
        ProfilePoint(concurrency=c, input_tokens=1000, output_tokens=200, output_tokens_per_s=tput,
                     requests_per_s=tput / 200, ttft_p50_ms=ttft, ttft_p95_ms=ttft * 2, tpot_p50_ms=tpot * 0.9,
                     tpot_p95_ms=tpot)
        for c, tput, ttft, tpot in [(1, 90, 40, 11), (8, 640, 60, 12.5), (32, 1900, 120, 16.8), (64, 2600, 300, 24.6)]
    ]
    data = dict(model="meta-llama/Llama-3.1-8B-Instruct", gpu="nvidia-l4", gpus=1, quantization="bf16",
                measured_at=datetime(2026, 11, 20, tzinfo=timezone.utc),
                endpoint="http://user:secret@10.0.0.5:8000", points=pts)
    data.update(over)
    return Profile(**data)


@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_PROFILE_DIR", str(tmp_path))
    clear_caches()
    yield tmp_path
    clear_caches()


def test_save_and_load_roundtrip(profile_dir):
    path = save_profile(_profile(), profile_dir)
    assert path.exists() and path.parent == profile_dir
    assert "secret" not in path.read_text()  # credentials in the endpoint never reach the file
    (loaded,) = load_profiles()
    assert loaded.key() == ("llama-3.1-8b", "L4", 1, "bf16")
    assert loaded.points[2].tpot_p95_ms == 16.8
    assert load_profiles([profile_dir, profile_dir / "missing"])[0].key() == loaded.key()


def test_matching_profile_overrides_model(profile_dir):
    m, g = lookup_model("llama-3.1-8b"), get_gpu("L4")
    model_only = estimate(m, g, 1, "bf16", Workload(1000, 200), tpot_slo_ms=20)
    assert model_only.source == "model"
    save_profile(_profile(), profile_dir)
    est = estimate(m, g, 1, "bf16", Workload(1000, 200), tpot_slo_ms=20)
    assert est.source == "measured"
    # tpot p95 20 ms lies between c=32 (16.8) and c=64 (24.6): interpolated concurrency 45
    assert est.max_batch == 45
    assert 1900 < est.max_output_tokens_per_s < 2600
    assert est.tpot_ms == pytest.approx(20.0, abs=0.2)
    assert est.tpot_ms_batch1 == pytest.approx(11 * 0.9)
    (batched,) = estimate_batch(m, [(g, 1, "bf16")], 1000, 200, tpot_slo_ms=20)
    assert batched.source == "measured" and batched.max_batch == 45


def test_profile_used_only_for_its_configuration_and_shape(profile_dir):
    save_profile(_profile(), profile_dir)
    m = lookup_model("llama-3.1-8b")
    assert estimate(m, get_gpu("L4"), 2, "bf16", Workload(1000, 200)).source == "model"
    assert estimate(m, get_gpu("L4"), 1, "fp8", Workload(1000, 200)).source == "model"
    assert estimate(m, get_gpu("L4"), 1, "bf16", Workload(8000, 200)).source == "model"  # shape too far from 1000/200


def test_unreachable_slo_from_profile(profile_dir):
    save_profile(_profile(), profile_dir)
    est = estimate(lookup_model("llama-3.1-8b"), get_gpu("L4"), 1, "bf16", Workload(1000, 200), tpot_slo_ms=5)
    assert est.source == "measured" and est.max_batch == 0 and est.requests_per_s == 0
    assert "measured p95" in est.reason


def test_invalid_profile_file_is_a_user_error(profile_dir):
    (profile_dir / "broken.yaml").write_text("model: x\npoints: []\n")
    with pytest.raises(UserError, match="broken.yaml"):
        load_profiles()
