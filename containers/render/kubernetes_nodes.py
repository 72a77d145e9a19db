"""Where a pod of a ContainerSpec may run on Kubernetes: the nodeSelector and tolerations for its GPU type and
market under one of three node-labelling conventions (/work/shared/facts/vllm.md, "Kubernetes"): GKE,
Karpenter (EKS) or NVIDIA GPU feature discovery (NFD); and each vendor's device-plugin resource.
"""

from __future__ import annotations

from typing import Literal

from containers.spec import ContainerSpec

Convention = Literal["gke", "karpenter", "nfd"]
CONVENTIONS: tuple[str, ...] = ("gke", "karpenter", "nfd")

# canonical GPU name -> node label value, per convention. GKE: accelerator names of GKE GPU node pools;
# Karpenter: karpenter.k8s.aws/instance-gpu-name (lowercase model); NFD: nvidia.com/gpu.product as GPU feature
# discovery writes it (the product name from nvidia-smi, spaces -> '-').
GKE_ACCELERATOR = {
    "T4": "nvidia-tesla-t4",
    "L4": "nvidia-l4",
    "A100-40GB": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "H100": "nvidia-h100-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
}
KARPENTER_GPU_NAME = {
    "T4": "t4",
    "A10G": "a10g",
    "L4": "l4",
    "L40S": "l40s",
    "A100-40GB": "a100",
    "A100-80GB": "a100",
    "H100": "h100",
    "H200": "h200",
    "B200": "b200",
}
NFD_PRODUCT = {
    "T4": "Tesla-T4",
    "A10G": "NVIDIA-A10G",
    "L4": "NVIDIA-L4",
    "L40S": "NVIDIA-L40S",
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "H100": "NVIDIA-H100-80GB-HBM3",
    "H100-PCIe": "NVIDIA-H100-PCIe",
    "H200": "NVIDIA-H200",
    "B200": "NVIDIA-B200",
}


# Extended resources of each vendor's device plugin: NVIDIA and AMD GPU operators; GKE's TPU resource
# (cloud.google.com/kubernetes-engine/docs/concepts/tpus); the Neuron device plugin on EKS (one per chip).
DEVICE_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "google": "google.com/tpu",
                   "aws": "aws.amazon.com/neuron"}
# GKE node labels of a single-host TPU slice: cloud.google.com/gke-tpu-accelerator and gke-tpu-topology
# (GKE "Plan TPUs" docs, from memory, not re-read 2026-12-04: v5e tpu-v5-lite-podslice, v6e tpu-v6e-slice).
GKE_TPU_ACCELERATOR = {"TPU-v5e": "tpu-v5-lite-podslice", "TPU-v6e": "tpu-v6e-slice"}
GKE_TPU_TOPOLOGY = {1: "1x1", 4: "2x2", 8: "2x4"}


def _gke_tpu(gpu: str, chips: int) -> dict[str, str]:
    out = {}
    if gpu in GKE_TPU_ACCELERATOR:
        out["cloud.google.com/gke-tpu-accelerator"] = GKE_TPU_ACCELERATOR[gpu]
    if chips in GKE_TPU_TOPOLOGY:
        out["cloud.google.com/gke-tpu-topology"] = GKE_TPU_TOPOLOGY[chips]
    return out


def scheduling(spec: ContainerSpec, convention: Convention) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(nodeSelector, tolerations) for the spec's GPU type and market under ``convention``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    if spec.gpus > 0:
        # GPU nodes are commonly tainted <vendor>.com/gpu:NoSchedule (GKE and the GPU operators do it).
        taint = DEVICE_RESOURCE.get(spec.gpu_vendor, "nvidia.com/gpu")
        tolerations.append({"key": taint, "operator": "Exists", "effect": "NoSchedule"})
        if spec.gpu_vendor == "google" and convention == "gke":  # GKE TPU node pools: accelerator and topology
            selector.update(_gke_tpu(spec.gpu_type or "", spec.gpus))
        gpu = spec.gpu_type or ""
        table = {"gke": GKE_ACCELERATOR, "karpenter": KARPENTER_GPU_NAME, "nfd": NFD_PRODUCT}[convention]
        key = {
            "gke": "cloud.google.com/gke-accelerator",
            "karpenter": "karpenter.k8s.aws/instance-gpu-name",
            "nfd": "nvidia.com/gpu.product",
        }[convention]
        if gpu in table:
            selector[key] = table[gpu]
    if convention == "gke" and spec.spot:
        selector["cloud.google.com/gke-spot"] = "true"
        tolerations.append(
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        )
    elif convention == "karpenter":
        selector["karpenter.sh/capacity-type"] = "spot" if spec.spot else "on-demand"
    return selector, tolerations
