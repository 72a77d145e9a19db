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
