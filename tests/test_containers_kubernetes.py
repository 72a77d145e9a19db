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


# -- gateway pods, network policies, autoscalers -----------------------------------------------------------------

def gateway(**kw):  # type: ignore[no-untyped-def]
    from containers.gateway import GatewayNetwork, build_gateway_container

    return build_gateway_container(project="p", deployment="chat", gateway="p-chat-gw1-0",
                                   network=GatewayNetwork(allow_cidrs=("10.0.0.0/8",), control_cidrs=("192.0.2.0/24",)), **kw)


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objs}


def replica_behind_gateways(control_cidrs=("192.0.2.0/24",)):  # type: ignore[no-untyped-def]
    from containers.gateway import API_KEY
    from containers.vllm import build_vllm_container
    from test_containers_vllm import plan

    d, g = plan()
    return build_vllm_container(project="acme", deployment=d, group=g, replica="chat-0", api_key=API_KEY,
                                control_cidrs=control_cidrs)


def test_gateway_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    from containers.gateway import ADMIN_KEY_ENV, API_KEY_ENV, CADDYFILE, ROUTER_PACKAGE, caddyfile

    monkeypatch.setenv(API_KEY_ENV, SECRET)
    monkeypatch.setenv(ADMIN_KEY_ENV, SECRET + "admin")
    spec = gateway()
    objs = render_kubernetes(spec, namespace="orch")
    assert [o["kind"] for o in objs] == ["ConfigMap", "NetworkPolicy", "Deployment", "Service"]  # apply order
    for o in objs:
        validate(o)
    assert SECRET not in json.dumps(objs)
    k = by_kind(objs)
    cm, dep, svc = k["ConfigMap"], k["Deployment"], k["Service"]

    # the ConfigMap holds the Caddyfile (placeholders, no key), mounted read-only in the edge only
    assert cm["metadata"]["name"] == "p-chat-gw1-0-files"
    assert cm["data"] == {"Caddyfile": caddyfile(8080)}
    assert "{$ORCH_API_KEY}" in cm["data"]["Caddyfile"]
    pod = dep["spec"]["template"]["spec"]
    router, edge = pod["containers"]
    assert (router["name"], edge["name"]) == ("router", "edge")
    assert {"name": "orch-files", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"]
    assert edge["volumeMounts"] == [{"name": "orch-files", "mountPath": CADDYFILE, "subPath": "Caddyfile", "readOnly": True}]
    assert "volumeMounts" not in router

    # router: pip-installed into the plain python image, then exec'd with its args; loopback only, no port
    assert router["image"] == spec.image and router["command"][:2] == ["sh", "-c"]
    assert router["command"][2] == f'pip install -q --no-cache-dir {ROUTER_PACKAGE} && exec "$@"'
    assert router["command"][3:] == ["sh", "vllm-router"] and router["args"] == spec.args
    assert "ports" not in router and router["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    # edge: both keys from Secrets, required
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in edge["env"]}
    assert env == {"ORCH_API_KEY": {"name": "orch-api-key", "key": "token", "optional": False},
                   "ORCH_ADMIN_KEY": {"name": "orch-admin-key", "key": "token", "optional": False}}
    assert edge["image"] == spec.sidecars[0].image and edge["resources"]["requests"]["memory"] == "256Mi"
    assert {p["name"]: p["containerPort"] for p in edge["ports"]} == {"http": 8080, "control": 8081}

    # the Service exposes the public and control ports only, in the cluster by default
    assert svc["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in svc["spec"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 8080, 8080), ("control", 8081, 8081)]
    assert "annotations" not in svc["metadata"]  # the router's metrics are behind the admin key
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["orch-role"] == "gateway" and svc["spec"]["selector"].items() <= labels.items()

    # a new Caddyfile rolls the pods (subPath mounts never see ConfigMap updates)
    other = by_kind(render_kubernetes(gateway(port=9090), namespace="orch"))["Deployment"]
    ann = "orch/files-sha256"
    assert other["spec"]["template"]["metadata"]["annotations"][ann] != dep["spec"]["template"]["metadata"]["annotations"][ann]


def test_gateway_network_policy_and_load_balancer() -> None:
    objs = render_kubernetes(gateway(), namespace="orch", service_type="LoadBalancer")
    for o in objs:
        validate(o)
    k = by_kind(objs)
    pol = k["NetworkPolicy"]["spec"]
    assert pol["podSelector"]["matchLabels"] == k["Deployment"]["spec"]["selector"]["matchLabels"]
    assert pol["policyTypes"] == ["Ingress"]
    assert pol["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]},
        {"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 8081}]},
    ]
    svc = k["Service"]["spec"]
    assert svc["type"] == "LoadBalancer"
    # source ranges are per Service: every network the ingress admits; per port, the NetworkPolicy decides, and
    # sees the client's address
    assert svc["loadBalancerSourceRanges"] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert svc["externalTrafficPolicy"] == "Local"
    # replicas are never exposed outside the cluster
    rep = by_kind(render_kubernetes(replica_behind_gateways(), namespace="orch", service_type="LoadBalancer"))["Service"]
    assert rep["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in rep["spec"]
    with pytest.raises(ValueError, match="service type"):
        render_kubernetes(gateway(), namespace="orch", service_type="NodePort")  # type: ignore[arg-type]


def test_replica_admits_only_gateways_and_control_networks() -> None:
    spec = replica_behind_gateways()
    objs = render_kubernetes(spec, namespace="orch")
    assert [o["kind"] for o in objs] == ["NetworkPolicy", "Deployment", "Service"]
    for o in objs:
        validate(o)
    k = by_kind(objs)
    pol = k["NetworkPolicy"]["spec"]
    assert pol["podSelector"]["matchLabels"] == k["Deployment"]["spec"]["selector"]["matchLabels"]
    gw_selector = {"orch-project": "acme", "orch-deployment": "chat", "orch-role": "gateway"}
    assert pol["ingress"] == [{
        "from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}, {"podSelector": {"matchLabels": gw_selector}}],
        "ports": [{"protocol": "TCP", "port": 8000}],
    }]
    # this deployment's gateway pods (labelled as apply labels them) match; another deployment's do not
    labels = {"orch-project": "acme", "orch-deployment": "chat", "orch-replica": "gw1-0", "orch-role": "gateway"}
    gw_pod = by_kind(render_kubernetes(gateway(labels=labels), namespace="orch"))["Deployment"]["spec"]["template"]
    assert gw_selector.items() <= gw_pod["metadata"]["labels"].items()
    other = by_kind(render_kubernetes(gateway(labels={**labels, "orch-deployment": "other"}), namespace="orch"))["Deployment"]
    assert not gw_selector.items() <= other["spec"]["template"]["metadata"]["labels"].items()
    # vLLM's key is required, the HF token stays optional
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["optional"] for e in pod_spec(objs[1:])["containers"][0]["env"] if "valueFrom" in e}
    assert env == {"HF_TOKEN": True, "VLLM_API_KEY": False}
    # gateways only (no control networks): still a rule; no ingress at all: no policy, as before
    only_gw = by_kind(render_kubernetes(replica_behind_gateways(control_cidrs=()), namespace="orch"))["NetworkPolicy"]
    assert only_gw["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": gw_selector}}], "ports": [{"protocol": "TCP", "port": 8000}]}]
    assert [o["kind"] for o in render_kubernetes(replica_behind_gateways(control_cidrs=None), namespace="orch")] == ["Deployment", "Service"]


