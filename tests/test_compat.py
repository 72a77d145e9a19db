"""orchestrator/compat.py: what vLLM can launch, from orchestrator/data/vllm_compat.yaml, and how validate and the
candidate builder apply it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import compat
from orchestrator.catalog.gpus import all_gpus, get_gpu
from orchestrator.model_registry import all_models, lookup_model
from orchestrator.perf.quant import compute_tflops, is_weight_only

GPUS = [g for g in all_gpus() if g.vendor in ("nvidia", "amd")]  # accelerators with their own backend: below
NOT_GPUS = [g for g in all_gpus() if g.vendor not in ("nvidia", "amd", "cpu")]


def test_every_gpu_has_a_compute_capability() -> None:
    assert all(g.compute_capability for g in GPUS)
    assert get_gpu("T4").compute_capability == 7.5 and get_gpu("A100").compute_capability == 8.0
    assert get_gpu("L4").compute_capability == 8.9 and get_gpu("H100").compute_capability == 9.0
    assert get_gpu("CPU").compute_capability is None


@pytest.mark.parametrize("gpu", [g.name for g in GPUS])
def test_dtype_rule_bf16_needs_8_0(gpu: str) -> None:
    g = get_gpu(gpu)
    ok = g.vendor == "amd" or g.compute_capability >= 8.0
    assert compat.planned_quantization(g, "bf16") == ("bf16" if ok else "fp16")
    assert compat.planned_quantization(g, "fp16") == "fp16"


@pytest.mark.parametrize("gpu", [g.name for g in GPUS])
def test_fp8_mode_agrees_with_how_it_is_priced(gpu: str) -> None:
    """W8A8 from 8.9 (and MI300); weight-only on Ampere, priced with no FP8 FLOPs; not offered below 8.0."""
    g = get_gpu(gpu)
    mode = compat.fp8_mode(g)
    cc = g.compute_capability
    if g.vendor == "amd":
        assert mode == "w8a8"
    elif cc >= 8.9:
        assert mode == "w8a8"
    elif cc >= 8.0:
        assert mode == "weight_only"
    else:
        assert mode is None and compat.hardware_reason(g, "fp8")
    if mode == "w8a8":
        assert compute_tflops(g, "fp8") == g.fp8_tflops and not is_weight_only(g, "fp8")
    elif mode == "weight_only":
        assert compute_tflops(g, "fp8") == g.bf16_tflops and is_weight_only(g, "fp8")


def test_hardware_rules() -> None:
    reason = compat.hardware_reason
    assert reason(get_gpu("T4"), "int8") is None  # W8A8 INT8 from Turing
    assert reason(get_gpu("T4"), "int4") and "8" in reason(get_gpu("T4"), "int4")  # Marlin from Ampere
    assert reason(get_gpu("A10G"), "int4") is None
    assert reason(get_gpu("B200"), "int8")  # no CUTLASS int8 on SM100 in vLLM 0.32
    assert reason(get_gpu("MI300X"), "fp8") is None
    assert reason(get_gpu("MI300X"), "int8") and reason(get_gpu("MI300X"), "int4")
    assert reason(get_gpu("CPU"), "fp8")


def test_checkpoint_rule() -> None:
    llama = lookup_model("llama-3.1-70b")
    assert compat.checkpoint(llama, "int4").hf_id == "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    assert compat.checkpoint(llama, "int8").hf_id == "RedHatAI/Meta-Llama-3.1-70B-Instruct-quantized.w8a8"
    assert compat.checkpoint_reason(llama, "int8") is None
    assert compat.checkpoint_reason(llama, "fp8") is None  # fp8 is quantized in flight without one
    gemma = lookup_model("gemma-2-9b")
    msg = compat.checkpoint_reason(gemma, "int4")
    assert msg and "in flight" in msg and "gemma-2-9b" in msg
    deepseek = lookup_model("deepseek-v3")  # FP8 weights of its own: the checkpoint is the model
    assert compat.checkpoint(deepseek, "fp8").hf_id == deepseek.hf_id


def test_registry_checkpoints_are_well_formed() -> None:
    from orchestrator.model_registry import CHECKPOINT_FORMATS

    seen: set[str] = set()
    for m in all_models():
        for c in m.checkpoints:
            assert CHECKPOINT_FORMATS[c.format] == c.quantization and c.source and "/" in c.hf_id
            assert c.hf_id not in seen
            seen.add(c.hf_id)
            assert compat.checkpoint_format(c.hf_id, c.quantization) == c.format
            if c.quantization == "fp8":  # block-FP8 checkpoints would run weight-only on Ada: none registered
                assert not c.hf_id.startswith("Qwen/Qwen3")
    assert len(seen) >= 20


@pytest.mark.parametrize(("model", "tp", "ok"), [
    ("llama-3.1-8b", 8, True), ("qwen2.5-7b", 8, False),  # 28 heads
    ("phi-4", 4, False), ("phi-4", 2, True),  # 40 heads but 10 KV heads: 4 neither divides nor is a multiple of 10
    ("qwen3-30b-a3b", 8, True),  # 4 KV heads replicated twice
    ("deepseek-v3", 8, True),  # MLA: one latent
])
def test_parallel_rule(model: str, tp: int, ok: bool) -> None:
    assert (compat.parallel_reason(lookup_model(model), tp) is None) == ok


def test_pipeline_only_across_nodes() -> None:
    llama = lookup_model("llama-3.1-405b")
    assert compat.parallel_reason(llama, 8, 2, gpus_per_replica=16, gpus_per_instance=8) is None
    assert compat.parallel_reason(llama, 4, 2, gpus_per_replica=8, gpus_per_instance=8)


def test_context_rule() -> None:
    llama = lookup_model("llama-3.1-8b")
    assert compat.context_reason(llama, 8192, 10_000, 1200) is None
    assert "KV cache" in compat.context_reason(llama, 8192, 4_000, 1200)
    assert "context" in compat.context_reason(llama, 200_000, 10**7, 1200)


def test_images_by_vendor() -> None:
    assert compat.image_for("MI300X").startswith("vllm/vllm-openai-rocm:")
    assert compat.image_for("H100").startswith("vllm/vllm-openai:")
    assert compat.image_for("MI300X").split(":")[1] == compat.image_for("H100").split(":")[1]  # one release


def _validate(tmp_path: Path, body: str) -> list[str]:
    from orchestrator.errors import SpecError
    from orchestrator.spec.loader import load_spec

    p = tmp_path / "deploy.yaml"
    p.write_text("version: 1\nproject: demo\ndeployments:\n" + body, encoding="utf-8")
    try:
        load_spec(p)
    except SpecError as exc:
        return [str(x).removeprefix(f"{p}:") for x in exc.problems]
    return []


DEP = """\
  - name: {name}
    model: {model}
    quantization: {quant}
    traffic: {{requests_per_second: 2, input_tokens: 1000, output_tokens: 200}}
    slo: {{ttft_p95_ms: 3000, tpot_p95_ms: 100}}
