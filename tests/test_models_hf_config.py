"""load_hf_config against published config.json files (tests/fixtures/hf) and the model registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.hf_config import load_hf_config
from orchestrator.model_registry import lookup_model, resolve_model

FIXTURES = Path(__file__).parent / "fixtures" / "hf"


@pytest.mark.parametrize(
    "name", ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "qwen2.5-7b", "gemma-2-9b", "phi-3-mini"]
)
def test_params_match_the_registry_within_2_percent(name: str) -> None:
    arch = load_hf_config(FIXTURES / f"{name}.json")
    ref = lookup_model(name)
    assert ref is not None
    assert arch.params_b == pytest.approx(ref.params_b, rel=0.02)
    assert arch.active_params_b == pytest.approx(ref.active_params_b, rel=0.02)
    assert (arch.layers, arch.hidden, arch.heads, arch.max_context) == (ref.layers, ref.hidden, ref.heads, ref.max_context)
    assert arch.kv_bytes_per_token() == ref.kv_bytes_per_token()
    assert arch.is_moe == ref.is_moe


def test_mixtral_moe_fields() -> None:
    arch = load_hf_config(FIXTURES / "mixtral-8x7b.json")
    assert (arch.experts, arch.experts_per_token) == (8, 2)
    assert arch.active_params_b < arch.params_b / 3


def test_deepseek_mla_kv_cache() -> None:
    arch = load_hf_config(FIXTURES / "deepseek-v3.json")
    assert arch.kv_bytes_per_token() == (512 + 64) * 61 * 2
    assert arch.kv_bytes_per_token(1.0) == (512 + 64) * 61
    assert (arch.experts, arch.experts_per_token) == (256, 8)


def test_tiny_llama_counts_by_hand() -> None:
    arch = load_hf_config(FIXTURES / "tiny-llama.json")
    h, i, v, layers, d = 128, 256, 32000, 2, 32
    attn = h * (4 * d) + 2 * h * (2 * d) + (4 * d) * h
    per_layer = attn + 3 * h * i + 2 * h
    assert arch.params_b * 1e9 == pytest.approx(layers * per_layer + v * h + h)  # tied embeddings
    assert arch.kv_bytes_per_token() == 2 * 2 * 2 * 32 * 2
    assert (arch.head_dim, arch.kv_heads, arch.max_context) == (32, 2, 2048)


def test_directory_name_and_path_for_vllm(tmp_path: Path) -> None:
    model_dir = tmp_path / "My-Tiny-Llama"
    model_dir.mkdir()
    shutil.copy(FIXTURES / "tiny-llama.json", model_dir / "config.json")
    arch = load_hf_config(model_dir / "config.json")
    assert arch.name == "my-tiny-llama"
    assert arch.hf_id == str(model_dir.resolve())
    assert load_hf_config(model_dir) == arch  # a directory works too
    assert resolve_model("My-Tiny-Llama/config.json", base_dir=tmp_path) == arch


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_hf_config(tmp_path / "nope" / "config.json")


def test_bad_json(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_hf_config(bad)


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"])
def test_missing_field_is_named(tmp_path: Path, field: str) -> None:
    data = json.loads((FIXTURES / "llama-3.1-8b.json").read_text())
    del data[field]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"missing field '{field}'"):
        load_hf_config(path)


def test_missing_moe_field_is_named(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "deepseek-v3.json").read_text())
    del data["moe_intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="moe_intermediate_size"):
        load_hf_config(path)


def test_non_numeric_field(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "llama-3.1-8b.json").read_text())
    data["hidden_size"] = "4096"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="hidden_size"):
        load_hf_config(path)
