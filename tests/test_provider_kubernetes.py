"""Kubernetes provider against a stand-in API server (pytest-httpserver) that stores objects and answers with the
API's JSON shapes (tests/fixtures/k8s). No real API server runs here."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

from orchestrator.errors import AuthError, NotFoundError, TransientError
from providers.base import Placement, Provider
from providers.kubernetes import create
from test_containers_vllm import SECRET, build

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)
GROUPS = {"deployments": "apps", "services": "", "pods": "", "configmaps": "", "networkpolicies": "networking.k8s.io",
          "leaderworkersets": "leaderworkerset.x-k8s.io"}


def fixture(fname: str, **fill: str) -> dict[str, Any]:
    text = (FIXTURES / fname).read_text()
    for k, v in fill.items():
        text = text.replace("{" + k + "}", v)
    return json.loads(text)


class FakeApiServer:
    """Just enough of the API server: create/get/patch/delete/list by label selector, Status errors, injected faults."""

    def __init__(self, lws_crd: bool = False) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.faults: list[tuple[str, str, int]] = []  # (method, plural, status), each used once
        self.pods: list[dict[str, Any]] = []
        self.lws_crd = lws_crd

    def status(self, fixture_name: str, code: int, plural: str, name: str = "") -> Response:
        body = fixture(fixture_name, name=name, kind=plural, group=GROUPS.get(plural, ""))
        return Response(json.dumps(body), status=code, content_type="application/json")

    def __call__(self, request: Request) -> Response:
        self.calls.append((request.method, request.path, request.headers.get("Content-Type", "")))
        m = ROUTE.match(request.path)
        if not m:
            return Response("not found", status=404)
        plural, name = m["plural"], m["name"]
        for i, (method, fplural, code) in enumerate(self.faults):
            if method == request.method and fplural == plural:
                del self.faults[i]
                fx = {403: "status_forbidden.json", 503: "status_unavailable.json", 429: "status_unavailable.json"}[code]
                return self.status(fx, code, plural, name or "")
        if plural == "leaderworkersets" and not self.lws_crd:
            return self.status("status_no_resource.json", 404, plural)
        if plural == "pods":
            return self.json({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.pods})
        key = (plural, name or "")
        if request.method == "POST":
            obj = json.loads(request.get_data())
            key = (plural, obj["metadata"]["name"])
            if key in self.objects:
                return self.status("status_already_exists.json", 409, plural, key[1])
            obj["metadata"].update(uid=f"uid-{len(self.objects)}", resourceVersion="1", creationTimestamp="2026-11-23T14:30:00Z")
            if plural == "deployments":
                obj["status"] = fixture("deployment_status_progressing.json", name=key[1])
            if plural == "services":
                obj["spec"]["clusterIP"] = "10.96.12.34"
            self.objects[key] = obj
            return self.json(obj, 201)
        if request.method == "GET" and name is None:
            selector = dict(kv.split("=", 1) for kv in filter(None, request.args.get("labelSelector", "").split(",")))
            items = [o for (p, _), o in self.objects.items()
                     if p == plural and selector.items() <= (o["metadata"].get("labels") or {}).items()]
            return self.json({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items})
        if key not in self.objects:
            return self.status("status_not_found.json", 404, plural, name or "")
        if request.method == "GET":
            return self.json(self.objects[key])
        if request.method == "PATCH":
            patch = json.loads(request.get_data())
            merged = copy.deepcopy(self.objects[key])
            for field in ("spec", "data"):  # a ConfigMap has data, no spec
                if field in patch:
                    merged[field] = patch[field]
            merged["metadata"]["labels"] = patch["metadata"].get("labels", merged["metadata"].get("labels"))
            self.objects[key] = merged
            return self.json(merged)
        if request.method == "DELETE":
            gone = self.objects.pop(key)
            if plural == "services":  # the API server answers a Service delete with the deleted object
                return self.json(gone)
            return self.json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {"name": name, "kind": plural}})
        return Response(status=405)

    @staticmethod
    def json(obj: Any, code: int = 200) -> Response:
        return Response(json.dumps(obj), status=code, content_type="application/json")


@pytest.fixture()
def api(httpserver) -> FakeApiServer:  # type: ignore[no-untyped-def]
    fake = FakeApiServer()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake)
    return fake


@pytest.fixture()
def provider(httpserver, api):  # type: ignore[no-untyped-def]
    from kubernetes import client

    cfg = client.Configuration(host=httpserver.url_for("").rstrip("/"))
    p = create(namespace="orch", convention="gke", api_client=client.ApiClient(cfg))
    p._sleep = lambda s: None  # retries without waiting
    return p


PLACEMENT = Placement(project="acme", deployment="chat", plan_id="p1", replica="chat-0", region="onprem:k8s-east",
                      instance_type="gke-pool-h100", gpu="H100", gpu_count=1)


def test_launch_describe_list_terminate(provider, api: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert isinstance(provider, Provider)
    spec = build(market="spot")
    handle = provider.launch(spec, PLACEMENT)
    assert handle.id == spec.name and handle.state == "pending"
    assert handle.endpoint == f"http://{spec.name}.orch.svc.cluster.local:8000"
    assert set(api.objects) == {("deployments", spec.name), ("services", spec.name)}
    dep = api.objects[("deployments", spec.name)]
    assert dep["metadata"]["labels"]["orch-plan"] == "p1"
    assert dep["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
    assert SECRET not in json.dumps(list(api.objects.values()))

    # not ready yet, and the scheduler says why
    api.pods = [{"metadata": {"name": f"{spec.name}-abc", "namespace": "orch", "labels": {"app.kubernetes.io/instance": spec.name}},
                 "status": fixture("pod_status_unschedulable.json")}]
    pending = provider.describe(handle.id, PLACEMENT.region)
    assert pending.state == "pending" and pending.details["ready_replicas"] == 0
    assert "Insufficient nvidia.com/gpu" in pending.details["unschedulable"][0]
    assert pending.details["cluster_ip"] == "10.96.12.34"

    dep["status"] = fixture("deployment_status_ready.json", name=spec.name)
    assert provider.describe(handle.id, PLACEMENT.region).state == "running"

    # a second apply adopts the existing objects (409 -> patch), with a patch type the API server accepts
    provider.launch(spec, PLACEMENT)
    patches = [c for c in api.calls if c[0] == "PATCH"]
    assert len(patches) == 2 and all(c[2] == "application/strategic-merge-patch+json" for c in patches)

    found = provider.list({"orch-project": "acme", "orch-deployment": "chat"})
    assert [h.id for h in found] == [spec.name]  # the LWS CRD is absent (404): no LWS, no error
    assert provider.list({"orch-project": "other"}) == []

    provider.terminate(handle)
    assert api.objects == {}
    provider.terminate(handle)  # idempotent
    with pytest.raises(NotFoundError):
        provider.describe(handle.id, PLACEMENT.region)


def test_errors_are_typed(provider, api: FakeApiServer) -> None:  # type: ignore[no-untyped-def]
    spec = build()
    api.faults = [("POST", "deployments", 503), ("POST", "deployments", 429)]
    provider.launch(spec, PLACEMENT)  # retried through both
    assert ("deployments", spec.name) in api.objects

    api.faults = [("GET", "deployments", 403)]
    with pytest.raises(AuthError, match="RBAC"):
        provider.describe(spec.name, PLACEMENT.region)

    api.faults = [("DELETE", "deployments", 403)]
    with pytest.raises(AuthError):
        provider.terminate(provider.list({"orch-project": "acme"})[0])

    api.faults = [("POST", "deployments", 503)] * 5
    with pytest.raises(TransientError):
        provider.launch(build(extra_args=["--enforce-eager"]), PLACEMENT)


def test_leaderworkerset_launch(httpserver, provider) -> None:  # type: ignore[no-untyped-def]
    httpserver.clear_all_handlers()
    fake = FakeApiServer(lws_crd=True)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake)
    spec = build(tp=8, pp=2, gpus=16, nodes=2)
    provider.launch(spec, PLACEMENT)
    assert set(fake.objects) == {("leaderworkersets", spec.name), ("services", spec.name)}
    lws = fake.objects[("leaderworkersets", spec.name)]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert [h.id for h in provider.list({"orch-project": "acme"})] == [spec.name]
    provider.launch(spec, PLACEMENT)  # adopt: CRDs take a JSON merge patch
    assert any(c[0] == "PATCH" and "leaderworkersets" in c[1] and c[2] == "application/merge-patch+json" for c in fake.calls)
    provider.terminate(provider.list({"orch-project": "acme"})[0])
    assert fake.objects == {}


def test_planned_calls_need_no_cluster() -> None:
    from kubernetes import client

    p = create(namespace="orch", convention="karpenter", api_client=client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))
    calls = p.planned_calls(build(), PLACEMENT)
    assert [c["kind"] for c in calls] == ["Deployment", "Service"]
    assert calls[0]["body"]["spec"]["template"]["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] == "on-demand"


def test_create_from_kubeconfig_context(httpserver, api: FakeApiServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The kubeconfig path: the named context picks the cluster (a real kubeconfig file, read by the client)."""
    url = httpserver.url_for("").rstrip("/")
    (tmp_path / "kubeconfig").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "site", "cluster": {"server": url}}, {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "orch", "user": {"token": "kubeconfig-token"}}],
        "contexts": [{"name": "site-a", "context": {"cluster": "site", "user": "orch"}},
                     {"name": "other", "context": {"cluster": "nowhere", "user": "orch"}}],
    }))
    p = create(context="site-a", namespace="orch", kubeconfig=str(tmp_path / "kubeconfig"))
    assert p.list({"orch-project": "acme"}) == []
    assert api.calls and api.calls[0][1] == "/apis/apps/v1/namespaces/orch/deployments"


