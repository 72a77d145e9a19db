"""Kubernetes manifests: valid against the official schemas, GPUs, scheduling per convention, LWS for multi-node."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from containers.render.kubernetes import render_kubernetes
from test_containers_vllm import SECRET, build

K8S_VERSION = kubernetes_validate.latest_version()


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def pod_spec(objs: list[dict]) -> dict:
    return objs[0]["spec"]["template"]["spec"]


@pytest.mark.parametrize("convention", ["gke", "karpenter", "nfd"])
def test_schema_valid_with_gpu_limits(convention: str) -> None:
    s = build(tp=4, gpus=4)
    objs = render_kubernetes(s, namespace="orch", replicas=2, convention=convention)
    assert [o["kind"] for o in objs] == ["Deployment", "Service"]
    for o in objs:
        validate(o)
    dep, svc = objs
    assert dep["spec"]["replicas"] == 2
    c = pod_spec(objs)["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert c["args"] == s.args and c["image"] == s.image
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    shm = next(v for v in pod_spec(objs)["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["metadata"]["labels"]["orch-project"] == "acme"
    assert svc["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_scheduling_per_convention() -> None:
    spot = build(market="spot")
    gke = pod_spec(render_kubernetes(spot, namespace="n", convention="gke"))
    assert gke["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb", "cloud.google.com/gke-spot": "true"}
    assert {t["key"] for t in gke["tolerations"]} == {"nvidia.com/gpu", "cloud.google.com/gke-spot"}

    karp = pod_spec(render_kubernetes(spot, namespace="n", convention="karpenter"))
    assert karp["nodeSelector"] == {"karpenter.k8s.aws/instance-gpu-name": "h100", "karpenter.sh/capacity-type": "spot"}
    ondemand = pod_spec(render_kubernetes(build(), namespace="n", convention="karpenter"))
    assert ondemand["nodeSelector"]["karpenter.sh/capacity-type"] == "on-demand"

    nfd = pod_spec(render_kubernetes(build(), namespace="n", convention="nfd"))
    assert nfd["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert nfd["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_no_secret_value_in_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for nodes in (1, 2):
        objs = render_kubernetes(build(tp=8, gpus=8 * nodes, nodes=nodes), namespace="orch", nodes_per_replica=nodes)
        assert SECRET not in json.dumps(objs)


def test_leaderworkerset_for_multinode() -> None:
    s = build(tp=8, pp=2, gpus=16, nodes=2)
    objs = render_kubernetes(s, namespace="orch", replicas=3, convention="gke", nodes_per_replica=2)
    lws, svc = objs
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and lws["kind"] == "LeaderWorkerSet"
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert lws["spec"]["replicas"] == 3 and tmpl["size"] == 2
    assert tmpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = tmpl["leaderTemplate"], tmpl["workerTemplate"]
    # LWS is a CRD the official schemas do not cover: validate each pod template as a core PodTemplate.
    for t in (leader, worker):
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": t})
        assert t["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    lead_cmd = " ".join(leader["spec"]["containers"][0]["command"])
    assert "ray start --head" in lead_cmd and "vllm serve" in lead_cmd
    assert "--pipeline-parallel-size 2" in lead_cmd and "--tensor-parallel-size 8" in lead_cmd
    assert "LWS_LEADER_ADDRESS" in " ".join(worker["spec"]["containers"][0]["command"])
    assert "readinessProbe" in leader["spec"]["containers"][0] and "readinessProbe" not in worker["spec"]["containers"][0]
    validate(svc)
    assert svc["spec"]["selector"]["orch-role"] == "leader"


def test_cpu_spec_has_no_gpu_scheduling() -> None:
    s = build()
    s.gpus, s.gpu_type, s.shm_gb = 0, None, 0.0
    objs = render_kubernetes(s, namespace="n", convention="nfd")
    validate(objs[0])
    ps = pod_spec(objs)
    assert "nodeSelector" not in ps and "tolerations" not in ps
    assert "nvidia.com/gpu" not in json.dumps(ps)