def test_ingress_edge_cases() -> None:
    from containers.spec import Ingress

    s = build()
    s.ingress = [Ingress(8000, peers=("network",)), Ingress(9000)]  # 9000: nobody; an empty `from` would admit all
    pol = by_kind(render_kubernetes(s, namespace="orch"))["NetworkPolicy"]
    validate(pol)
    assert pol["spec"]["ingress"] == [{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8000}]}]
    s.ingress = [Ingress(8000, peers=("internet",))]
    with pytest.raises(ValueError, match="unknown ingress peer"):
        render_kubernetes(s, namespace="orch")
    g = gateway()
    g.ingress = [Ingress(8080, peers=("gateway",))]  # no project/deployment labels: would admit every gateway
    with pytest.raises(ValueError, match="orch-project"):
        render_kubernetes(g, namespace="orch")


def test_multinode_replica_policy_admits_its_group() -> None:
    from containers.spec import Ingress

    s = build(tp=8, pp=2, gpus=16, nodes=2)
    s.ingress = [Ingress(8000, cidrs=("192.0.2.0/24",))]
    objs = render_kubernetes(s, namespace="orch", nodes_per_replica=2)
    assert [o["kind"] for o in objs] == ["NetworkPolicy", "LeaderWorkerSet", "Service"]
    pol = objs[0]
    validate(pol)
    selector = {"app.kubernetes.io/instance": s.name}
    assert pol["spec"]["ingress"][-1] == {"from": [{"podSelector": {"matchLabels": selector}}]}  # Ray, NCCL: any port
    for t in ("leaderTemplate", "workerTemplate"):
        assert selector.items() <= objs[1]["spec"]["leaderWorkerTemplate"][t]["metadata"]["labels"].items()


