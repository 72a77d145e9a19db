"""vLLM args, labels, probes and secrets from plan entries (containers.vllm)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from containers.names import dns_label
from containers.vllm import DEFAULT_IMAGE, VllmLaunch, build_vllm_container, quantization_args
from orchestrator.errors import UserError
from orchestrator.plan import DeploymentPlan, Predicted, ReplicaGroup
from providers.base import LABEL_DEPLOYMENT, LABEL_PLAN, LABEL_PROJECT, LABEL_REPLICA

SECRET = "hf_SECRETVALUE123"


def plan(quant: str = "bf16", tp: int = 1, pp: int = 1, gpus: int = 1, nodes: int = 1, kv: str = "auto",
         hf_id: str = "meta-llama/Llama-3.1-8B-Instruct", market: str = "on_demand", max_len: int = 8192,
         model: str = "llama-3.1-8b", gpu: str = "H100"):
    g = ReplicaGroup(provider="aws", region="aws:us-east-1", instance_type="p5.48xlarge", gpu=gpu,
                     gpus_per_replica=gpus, instances_per_replica=nodes, tensor_parallel=tp, pipeline_parallel=pp,
                     quantization=quant, market=market, count=2, usd_per_hour=98.3)
    d = DeploymentPlan(name="chat", model=model, hf_id=hf_id, max_model_len=max_len, kv_cache_dtype=kv,
                       replicas=[g], predicted=Predicted(ttft_p95_ms=1, tpot_p95_ms=1, capacity_rps=1, usd_per_million_tokens=1),
                       usd_per_hour=1, egress_usd_per_month=0)
    return d, g


def build(plan_id: str | None = None, **kw):  # type: ignore[no-untyped-def]
    launch = {k: kw.pop(k) for k in list(kw) if k in ("image", "port", "hf_token", "gpu_memory_utilization", "extra_args", "load_format")}
    d, g = plan(**kw)
    return build_vllm_container(project="acme", deployment=d, group=g, replica="chat-0", launch=VllmLaunch(**launch),
                                plan_id=plan_id)


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_basic_args_from_plan() -> None:
    s = build(tp=4, gpus=4, max_len=32768)
    assert s.image == DEFAULT_IMAGE and ":" in s.image and not s.image.endswith(":latest")
    assert s.args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert flag(s.args, "--served-model-name") == "chat"
    assert flag(s.args, "--tensor-parallel-size") == "4"
    assert "--pipeline-parallel-size" not in s.args
    assert flag(s.args, "--max-model-len") == "32768"
    assert flag(s.args, "--gpu-memory-utilization") == "0.9"
    assert flag(s.args, "--dtype") == "bfloat16"
    assert flag(s.args, "--host") == "0.0.0.0" and flag(s.args, "--port") == "8000"
    assert "--quantization" not in s.args and "--kv-cache-dtype" not in s.args
    assert s.gpus == 4 and s.gpu_type == "H100" and s.shm_gb >= 8
    assert s.ports == {"http": 8000} and s.metrics_path == "/metrics"


def test_fp8_and_kv_fp8() -> None:
    # a model with no published FP8 checkpoint: quantized in flight
    s = build(quant="fp8", kv="fp8", model="gemma-2-9b", hf_id="google/gemma-2-9b-it")
    assert s.args[0] == "google/gemma-2-9b-it"
    assert flag(s.args, "--quantization") == "fp8" and flag(s.args, "--dtype") == "bfloat16"
    assert flag(s.args, "--kv-cache-dtype") == "fp8"


def test_fp8_serves_the_published_checkpoint() -> None:
    # premise changed: llama-3.1-8b at fp8 used to be quantized in flight; the registry's FP8 checkpoint is served now,
    # and vLLM reads its quantization_config (no --quantization flag, which could contradict it)
    s = build(quant="fp8")
    assert s.args[0] == "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8"
    assert "--quantization" not in s.args and flag(s.args, "--dtype") == "bfloat16"


@pytest.mark.parametrize(("quant", "served", "method"), [
    ("int4", "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "awq_marlin"),
    ("int8", "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "compressed-tensors"),
    ("bf16", "meta-llama/Llama-3.1-8B-Instruct", None),
])
def test_each_group_serves_the_checkpoint_of_its_quantization(quant: str, served: str, method: str | None) -> None:
    s = build(quant=quant)
    assert s.args[0] == served and flag(s.args, "--quantization") == method


def test_t4_never_gets_bfloat16() -> None:
    for quant in ("bf16", "fp16", "int8"):
        s = build(quant=quant, gpu="T4")
        assert flag(s.args, "--dtype") == "float16", quant
    with pytest.raises(UserError, match="compute capability"):
        build(quant="fp8", gpu="T4")


def test_amd_gets_the_rocm_image_and_only_its_methods() -> None:
    from containers.vllm import ROCM_IMAGE

    s = build(quant="fp8", gpu="MI300X")
    assert s.image == ROCM_IMAGE and ROCM_IMAGE.startswith("vllm/vllm-openai-rocm:")
    assert build().image == DEFAULT_IMAGE
    with pytest.raises(UserError, match="MI300X"):
        build(quant="int4", gpu="MI300X")


def test_pipeline_parallel_multinode() -> None:
    s = build(tp=8, pp=2, gpus=16, nodes=2)
    assert flag(s.args, "--pipeline-parallel-size") == "2"
    assert flag(s.args, "--distributed-executor-backend") == "ray"
    assert s.gpus == 8  # per node container
    assert s.labels["orch-nodes"] == "2"


@pytest.mark.parametrize(
    ("quant", "hf_id", "expected"),
    [
        ("int4", "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "awq_marlin"),
        ("int4", "TheBloke/Llama-2-7B-GPTQ", "gptq_marlin"),
        ("int4", "RedHatAI/Llama-3.3-70B-Instruct-quantized.w4a16", "compressed-tensors"),
        ("int8", "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "compressed-tensors"),
    ],
)
def test_integer_quantization_flags(quant: str, hf_id: str, expected: str) -> None:
    assert flag(quantization_args(quant, hf_id), "--quantization") == expected


def test_int4_is_never_launched_in_flight() -> None:
    # premise changed: int4 of a bf16 checkpoint used to launch as in-flight bitsandbytes (slower than the Marlin speed
    # it was priced at, and not a quantization method of vLLM 0.32 at all); now it is refused, naming what would do
    with pytest.raises(UserError, match="AWQ"):
        quantization_args("int4", "meta-llama/Llama-3.1-8B-Instruct")


def test_int8_needs_a_w8a8_checkpoint() -> None:
    # premise changed: llama-3.1-8b has a registered W8A8 checkpoint now; mistral-7b has none
    with pytest.raises(UserError, match="W8A8"):
        build(quant="int8", model="mistral-7b", hf_id="mistralai/Mistral-7B-Instruct-v0.3")


def test_probes_labels_spot() -> None:
    s = build(market="spot", plan_id="plan-42")
    assert s.spot is True
    assert s.labels[LABEL_PROJECT] == "acme" and s.labels[LABEL_DEPLOYMENT] == "chat"
    assert s.labels[LABEL_REPLICA] == "chat-0" and s.labels[LABEL_PLAN] == "plan-42"
    assert s.labels["orch-gpu"] == "h100" and s.labels["orch-market"] == "spot"
    for probe in (s.startup, s.readiness, s.liveness):
        assert probe is not None and probe.path == "/health" and probe.port == 8000
    assert s.startup.period_s * s.startup.failure_threshold >= 15 * 60  # model load takes minutes
    assert any(v.kind == "cache" and v.mount_path == s.env["HF_HOME"] for v in s.volumes)


def test_secret_is_a_reference_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    s = build()
    assert s.secret_env["HF_TOKEN"].name == "hf-token"
    assert "HF_TOKEN" not in s.env
    assert SECRET not in json.dumps(asdict(s))
    assert build(hf_token=None).secret_env == {}


def test_local_config_path_serves_its_directory_with_dummy_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text("{}")
    s = build(hf_id=str(tmp_path / "config.json"))
    assert s.args[0] == str(tmp_path)
    assert flag(s.args, "--load-format") == "dummy"
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert "--load-format" not in build(hf_id=str(tmp_path / "config.json")).args


def test_names_are_dns_labels() -> None:
    name = dns_label("Acme_Support" + "-x" * 60)
    assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()
    assert dns_label("a" * 100) != dns_label("a" * 99 + "b")


def test_resource_names_name_project_and_deployment_once_and_agree_across_providers() -> None:
    from containers.names import replica_name
    from providers.base import Placement

    rid = "quickstart-support-chat-afd3dd-0"  # apply's replica ids: <project>-<deployment>-<group>-<n>
    p = Placement("quickstart", "support-chat", "plan1", rid, "gcp:us-central1", "a3-highgpu-1g", "H100", 1)
    assert p.vm_name() == "orch-quickstart-support-chat-afd3dd-0"
    assert replica_name("quickstart", "support-chat", rid) == rid
    assert replica_name("acme", "chat", "chat-g1-0") == "acme-chat-g1-0"
    assert replica_name("acme", "chat", "g1-0") == "acme-chat-g1-0"
    assert dns_label("9lives") == "x-9lives"  # GCP/Azure names must start with a letter
    long = Placement("p" * 40, "d" * 40, "plan", "r" * 40, "azure:eastus", "x", "H100", 1)
    assert len(long.vm_name()) <= 63 and long.vm_name() != Placement(
        "p" * 40, "d" * 40, "plan", "r" * 39 + "s", "azure:eastus", "x", "H100", 1).vm_name()
