"""GCP provider: the real google-cloud-compute clients (REST transport) and the Billing Catalog reader, against a
local HTTP server (pytest-httpserver) answering with JSON shaped like the real API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from containers.spec import ContainerSpec
from orchestrator.errors import AuthError, CapacityError, NotFoundError, QuotaError
from providers.base import LABEL_PROJECT, Handle, Placement
from providers.gcp import GcpProvider, create

REC = json.loads((Path(__file__).parent / "fixtures" / "recordings" / "gcp_compute.json").read_text())
SKUS = json.loads((Path(__file__).parent / "fixtures" / "recordings" / "gcp_billing_skus.json").read_text())
BASE = "/compute/v1/projects/demo-proj"
ZONE = "us-central1-a"


def _provider(httpserver) -> GcpProvider:
    endpoint = httpserver.url_for("/").rstrip("/")
    return create(
        project="demo-proj",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        billing_url=endpoint,
        sleep=lambda s: None,
    )


def _spec() -> ContainerSpec:
    return ContainerSpec(
        name="chat-0",
        image="vllm/vllm-openai:v0.32.0",
        args=["meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"],
        ports={"http": 8000},
        gpus=1,
        gpu_type="L4",
    )


def _placement(market: str = "spot", instance_type: str = "g2-standard-4", gpu: str = "L4", count: int = 1) -> Placement:
    return Placement("acme", "chat", "p1", "chat-g2-0", "gcp:us-central1", instance_type, gpu, count, market, zone=ZONE)  # type: ignore[arg-type]


def _insert_body(httpserver) -> dict:
    posts = [req for req, _ in httpserver.log if req.method == "POST" and req.path.endswith("/instances")]
    assert posts, "no insert was sent"
    return posts[-1].get_json()


def test_spot_launch_sends_scheduling_labels_metadata_and_waits(httpserver):
    op = REC["operationRunning"]
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances", method="POST").respond_with_json(op)
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/operations/{op['name']}/wait", method="POST").respond_with_json(REC["operationDone"])
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/orch-acme-chat-g2-0", method="GET").respond_with_json(REC["instance"])

    h = _provider(httpserver).launch(_spec(), _placement())

    body = _insert_body(httpserver)
    assert body["name"] == "orch-acme-chat-g2-0"
    assert body["machineType"] == f"zones/{ZONE}/machineTypes/g2-standard-4"
    assert "guestAccelerators" not in body  # G2 includes its L4
    assert body["scheduling"]["provisioningModel"] == "SPOT"
    assert body["scheduling"]["instanceTerminationAction"] == "DELETE"
    assert body["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert body["labels"] == {"orch-project": "acme", "orch-deployment": "chat", "orch-plan": "p1", "orch-replica": "chat-g2-0", "orch-port": "8000"}
    meta = {i["key"]: i["value"] for i in body["metadata"]["items"]}
    assert meta["install-nvidia-driver"] == "True"
    assert "vllm/vllm-openai:v0.32.0" in meta["startup-script"] and "meta-llama/Llama-3.1-8B-Instruct" in meta["startup-script"]
    assert body["disks"][0]["initializeParams"]["sourceImage"].startswith("projects/deeplearning-platform-release/")
    insert_req = next(req for req, _ in httpserver.log if req.method == "POST")
    assert insert_req.args.get("requestId") == GcpProvider.request_id(_placement())
    # The operation was polled until DONE, then the instance read back.
    assert any(req.path.endswith(f"/operations/{op['name']}/wait") for req, _ in httpserver.log)
    assert h.id == f"{ZONE}/orch-acme-chat-g2-0" and h.region == "gcp:us-central1" and h.state == "running"
    assert h.endpoint == "http://34.123.45.67:8000"
    assert h.labels[LABEL_PROJECT] == "acme" and "orch-port" not in h.labels


def test_n1_gets_attached_t4s_and_on_demand_scheduling():
    p = create(project="demo-proj")  # planned_calls needs no credentials
    calls = p.planned_calls(_spec(), _placement("on_demand", "n1-standard-16+nvidia-tesla-t4:2", "T4", 2))
    body = calls[0]["params"]["instance_resource"]
    assert body["machine_type"] == f"zones/{ZONE}/machineTypes/n1-standard-16"
    assert body["guest_accelerators"] == [{"accelerator_type": f"zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4", "accelerator_count": 2}]
    assert body["scheduling"]["on_host_maintenance"] == "TERMINATE"
    assert "provisioning_model" not in body["scheduling"] or body["scheduling"]["provisioning_model"] != "SPOT"


def test_stockout_in_operation_is_capacity_error(httpserver):
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances", method="POST").respond_with_json(REC["operationStockout"])
    with pytest.raises(CapacityError, match="ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources"):
        _provider(httpserver).launch(_spec(), _placement())
    assert sum(1 for req, _ in httpserver.log if req.method == "POST") == 1  # not retried


def test_quota_is_quota_error(httpserver):
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances", method="POST").respond_with_json(REC["quotaError"], status=403)
    with pytest.raises(QuotaError, match="NVIDIA_L4_GPUS"):
        _provider(httpserver).launch(_spec(), _placement())


def test_transient_503_is_retried(httpserver):
    path = f"{BASE}/zones/{ZONE}/instances"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_json({"error": {"code": 503, "message": "backend unavailable"}}, status=503)
    httpserver.expect_request(path, method="POST").respond_with_json(REC["operationDone"])
    httpserver.expect_request(f"{path}/orch-acme-chat-g2-0", method="GET").respond_with_json(REC["instance"])
    h = _provider(httpserver).launch(_spec(), _placement())
    assert h.state == "running"
    assert sum(1 for req, _ in httpserver.log if req.method == "POST") == 2


def test_list_filters_by_labels_and_terminate_is_idempotent(httpserver):
    other = dict(REC["instance"], name="orch-other-x-0", labels={"orch-project": "other"})
    httpserver.expect_request(f"{BASE}/aggregated/instances", method="GET").respond_with_json(
        {"items": {f"zones/{ZONE}": {"instances": [REC["instance"], other]}, "zones/us-east1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}}
    )
    p = _provider(httpserver)
    found = p.list({LABEL_PROJECT: "acme"}, regions=["gcp:us-central1"])
    assert [h.id for h in found] == [f"{ZONE}/orch-acme-chat-g2-0"]
    req = next(r for r, _ in httpserver.log if r.path.endswith("/aggregated/instances"))
    assert req.args["filter"] == '(labels.orch-project = "acme")'
    assert p.list({LABEL_PROJECT: "acme"}, regions=["gcp:europe-west4"]) == []

    httpserver.expect_oneshot_request(f"{BASE}/zones/{ZONE}/instances/orch-acme-chat-g2-0", method="DELETE").respond_with_json(
        dict(REC["operationDone"], operationType="delete")
    )
    p.terminate(found[0])
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/orch-acme-chat-g2-0", method="DELETE").respond_with_json(REC["notFound"], status=404)
    p.terminate(found[0])  # gone already: fine


def test_describe_missing_is_not_found(httpserver):
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/orch-gone", method="GET").respond_with_json(REC["notFound"], status=404)
    with pytest.raises(NotFoundError):
        _provider(httpserver).describe(f"{ZONE}/orch-gone", "gcp:us-central1")


def test_missing_credentials_is_one_line_auth_error(monkeypatch, tmp_path):
    import google.auth._default as gdefault

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud application-default credentials
    monkeypatch.setattr(gdefault, "_get_gce_credentials", lambda *a, **k: (None, None))  # not on GCE: no metadata server
    with pytest.raises(AuthError) as err:
        create(project="demo-proj").terminate(Handle("gcp", f"{ZONE}/x", "gcp:us-central1", "running"))
    assert "\n" not in str(err.value) and str(err.value).startswith("gcp: no credentials found")


def test_offerings_from_compute_types_and_billing_catalog(httpserver):
    httpserver.expect_request(f"{BASE}/aggregated/machineTypes", method="GET").respond_with_json(REC["machineTypes"])
    httpserver.expect_request(f"{BASE}/aggregated/acceleratorTypes", method="GET").respond_with_json(REC["acceleratorTypes"])
    skus = "/v1/services/6F81-5844-456A/skus"
    httpserver.expect_request(skus, query_string={"currencyCode": "USD", "pageSize": "5000"}).respond_with_json(SKUS["pages"][0])
    httpserver.expect_request(skus, query_string={"currencyCode": "USD", "pageSize": "5000", "pageToken": "tok-2"}).respond_with_json(SKUS["pages"][1])

    offers = {o.instance_type: o for o in _provider(httpserver).offerings(["gcp:us-central1"])}
    assert set(offers) == {"a2-highgpu-1g", "g2-standard-4", "n1-standard-8+nvidia-tesla-t4:1"}  # snapshot's N1 naming
    a2, g2, n1 = offers["a2-highgpu-1g"], offers["g2-standard-4"], offers["n1-standard-8+nvidia-tesla-t4:1"]
    assert (a2.gpu, a2.gpu_count, a2.vcpus, a2.memory_gb) == ("A100-40GB", 1, 12, 85.0)
    assert a2.usd_per_hour == pytest.approx(3.673, abs=0.001)  # facts/prices.md: VM 0.739 + GPU 2.934
    assert a2.spot_usd_per_hour == pytest.approx(12 * 0.0125 + 85 * 0.0017 + 1.1455)
    assert g2.usd_per_hour == pytest.approx(0.707, abs=0.001) and g2.spot_usd_per_hour is None  # no spot core/RAM SKU
    assert (n1.gpu, n1.gpu_count) == ("T4", 1) and n1.usd_per_hour == pytest.approx(8 * 0.031611 + 30 * 0.004237 + 0.35)
    assert all(o.region == "gcp:us-central1" and "Billing Catalog" in o.source for o in offers.values())
    mt_req = next(r for r, _ in httpserver.log if r.path.endswith("/aggregated/machineTypes"))
    assert mt_req.args["filter"] == 'name eq "(a2|a3|a4|g2)-.*|n1-standard-(4|8|16|32)"'


def test_offerings_for_a_region_without_gpu_shapes_fail(httpserver):
    from orchestrator.errors import ProviderError

    httpserver.expect_request(f"{BASE}/aggregated/machineTypes", method="GET").respond_with_json(REC["machineTypes"])
    httpserver.expect_request(f"{BASE}/aggregated/acceleratorTypes", method="GET").respond_with_json(REC["acceleratorTypes"])
    httpserver.expect_request("/v1/services/6F81-5844-456A/skus").respond_with_json(SKUS["pages"][1])
    with pytest.raises(ProviderError, match="no GPU machine types visible in region asia-south2"):
        _provider(httpserver).offerings(["gcp:asia-south2"])


def test_labels_and_names_are_gcp_safe():
    from providers.gcp import label_value

    p = Placement("Acme Corp", "Chat.Bot", "Plan_1", "Chat.Bot-H100-0", "gcp:us-central1", "g2-standard-4", "L4", 1)
    name = GcpProvider.instance_name(p)
    assert name == "orch-acme-corp-chat-bot-h100-0"
    long = Placement("a" * 50, "d", "p", "r" * 40, "gcp:us-central1", "g2-standard-4", "L4", 1)
    assert len(GcpProvider.instance_name(long)) <= 63 and GcpProvider.instance_name(long) != GcpProvider.instance_name(
        Placement("a" * 50, "d", "p", "r" * 41, "gcp:us-central1", "g2-standard-4", "L4", 1)
    )
    assert label_value("Plan_1.X") == "plan_1-x"


def test_error_mapping():
    from google.api_core import exceptions as gexc

    from providers.gcp import map_error

    assert isinstance(map_error(gexc.ServiceUnavailable("x"), "w"), type(map_error(gexc.TooManyRequests("y"), "w")))
    assert type(map_error(gexc.TooManyRequests("rate"), "w")).__name__ == "TransientError"
    assert type(map_error(gexc.Forbidden("Required 'compute.instances.create' permission"), "w")).__name__ == "AuthError"
    assert type(map_error(gexc.Forbidden("Quota 'GPUS_ALL_REGIONS' exceeded"), "w")).__name__ == "QuotaError"
    assert type(map_error(gexc.ResourceExhausted("resource exhausted"), "w")).__name__ == "CapacityError"
    assert type(map_error(gexc.NotFound("gone"), "w")).__name__ == "NotFoundError"


# -- network rules: firewall rules per (project, deployment, role, port) ------------------------------------

CONTROL = ("198.51.100.7/32",)
ALLOW = ("203.0.113.0/24",)
SUBNET_RANGE = "10.128.0.0/20"  # us-central1's subnetwork of an auto-mode network
GW_TAG, REP_TAG = "orch-acme-chat-gateway", "orch-acme-chat-replica"


def _replica_spec() -> ContainerSpec:
    """What containers.vllm.build_vllm_container gives with control_cidrs."""
    from containers.spec import Ingress

    spec = _spec()
    spec.ingress = [Ingress(8000, cidrs=CONTROL, peers=("gateway",))]
    return spec


def _gateway_spec() -> ContainerSpec:
    from containers.gateway import GatewayNetwork, build_gateway_container

    return build_gateway_container(project="acme", deployment="chat", gateway="gw-0",
                                   network=GatewayNetwork(allow_cidrs=ALLOW, control_cidrs=CONTROL))


def _gw_placement() -> Placement:
    return Placement("acme", "chat", "p1", "chat-gw-0", "gcp:us-central1", "e2-standard-2", "CPU", 0, "on_demand", zone=ZONE)


def _fake_firewalls(httpserver, conflict_on_insert: bool = False) -> dict:
    """global/firewalls and global/operations as Compute Engine answers them, backed by a dict."""
    from werkzeug import Response

    store: dict[str, dict] = {}
    base = f"{BASE}/global/firewalls"
    link = "https://www.googleapis.com/compute/v1/projects/demo-proj"

    def op(kind: str, name: str, status: str = "RUNNING") -> Response:
        return Response(json.dumps({"kind": "compute#operation", "id": "8001", "name": f"operation-fw-{kind}-{name}",
                                    "operationType": kind, "targetLink": f"{link}/global/firewalls/{name}", "status": status,
                                    "progress": 0, "selfLink": f"{link}/global/operations/operation-fw-{kind}-{name}"}),
                        content_type="application/json")

    def stored(body: dict) -> dict:
        net = body["network"]
        return {"kind": "compute#firewall", "id": "5551", "creationTimestamp": "2026-12-05T10:00:00.000-08:00",
                "logConfig": {"enable": False}, "disabled": False, "selfLink": f"{link}/global/firewalls/{body['name']}",
                **body, "network": net if net.startswith("https://") else f"{link}/{net}"}

    def collection(request):
        if request.method == "POST":
            body = request.get_json()
            if conflict_on_insert or body["name"] in store:
                msg = f"The resource 'projects/demo-proj/global/firewalls/{body['name']}' already exists"
                return Response(json.dumps({"error": {"code": 409, "message": msg, "errors": [{"message": msg, "domain": "global", "reason": "alreadyExists"}]}}),
                                status=409, content_type="application/json")
            store[body["name"]] = stored(body)
            return op("insert", body["name"])
        return Response(json.dumps({"kind": "compute#firewallList", "items": list(store.values())}), content_type="application/json")

    def one(request):
        name = request.path.rsplit("/", 1)[-1]
        if name not in store:
            msg = f"The resource 'projects/demo-proj/global/firewalls/{name}' was not found"
            return Response(json.dumps({"error": {"code": 404, "message": msg, "errors": [{"message": msg, "domain": "global", "reason": "notFound"}]}}),
                            status=404, content_type="application/json")
        if request.method == "GET":
            return Response(json.dumps(store[name]), content_type="application/json")
        if request.method == "PUT":
            store[name] = stored(request.get_json())
            return op("update", name)
        del store[name]
        return op("delete", name)

    def wait(request):
        return Response(json.dumps(dict(json.loads(op("x", "y").get_data()), name=request.path.split("/")[-2], status="DONE")),
                        content_type="application/json")

    import re

    httpserver.expect_request(base).respond_with_handler(collection)
    httpserver.expect_request(re.compile(rf"^{base}/[a-z0-9-]+$")).respond_with_handler(one)
    httpserver.expect_request(re.compile(rf"^{BASE}/global/operations/[^/]+/wait$"), method="POST").respond_with_handler(wait)
    return store


def _serve_instance(httpserver, name: str = "orch-acme-chat-g2-0") -> None:
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances", method="POST").respond_with_json(REC["operationDone"])
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/{name}", method="GET").respond_with_json(dict(REC["instance"], name=name))


def _serve_subnet(httpserver) -> None:
    link = "https://www.googleapis.com/compute/v1/projects/demo-proj/regions"
    httpserver.expect_request(f"{BASE}/global/networks/default", method="GET").respond_with_json(
        {"kind": "compute#network", "name": "default", "autoCreateSubnetworks": True,
         "subnetworks": [f"{link}/europe-west4/subnetworks/default", f"{link}/us-central1/subnetworks/default"]})
    httpserver.expect_request(f"{BASE}/regions/us-central1/subnetworks/default", method="GET").respond_with_json(
        {"kind": "compute#subnetwork", "name": "default", "ipCidrRange": SUBNET_RANGE, "region": f"{link}/us-central1"})


def _posted(httpserver, path_end: str, method: str = "POST") -> list[dict]:
    return [req.get_json() for req, _ in httpserver.log if req.method == method and req.path.endswith(path_end)]


def test_replica_and_gateway_firewall_rules_hold_exactly_their_ingress(httpserver):
    store = _fake_firewalls(httpserver)
    _serve_instance(httpserver)
    _serve_instance(httpserver, "orch-acme-chat-gw-0")
    _serve_subnet(httpserver)
    p = _provider(httpserver)

    h = p.launch(_replica_spec(), _placement())
    assert h.details["private_ip"] == "10.128.0.7"  # the address source tags match (not the external one)
    rules = {b["name"]: b for b in _posted(httpserver, "/global/firewalls")}
    assert set(rules) == {"orch-acme-chat-replica-8000", "orch-acme-chat-replica-deny"}
    allow = rules["orch-acme-chat-replica-8000"]
    assert allow == {"name": "orch-acme-chat-replica-8000", "network": "global/networks/default", "direction": "INGRESS",
                     "priority": 900, "description": "orch-project=acme orch-deployment=chat orch-role=replica (managed by orch)",
                     "allowed": [{"IPProtocol": "tcp", "ports": ["8000"]}], "sourceRanges": list(CONTROL),
                     "sourceTags": [GW_TAG], "targetTags": [REP_TAG]}
    deny = rules["orch-acme-chat-replica-deny"]
    assert (deny["priority"], deny["denied"], deny["sourceRanges"], deny["targetTags"]) == (901, [{"IPProtocol": "tcp", "ports": ["8000"]}], ["0.0.0.0/0"], [REP_TAG])
    assert "allowed" not in deny or deny["allowed"] == []
    assert _insert_body(httpserver)["tags"]["items"] == ["orch-vllm", REP_TAG]
    assert not any(req.path.endswith("/subnetworks/default") for req, _ in httpserver.log)  # no "network" peer: no lookup

    p.launch(_gateway_spec(), _gw_placement())
    gw = {b["name"]: b for b in _posted(httpserver, "/global/firewalls")}
    public, control = gw["orch-acme-chat-gateway-8080"], gw["orch-acme-chat-gateway-8081"]
    assert (public["sourceRanges"], public.get("sourceTags", []), public["targetTags"]) == (sorted([ALLOW[0], SUBNET_RANGE]), [], [GW_TAG])
    assert (control["sourceRanges"], control.get("sourceTags", []), control["allowed"]) == (list(CONTROL), [], [{"IPProtocol": "tcp", "ports": ["8081"]}])
    assert gw["orch-acme-chat-gateway-deny"]["denied"] == [{"IPProtocol": "tcp", "ports": ["8080", "8081"]}]
    assert not any("0.0.0.0/0" in b.get("sourceRanges", []) for b in gw.values() if b.get("allowed"))
    assert _insert_body(httpserver)["tags"]["items"] == ["orch-vllm", GW_TAG]
    assert len(store) == 5

    # A second replica (or a rerun) finds its rules as they should be: nothing inserted or updated.
    posts = len(_posted(httpserver, "/global/firewalls"))
    p.launch(_replica_spec(), _placement())
    p.launch(_gateway_spec(), _gw_placement())
    assert len(_posted(httpserver, "/global/firewalls")) == posts and not any(r.method == "PUT" for r, _ in httpserver.log)


def test_changed_ingress_updates_the_rule_and_409_is_tolerated(httpserver):
    from containers.spec import Ingress

    store = _fake_firewalls(httpserver)
    _serve_instance(httpserver)
    p = _provider(httpserver)
    p.launch(_replica_spec(), _placement())
    changed = _replica_spec()
    changed.ingress = [Ingress(8000, cidrs=("192.0.2.9/32",), peers=("gateway",))]
    p.launch(changed, _placement())
    [put] = _posted(httpserver, "/global/firewalls/orch-acme-chat-replica-8000", method="PUT")
    assert put["sourceRanges"] == ["192.0.2.9/32"] and store["orch-acme-chat-replica-8000"]["sourceRanges"] == ["192.0.2.9/32"]
    moved = _replica_spec()
    moved.ingress = [Ingress(9000, cidrs=CONTROL, peers=("gateway",))]  # the port moved: the old port's rule goes
    p.launch(moved, _placement())
    assert sorted(store) == ["orch-acme-chat-replica-9000", "orch-acme-chat-replica-deny"]
    assert store["orch-acme-chat-replica-deny"]["denied"] == [{"IPProtocol": "tcp", "ports": ["9000"]}]

    httpserver.clear()
    _fake_firewalls(httpserver, conflict_on_insert=True)  # another launch inserted them between our get and insert
    _serve_instance(httpserver)
    h = _provider(httpserver).launch(_replica_spec(), _placement())
    assert h.state == "running" and len(_posted(httpserver, "/global/firewalls")) == 2


def test_terminate_deletes_the_rules_no_instance_uses(httpserver, caplog):
    store = _fake_firewalls(httpserver)
    _serve_instance(httpserver)
    _serve_instance(httpserver, "orch-acme-chat-gw-0")
    _serve_subnet(httpserver)
    p = _provider(httpserver)
    replica = p.launch(_replica_spec(), _placement())
    p.launch(_gateway_spec(), _gw_placement())
    assert len(store) == 5

    # The replica is deleted; the gateway (carrying its tag) still runs.
    gw_inst = dict(REC["instance"], name="orch-acme-chat-gw-0", tags={"items": ["orch-vllm", GW_TAG]})
    httpserver.expect_request(f"{BASE}/aggregated/instances", method="GET").respond_with_json({"items": {f"zones/{ZONE}": {"instances": [gw_inst]}}})
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/orch-acme-chat-g2-0", method="DELETE").respond_with_json(REC["operationDone"])
    p.terminate(replica)
    assert sorted(store) == ["orch-acme-chat-gateway-8080", "orch-acme-chat-gateway-8081", "orch-acme-chat-gateway-deny"]
    listed = next(r for r, _ in httpserver.log if r.method == "GET" and r.path.endswith("/global/firewalls"))
    assert listed.args["filter"] == 'name eq "orch-.*"'
    agg = next(r for r, _ in httpserver.log if r.path.endswith("/aggregated/instances"))
    assert agg.args["filter"] == '(labels.orch-project = "acme") AND (labels.orch-deployment = "chat")'

    # A failing delete is a warning: termination goes on.
    httpserver.clear()
    httpserver.expect_request(f"{BASE}/zones/{ZONE}/instances/orch-acme-chat-gw-0", method="DELETE").respond_with_json(REC["operationDone"])
    httpserver.expect_request(f"{BASE}/global/firewalls", method="GET").respond_with_json({"items": list(store.values())})
    httpserver.expect_request(f"{BASE}/aggregated/instances", method="GET").respond_with_json({"items": {}})
    httpserver.expect_request(f"{BASE}/global/firewalls/orch-acme-chat-gateway-8080", method="DELETE").respond_with_json(
        {"error": {"code": 400, "message": "The firewall is in use", "errors": [{"reason": "resourceInUseByAnotherResource"}]}}, status=400)
    with caplog.at_level("WARNING", logger="providers.gcp_network"):
        p.terminate(Handle("gcp", f"{ZONE}/orch-acme-chat-gw-0", "gcp:us-central1", "running", labels={"orch-project": "acme", "orch-deployment": "chat"}))
    assert "orch-acme-chat-gateway-8080" in caplog.text


def test_configured_subnetwork_range_is_looked_up_and_planned_calls_need_no_credentials(httpserver):
    _fake_firewalls(httpserver)
    _serve_instance(httpserver, "orch-acme-chat-gw-0")
    httpserver.expect_request(f"{BASE}/regions/us-central1/subnetworks/orch-sub", method="GET").respond_with_json(
        {"kind": "compute#subnetwork", "name": "orch-sub", "ipCidrRange": "10.20.0.0/24"})
    p = _provider(httpserver)
    p.subnetwork = "projects/demo-proj/regions/us-central1/subnetworks/orch-sub"
    p.launch(_gateway_spec(), _gw_placement())
    public = next(b for b in _posted(httpserver, "/global/firewalls") if b["name"] == "orch-acme-chat-gateway-8080")
    assert public["sourceRanges"] == sorted([ALLOW[0], "10.20.0.0/24"])

    calls = create(project="demo-proj").planned_calls(_gateway_spec(), _gw_placement())
    assert [c["call"] for c in calls] == ["networks.get", "firewalls.insert", "firewalls.insert", "firewalls.insert", "instances.insert"]
    assert calls[1]["params"]["firewall_resource"]["source_ranges"] == sorted([ALLOW[0], "<IP range of the subnetwork in us-central1>"])
    assert calls[-1]["params"]["instance_resource"]["tags"]["items"] == ["orch-vllm", GW_TAG]
    assert [c["call"] for c in create(project="demo-proj").planned_calls(_spec(), _placement())] == ["instances.insert"]