def test_hpa_autoscaler() -> None:
    from containers.render.kubernetes_extra import Scaling, render_autoscaler

    hpa = render_autoscaler("acme-chat-0", Scaling(min_replicas=1, max_replicas=4, target_running_per_replica=8),
                            namespace="orch", labels={"orch-project": "acme"})
    validate(hpa)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "acme-chat-0"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                                                "target": {"type": "AverageValue", "averageValue": "8"}}}]
    frac = render_autoscaler("x", Scaling(min_replicas=2, max_replicas=3, target_running_per_replica=2.5),
                             namespace="orch", target_kind="LeaderWorkerSet")
    validate(frac)
    assert frac["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "2500m"
    assert frac["spec"]["scaleTargetRef"]["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    for bad in ({"min_replicas": 0}, {"min_replicas": 5}, {"target_running_per_replica": 0}, {"kind": "vpa"}):
        kw = {"min_replicas": 1, "max_replicas": 4, "target_running_per_replica": 8, **bad}
        kind = kw.pop("kind", "hpa")
        with pytest.raises(ValueError):
            render_autoscaler("x", Scaling(**kw), namespace="orch", kind=kind)  # type: ignore[arg-type]


def test_keda_autoscaler() -> None:
    """KEDA is a CRD the official schemas do not cover: the fields KEDA documents for a ScaledObject
    (keda.sh/docs, "Scaling Deployments" and the prometheus scaler)."""
    from containers.render.kubernetes_extra import Scaling, render_autoscaler

    so = render_autoscaler("acme-chat-0", Scaling(min_replicas=0, max_replicas=6, target_running_per_replica=8),
                           namespace="orch", kind="keda", prometheus_url="http://prometheus.monitoring:9090")
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    assert so["metadata"] == {"name": "acme-chat-0", "namespace": "orch"}
    assert set(so["spec"]) == {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"}
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "acme-chat-0"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 6)
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert set(meta) == {"serverAddress", "query", "threshold"}
    assert meta["serverAddress"] == "http://prometheus.monitoring:9090"
    assert meta["threshold"] == "8" and isinstance(meta["threshold"], str)  # KEDA's metadata values are strings
    assert meta["query"].startswith("sum(vllm:num_requests_running{") and meta["query"].endswith("})")
    assert 'namespace="orch"' in meta["query"] and 'pod=~"acme-chat-0-[a-z0-9]+-[a-z0-9]+"' in meta["query"]
    assert all(isinstance(v, str) for v in meta.values())
    with pytest.raises(ValueError, match="prometheus_url"):
        render_autoscaler("x", Scaling(min_replicas=0, max_replicas=2, target_running_per_replica=1), namespace="orch",
                          kind="keda")