"""


def test_validate_locates_a_quantization_without_checkpoint(tmp_path: Path) -> None:
    found = _validate(tmp_path, DEP.format(name="chat", model="mistral-7b", quant="[fp8, int8]"))
    assert found == [
        "6:25: deployments[0].quantization[1]: int8 needs a pre-quantized W8A8 INT8 (compressed-tensors) checkpoint and "
        "vLLM cannot quantize to int8 in flight; the registry has none for mistral-7b (its published checkpoints: fp8 "
        "RedHatAI/Mistral-7B-Instruct-v0.3-FP8)"]
    # llama-3.1-70b has a W8A8 checkpoint: int8 validates (and is served from it)
    assert _validate(tmp_path, DEP.format(name="claims", model="llama-3.1-70b", quant="[int8]")) == []
    (one,) = _validate(tmp_path, DEP.format(name="chat", model="gemma-2-9b", quant="int4"))
    assert one.startswith("6:19: deployments[0].quantization[0]: int4 needs a pre-quantized AWQ / GPTQ")


@pytest.mark.parametrize("gpu", [g.name for g in NOT_GPUS])
def test_tpu_and_neuron_serve_bf16_only_and_only_the_chips_their_backend_runs(gpu: str) -> None:
    g = get_gpu(gpu)
    served = g.family in compat.backend(g)["families"]
    assert compat.opt_in(g) and compat.single_node(g)
    assert (compat.hardware_reason(g, "bf16") is None) == served
    for q in ("fp16", "fp8", "int8", "int4"):  # no GPU kernels (Marlin, FP8 W8A8, compressed-tensors) there
        assert compat.hardware_reason(g, q), (g.name, q)
    assert compat.planned_quantization(g, "bf16") == "bf16"  # never silently fp16
    assert compat.image_for(g.name) != compat.image_for("H100")


def test_inferentia2_is_listed_but_not_served() -> None:
    reason = compat.hardware_reason(get_gpu("Inferentia2"), "bf16")
    assert reason and "neuron" in reason and "trainium2" in reason
