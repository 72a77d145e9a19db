"""An AMD GPU replica: the ROCm image, the kernel driver's devices for docker, amd.com/gpu on Kubernetes."""

from __future__ import annotations

from containers.render.docker import HostOptions, docker_run_argv
from containers.render.kubernetes import render_kubernetes
from containers.vllm import build_vllm_container
from orchestrator.plan import DeploymentPlan, Predicted, ReplicaGroup


def _spec():  # type: ignore[no-untyped-def]
    group = ReplicaGroup(provider="azure", region="azure:eastus", instance_type="Standard_ND96isr_MI300X_v5",
                         gpu="MI300X", gpus_per_replica=2, tensor_parallel=2, quantization="fp8", market="on_demand",
                         count=1, usd_per_hour=1.0)
    dep = DeploymentPlan(name="chat", model="llama-3.1-70b", hf_id="meta-llama/Llama-3.1-70B-Instruct",
                         max_model_len=8192, replicas=[group],
                         predicted=Predicted(ttft_p95_ms=1, tpot_p95_ms=1, capacity_rps=1, usd_per_million_tokens=1),
                         usd_per_hour=1.0, egress_usd_per_month=0.0)
    return build_vllm_container(project="p", deployment=dep, group=group, replica="r-0")


def test_amd_replica_renders_for_rocm() -> None:
    from test_containers_kubernetes import validate

    spec = _spec()
    assert spec.gpu_vendor == "amd" and "rocm" in spec.image
    argv = docker_run_argv(spec, host=HostOptions(gpu_devices=[0, 1]))
    assert "--device=/dev/kfd" in argv and "--device=/dev/dri" in argv and "--gpus" not in argv
    assert "HIP_VISIBLE_DEVICES=0,1" in argv
    docs = render_kubernetes(spec, namespace="orch")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits.get("amd.com/gpu") == "2" and "nvidia.com/gpu" not in limits
    for d in docs:
        validate(d)
