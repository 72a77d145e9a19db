"""The model registry (orchestrator/data/models.yaml), KV cache per attention type, and hf_config.py on
current architectures (tests/fixtures/hf: configs written from memory of the published files, see _comment)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from orchestrator.catalog.gpus import get_gpu
from orchestrator.hf_config import load_hf_config
from orchestrator.model_registry import ModelArch, all_models, lookup_model
from orchestrator.perf import Workload, clear_caches, estimate

FIXTURES = Path(__file__).parent / "fixtures" / "hf"


@pytest.fixture(autouse=True)
def _no_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_PROFILE_DIR", str(tmp_path))
    clear_caches()


def model(name: str) -> ModelArch:
    m = lookup_model(name)
    assert m is not None, name
    return m


def test_registry_has_current_models_with_sources():
    models = all_models()
    assert len(models) >= 30
    for name in ["llama-3.1-8b", "llama-3.3-70b", "llama-3.1-405b", "llama-4-scout", "llama-4-maverick",
                 "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "qwen3-8b", "qwen3-14b", "qwen3-32b",
                 "qwen3-30b-a3b", "qwen3-235b-a22b", "gpt-oss-20b", "gpt-oss-120b", "deepseek-v3", "deepseek-r1",
                 "mistral-small-3.1-24b", "mistral-large-2", "mixtral-8x7b", "mixtral-8x22b", "gemma-3-4b",
                 "gemma-3-12b", "gemma-3-27b", "phi-4", "phi-3-mini", "phi-3.5-mini"]:
        model(name)
    for m in models:
        assert re.search(r"https://huggingface\.co/\S+/config\.json", m.source), m.name
        assert re.search(r"\b20\d\d-\d\d\b", m.source), m.name  # a date
        assert m.family, m.name
        assert m.hf_id and lookup_model(m.hf_id) is m
        assert 0 < m.active_params_b <= m.params_b, m.name
        assert m.heads % m.kv_heads == 0 or m.is_mla, m.name
        if m.is_moe:
            assert m.experts and m.experts_per_token and m.experts_per_token < m.experts
            assert m.active_params_b < m.params_b / 2, m.name


def test_aliases_are_unique_and_case_insensitive():
    assert model("Qwen/Qwen3-30B-A3B") is model("qwen3-30b-a3b")
    assert model("OPENAI/GPT-OSS-120B") is model("gpt-oss-120b")
    assert model("meta-llama/Llama-4-Maverick-17B-128E-Instruct") is model("llama-4-maverick")
    assert model("gemma-3-27b-instruct") is model("gemma-3-27b")


def test_gqa_kv_per_token():
    m = model("llama-3.1-8b")
    assert m.attention == "GQA"
    assert m.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2 == 131_072
    assert m.kv_bytes(8192) == 131_072 * 8192
    assert m.kv_fraction(100_000) == 1.0


def test_mla_kv_is_the_latent_and_not_split_by_tp():
    m = model("deepseek-r1")
    assert m.attention == "MLA" and not m.kv_split_by_tp
    assert m.kv_bytes_per_token() == 61 * (512 + 64) * 2  # no factor 2 for K and V, not per head
    assert m.kv_bytes_per_token(1.0) == 61 * (512 + 64)  # fp8 KV
    e8 = estimate(m, get_gpu("H200"), 8, "fp8", Workload(1000, 1000))
    e16 = estimate(m, get_gpu("H200"), 16, "fp8", Workload(1000, 1000))
    for e, n in ((e8, 8), (e16, 16)):
        free_per_gpu = (e.memory_available_gb - e.memory_needed_gb) / n * 1e9
        assert e.kv_capacity_tokens == pytest.approx(free_per_gpu / m.kv_bytes_per_token(), rel=1e-3)


def test_sliding_window_kv_by_sequence_length():
    m = model("gemma-3-27b")
    assert (m.sliding_window, m.sliding_layers, m.global_layers) == (1024, 52, 10)
    per_layer = 2 * 16 * 128 * 2
    assert m.kv_bytes_per_layer_token() == per_layer
    assert m.kv_bytes(1000) == m.kv_bytes_per_token() * 1000  # within the window every layer holds every token
    lengths = np.array([1, 1024, 1025, 8192, 131072])
    want = per_layer * (10 * lengths + 52 * np.minimum(lengths, 1024))
    assert np.array_equal(m.kv_bytes(lengths), want)  # vectorised
    assert m.kv_fraction(8192) == pytest.approx(want[3] / (8192 * m.kv_bytes_per_token()))
    oss = model("gpt-oss-120b")
    assert oss.kv_bytes(8192) == 2 * 8 * 64 * 2 * (18 * 8192 + 18 * 128)


def test_sliding_window_raises_capacity_beyond_the_window_only():
    m, g = model("gemma-3-27b"), get_gpu("H100")
    all_global = dataclasses.replace(m, name="gemma-3-27b-all-global", sliding_window=None, sliding_layers=0)
    short = [estimate(x, g, 1, "bf16", Workload(500, 200)) for x in (m, all_global)]
    assert short[0].kv_capacity_tokens == short[1].kv_capacity_tokens  # 700 tokens: the window does not bind
    assert short[0].max_batch == short[1].max_batch
    long = [estimate(x, g, 1, "bf16", Workload(16000, 1000)) for x in (m, all_global)]
    assert long[0].max_batch > 3 * long[1].max_batch
    assert long[0].tpot_ms_batch1 < long[1].tpot_ms_batch1  # less KV to read per step


def test_max_model_len_fit_uses_the_windowed_kv():
    # Gemma 3 27B on one H100 at bf16 leaves ~19 GB for KV: a full 131,072-token context takes 11.2 GB with
    # 1,024-token windows on 52 of the 62 layers, but would take 66.6 GB if every layer held every token
    m, g = model("gemma-3-27b"), get_gpu("H100")
    all_global = dataclasses.replace(m, name="gemma-3-27b-all-global", sliding_window=None, sliding_layers=0)
    e = estimate(m, g, 1, "bf16", Workload(1000, 200, max_model_len=131072))
    free = (e.memory_available_gb - e.memory_needed_gb) * 1e9
    assert all_global.kv_bytes(131072) > free >= m.kv_bytes(131072)
    assert e.fits
    no = estimate(all_global, g, 1, "bf16", Workload(1000, 200, max_model_len=131072))
    assert not no.fits and "one request needs 131072" in no.reason


def test_native_weight_formats():
    assert model("gpt-oss-120b").weight_format == "mxfp4"
    assert model("gpt-oss-120b").native_weights_gb == pytest.approx(65.2, rel=0.01)
    assert model("gpt-oss-20b").native_weights_gb == pytest.approx(13.75, rel=0.01)
    assert model("deepseek-v3").weight_format == "fp8"
    assert model("deepseek-v3").native_weights_gb == pytest.approx(671)
    assert model("llama-3.1-8b").native_weights_gb == pytest.approx(16.06)


@pytest.mark.parametrize("name", ["gpt-oss-120b", "gemma-3-27b", "llama-4-maverick", "qwen3-30b-a3b"])
def test_hf_config_matches_the_registry(name: str):
    arch = load_hf_config(FIXTURES / f"{name}.json")
    ref = model(name)
    assert arch.params_b == pytest.approx(ref.params_b, rel=0.02)
    assert arch.active_params_b == pytest.approx(ref.active_params_b, rel=0.02)
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim, arch.max_context) == (
        ref.layers, ref.hidden, ref.heads, ref.kv_heads, ref.head_dim, ref.max_context)
    assert (arch.experts, arch.experts_per_token) == (ref.experts, ref.experts_per_token)
    assert (arch.sliding_window, arch.sliding_layers) == (ref.sliding_window, ref.sliding_layers)
    assert arch.kv_bytes(8192) == ref.kv_bytes(8192)
    assert arch.attention == ref.attention
    assert (arch.family, arch.weight_format) == (ref.family, ref.weight_format)


def test_hf_config_mla_sets_the_latent_fields():
    arch = load_hf_config(FIXTURES / "deepseek-v3.json")
    assert (arch.kv_lora_rank, arch.qk_rope_head_dim, arch.attention) == (512, 64, "MLA")
    assert arch.kv_bytes(8192) == 61 * 576 * 2 * 8192


def test_hf_config_gemma3_text_defaults_and_pattern(tmp_path: Path):
    data = json.loads((FIXTURES / "gemma-3-27b.json").read_text())
    assert "vocab_size" not in data["text_config"]  # filled from Gemma3TextConfig's defaults
    types = ["full_attention" if (i + 1) % 3 == 0 else "sliding_attention" for i in range(62)]
    data["text_config"]["layer_types"] = types
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert load_hf_config(path).sliding_layers == 62 - 20  # layer_types wins over the pattern
    data["text_config"].pop("layer_types")
    data["text_config"]["sliding_window_pattern"] = 2
    path.write_text(json.dumps(data))
    assert load_hf_config(path).sliding_layers == 31


def test_hf_config_window_switches(tmp_path: Path):
    qwen = load_hf_config(FIXTURES / "qwen2.5-7b.json")  # use_sliding_window false
    assert (qwen.sliding_window, qwen.sliding_layers) == (None, 0)
    phi = load_hf_config(FIXTURES / "phi-3-mini.json")  # one window, every layer
    assert (phi.sliding_window, phi.sliding_layers) == (2047, 32)
    gemma2 = load_hf_config(FIXTURES / "gemma-2-9b.json")  # alternating
    assert (gemma2.sliding_window, gemma2.sliding_layers) == (4096, 21)
    data = json.loads((FIXTURES / "phi-3-mini.json").read_text())
    data["sliding_window"] = 262144  # Phi-3.5-mini: wider than the context, never binds
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert load_hf_config(path).sliding_layers == 0


def test_hf_config_llama4_moe_layers_list(tmp_path: Path):
    data = json.loads((FIXTURES / "llama-4-maverick.json").read_text())
    data["text_config"]["moe_layers"] = list(range(1, 48, 2))
    del data["text_config"]["interleave_moe_layer_step"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert load_hf_config(path).params_b == pytest.approx(load_hf_config(FIXTURES / "llama-4-maverick.json").params_b)