def test_missing_kubeconfig_is_an_auth_error(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="kubeconfig"):
        create(context="nope", kubeconfig=str(tmp_path / "missing"))


GW_PLACEMENT = Placement(project="acme", deployment="chat", plan_id="p1", replica="acme-chat-gw1-0",
                         region="onprem:k8s-east", instance_type="cpu", gpu="CPU", gpu_count=0)


def gateway_spec():  # type: ignore[no-untyped-def]
    from containers.gateway import GatewayNetwork, build_gateway_container

    labels = {"orch-project": "acme", "orch-deployment": "chat", "orch-replica": "acme-chat-gw1-0", "orch-role": "gateway"}
    return build_gateway_container(project="acme", deployment="chat", gateway="acme-chat-gw1-0", labels=labels,
                                   network=GatewayNetwork(allow_cidrs=("10.0.0.0/8",), control_cidrs=("192.0.2.0/24",)))


def test_gateway_launch_describe_terminate(provider, api: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from containers.gateway import caddyfile

    monkeypatch.setenv("ORCH_API_KEY", SECRET)
    spec = gateway_spec()
    name = spec.name
    handle = provider.launch(spec, GW_PLACEMENT)
    # the pod's files and its policy exist before the pod does
    posts = [c[1] for c in api.calls if c[0] == "POST"]
    assert posts == ["/api/v1/namespaces/orch/configmaps", "/apis/networking.k8s.io/v1/namespaces/orch/networkpolicies",
                     "/apis/apps/v1/namespaces/orch/deployments", "/api/v1/namespaces/orch/services"]
    assert set(api.objects) == {("configmaps", f"{name}-files"), ("networkpolicies", name), ("deployments", name), ("services", name)}
    assert SECRET not in json.dumps(list(api.objects.values()))
    for obj in api.objects.values():  # labelled like the rest: found by project and deployment
        assert {"orch-project": "acme", "orch-deployment": "chat", "orch-plan": "p1"}.items() <= obj["metadata"]["labels"].items()
    assert api.objects[("configmaps", f"{name}-files")]["data"] == {"Caddyfile": caddyfile(8080)}
    pol = api.objects[("networkpolicies", name)]["spec"]
    assert [(r["ports"][0]["port"], r["from"]) for r in pol["ingress"]] == [
        (8080, [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"podSelector": {}}]), (8081, [{"ipBlock": {"cidr": "192.0.2.0/24"}}])]
    pod = api.objects[("deployments", name)]["spec"]["template"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["router", "edge"]
    assert pod["metadata"]["labels"]["orch-role"] == "gateway"
    svc = api.objects[("services", name)]["spec"]
    assert [(p["name"], p["port"]) for p in svc["ports"]] == [("http", 8080), ("control", 8081)] and svc["type"] == "ClusterIP"

    # the endpoint is the Service's public port, not the router's (it has none) nor the control port
    endpoint = f"http://{name}.orch.svc.cluster.local:8080"
    assert handle.endpoint == endpoint and handle.details["control_endpoint"].endswith(":8081")
    assert provider.describe(name, GW_PLACEMENT.region).endpoint == endpoint
    [listed] = provider.list({"orch-project": "acme", "orch-deployment": "chat"})
    assert listed.endpoint == endpoint and listed.labels["orch-role"] == "gateway"

    provider.launch(spec, GW_PLACEMENT)  # idempotent: every object adopted (409 -> patch)
    patched = [c[1].rsplit("/", 2)[-2] for c in api.calls if c[0] == "PATCH"]
    assert patched == ["configmaps", "networkpolicies", "deployments", "services"]
    assert len(api.objects) == 4

    provider.terminate(handle)
    assert api.objects == {}
    deleted = [c[1].rsplit("/", 2)[-2] for c in api.calls if c[0] == "DELETE"]
    assert deleted == ["deployments", "leaderworkersets", "services", "configmaps", "networkpolicies"]
    provider.terminate(handle)  # idempotent
    with pytest.raises(NotFoundError):
        provider.describe(name, GW_PLACEMENT.region)


def test_replica_policy_admits_its_gateways(provider, api: FakeApiServer) -> None:  # type: ignore[no-untyped-def]
    from containers.gateway import API_KEY
    from containers.vllm import build_vllm_container
    from test_containers_vllm import plan

    d, g = plan()
    spec = build_vllm_container(project="acme", deployment=d, group=g, replica="chat-0", api_key=API_KEY,
                                control_cidrs=["192.0.2.0/24"])
    provider.launch(spec, PLACEMENT)
    provider.launch(gateway_spec(), GW_PLACEMENT)
    [rule] = api.objects[("networkpolicies", spec.name)]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    cidr, pods = rule["from"]
    assert cidr == {"ipBlock": {"cidr": "192.0.2.0/24"}}
    gw_labels = api.objects[("deployments", gateway_spec().name)]["spec"]["template"]["metadata"]["labels"]
    assert pods["podSelector"]["matchLabels"].items() <= gw_labels.items()
    assert ("configmaps", f"{spec.name}-files") not in api.objects  # a replica has no files
    provider.terminate(provider.describe(spec.name, PLACEMENT.region))
    assert {k for k in api.objects if spec.name in k[1]} == set()


def test_gateway_load_balancer_planned() -> None:
    from kubernetes import client

    from orchestrator.errors import UserError

    p = create(namespace="orch", api_client=client.ApiClient(client.Configuration(host="http://127.0.0.1:9")),
               service_type="LoadBalancer")
    calls = p.planned_calls(gateway_spec(), GW_PLACEMENT)
    assert [c["kind"] for c in calls] == ["ConfigMap", "NetworkPolicy", "Deployment", "Service"]
    svc = calls[-1]["body"]["spec"]
    assert svc["type"] == "LoadBalancer" and svc["loadBalancerSourceRanges"] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert p.planned_calls(build(), PLACEMENT)[-1]["body"]["spec"]["type"] == "ClusterIP"  # replicas stay inside
    with pytest.raises(UserError, match="service_type"):
        create(namespace="orch", api_client=client.ApiClient(), service_type="NodePort")  # type: ignore[arg-type]
