"""`orch check`: AWS under moto (STS, EC2, Secrets Manager; EC2's quota codes served through moto's Service Quotas
endpoint, which implements only VPC's), GCP and Azure through their real SDKs against a local HTTP server answering
in the APIs' shapes, SSH and Kubernetes reachability against local stand-ins, no credentials at all in a subprocess,
and `orch place --use-quotas` changing a plan."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from providers.check_common import catalog_gpus, gpus_from_vcpus

REPO = Path(__file__).resolve().parent.parent


# -- AWS ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def aws(monkeypatch):
    """moto for STS/EC2/Secrets Manager; EC2 quotas per (region, code) served by moto's service-quotas endpoint."""
    moto = pytest.importorskip("moto")
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    quotas: dict[tuple[str, str], float] = {}
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code, quota_code):  # type: ignore[no-untyped-def]
        if service_code != "ec2":
            return original(self, service_code, quota_code)
        if (self.region_name, quota_code) not in quotas:
            raise NoSuchResource
        return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:123456789012:ec2/{quota_code}",
                "QuotaCode": quota_code, "QuotaName": quota_code, "Value": quotas[(self.region_name, quota_code)],
                "Unit": "None", "Adjustable": True, "GlobalQuota": False}

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    with moto.mock_aws():
        yield quotas


def _set_all(quotas: dict, region: str, value: float) -> None:
    from providers.check_aws import FAMILY_QUOTAS

    for od, spot, _ in FAMILY_QUOTAS.values():
        quotas[(region, od)] = value
        if spot:
            quotas[(region, spot)] = value


def test_aws_quotas_become_gpus_per_type(aws):
    from providers import check_aws

    _set_all(aws, "us-east-1", 0)
    aws[("us-east-1", "L-DB2E81BA")] = 64.0  # G and VT on-demand
    aws[("us-east-1", "L-417A185B")] = 192.0  # P on-demand
    r = check_aws.check(["aws:us-east-1"])
    assert r.credentials_found and r.account == "123456789012" and r.usable, (r.credentials, r.probes, r.problems)
    got = {(q.gpu, q.market): q for q in r.quotas}
    types = catalog_gpus("aws", ["aws:us-east-1"])["aws:us-east-1"]
    assert got[("A10G", "on_demand")].max_gpus == gpus_from_vcpus(64, types["A10G"]) == 16  # g5.xlarge: 4 vCPUs/GPU
    assert got[("H100", "on_demand")].max_gpus == gpus_from_vcpus(192, types["H100"])
    assert got[("H100", "on_demand")].quota.startswith("L-417A185B")
    assert got[("A10G", "spot")].max_gpus == 0 and got[("H100", "spot")].max_gpus == 0
    assert {p.what: p.status for p in r.probes} == {"secret store": "ok", "network": "ok"}


def test_aws_denied_secret_store_makes_it_unusable(aws):
    import boto3
    from botocore.stub import Stubber

    from providers import check_aws

    _set_all(aws, "us-east-1", 8)
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    stub = Stubber(sm)
    stub.add_client_error("list_secrets", service_error_code="AccessDeniedException", http_status_code=400,
                          service_message="not authorized to perform: secretsmanager:ListSecrets")
    stub.activate()
    r = check_aws.check(["aws:us-east-1"], client=lambda s, reg: sm if s == "secretsmanager" else boto3.client(s, region_name=reg))
    probe = next(p for p in r.probes if p.what == "secret store")
    assert probe.status == "denied" and "ListSecrets" in probe.detail
    assert not r.usable and r.credentials_found


def test_aws_missing_quota_code_is_a_note_not_a_failure(aws):
    from providers import check_aws

    aws[("us-east-1", "L-DB2E81BA")] = 32.0  # only G on-demand exists in this fake account
    r = check_aws.check(["aws:us-east-1"])
    assert any("L-417A185B" in n for n in r.problems)
    assert {q.gpu for q in r.quotas if q.market == "on_demand"} >= {"A10G", "L4", "T4"}


# -- GCP ----------------------------------------------------------------------------------------------------------

GCP_REGION = {
    "kind": "compute#region", "id": "1000", "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
    "name": "us-central1", "description": "us-central1", "status": "UP",
    "zones": ["https://www.googleapis.com/compute/v1/projects/demo-proj/zones/us-central1-a"],
    "quotas": [
        {"metric": "CPUS", "limit": 24, "usage": 4},
        {"metric": "NVIDIA_L4_GPUS", "limit": 8, "usage": 1},
        {"metric": "PREEMPTIBLE_NVIDIA_L4_GPUS", "limit": 16, "usage": 0},
        {"metric": "NVIDIA_H100_GPUS", "limit": 0, "usage": 0},
        {"metric": "PREEMPTIBLE_NVIDIA_H100_GPUS", "limit": 0, "usage": 0},
        {"metric": "NVIDIA_T4_GPUS", "limit": 4, "usage": 0},
    ],
    "selfLink": "https://www.googleapis.com/compute/v1/projects/demo-proj/regions/us-central1",
    "supportsPzs": False,
}


def _gcp(httpserver, secrets_status: int = 200):
    from google.auth.credentials import AnonymousCredentials

    from providers import check_gcp

    base = "/compute/v1/projects/demo-proj"
    httpserver.expect_request(f"{base}/regions/us-central1", method="GET").respond_with_json(GCP_REGION)
    httpserver.expect_request(f"{base}/global/firewalls", method="GET").respond_with_json(
        {"kind": "compute#firewallList", "id": "projects/demo-proj/global/firewalls", "items": [
            {"kind": "compute#firewall", "name": "default-allow-ssh", "network": f"{base}/global/networks/default",
             "direction": "INGRESS", "priority": 65534, "sourceRanges": ["0.0.0.0/0"],
             "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}]})
    if secrets_status == 200:
        httpserver.expect_request("/v1/projects/demo-proj/secrets", method="GET").respond_with_json(
            {"secrets": [{"name": "projects/123/secrets/orch-api-key", "replication": {"automatic": {}},
                          "createTime": "2026-11-02T10:00:00.000000Z", "etag": "\"16250d6e1c1b6e\""}], "totalSize": 1})
    else:
        httpserver.expect_request("/v1/projects/demo-proj/secrets", method="GET").respond_with_json(
            {"error": {"code": 403, "message": "Permission 'secretmanager.secrets.list' denied for resource "
                       "'projects/demo-proj' (or it may not exist).", "status": "PERMISSION_DENIED"}}, status=403)
    endpoint = httpserver.url_for("/").rstrip("/")
    return check_gcp.check(["gcp:us-central1"], {"project": "demo-proj"}, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": endpoint}, secretmanager_url=endpoint)


def test_gcp_regional_quotas_and_permissions(httpserver):
    r = _gcp(httpserver)
    got = {(q.gpu, q.market): q for q in r.quotas}
    assert (got[("L4", "on_demand")].max_gpus, got[("L4", "on_demand")].usage) == (8, 1.0)
    assert got[("L4", "spot")].max_gpus == 16 and got[("L4", "spot")].quota == "PREEMPTIBLE_NVIDIA_L4_GPUS"
    assert got[("T4", "spot")].max_gpus == 4 and got[("T4", "spot")].quota == "NVIDIA_T4_GPUS"  # no preemptible quota
    assert got[("H100", "on_demand")].max_gpus == 0
    assert any("NVIDIA_A100_80GB_GPUS" in n for n in r.problems)  # the region lists no such quota: said, not guessed
    assert r.usable and r.account == "demo-proj"
    assert {p.what: p.status for p in r.probes} == {"network": "ok", "secret store": "ok"}


def test_gcp_secret_manager_denied(httpserver):
    r = _gcp(httpserver, secrets_status=403)
    probe = next(p for p in r.probes if p.what == "secret store")
    assert probe.status == "denied" and not r.usable


# -- Azure --------------------------------------------------------------------------------------------------------

SUB, RG = "sub-123", "rg-orch"


def _usage(name: str, local: str, limit: int, current: int = 0) -> dict:
    return {"unit": "Count", "currentValue": current, "limit": limit, "name": {"value": name, "localizedValue": local}}


def _azure(httpserver, usages: list[dict]):
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    from providers import check_azure

    class Cred:
        def get_token(self, *scopes, **kw):  # type: ignore[no-untyped-def]
            return AccessToken("fake-token", int(time.time()) + 3600)

    class PlainArm(ARMChallengeAuthenticationPolicy):
        def on_request(self, request):  # type: ignore[no-untyped-def]
            request.context["enforce_https"] = False
            super().on_request(request)

    class PlainVault(BearerTokenCredentialPolicy):
        def on_request(self, request):  # type: ignore[no-untyped-def]
            request.context["enforce_https"] = False
            super().on_request(request)

    httpserver.expect_request(f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/usages",
                              method="GET").respond_with_json({"value": usages})
    httpserver.expect_request(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
                              "networkSecurityGroups", method="GET").respond_with_json({"value": []})
    httpserver.expect_request("/vault/secrets", method="GET").respond_with_json({"value": [
        {"id": "https://orch-kv.vault.azure.net/secrets/orch-api-key", "attributes": {
            "enabled": True, "created": 1764000000, "updated": 1764000000, "recoveryLevel": "Recoverable+Purgeable"},
         "tags": {}}], "nextLink": None})
    cred = Cred()
    return check_azure.check(
        ["azure:eastus"], {"subscription_id": SUB, "resource_group": RG, "key_vault": "orch-kv"}, credential=cred,
        base_url=httpserver.url_for("/").rstrip("/"),
        client_kwargs={"authentication_policy": PlainArm(cred, "https://management.azure.com/.default")},
        vault_url=httpserver.url_for("/vault"), vault_policy=PlainVault(cred, "https://vault.azure.net/.default"))


def test_azure_usage_becomes_gpus_bounded_by_the_regional_total(httpserver):
    r = _azure(httpserver, [
        _usage("cores", "Total Regional vCPUs", 100, 4),
        _usage("lowPriorityCores", "Total Regional Low-priority vCPUs", 48),
        _usage("standardNCADSA100v4Family", "Standard NCADS_A100_v4 Family vCPUs", 96),
        _usage("Standard NCASv3_T4 Family", "Standard NCASv3_T4 Family vCPUs", 200),  # spacing as some accounts show
        _usage("standardNDSH100v5Family", "Standard NDSH100v5 Family vCPUs", 0),
    ])
    got = {(q.gpu, q.market): q for q in r.quotas}
    types = catalog_gpus("azure", ["azure:eastus"])["azure:eastus"]
    a100 = [t for t in types["A100-80GB"] if "NC" in t[0]]
    assert got[("A100-80GB", "on_demand")].max_gpus == gpus_from_vcpus(96, a100) == 4
    assert got[("T4", "on_demand")].max_gpus == gpus_from_vcpus(100, types["T4"])  # the regional 100 binds, not 200
    assert got[("T4", "spot")].max_gpus == gpus_from_vcpus(48, types["T4"])
    assert got[("H100", "on_demand")].max_gpus == 0
    assert any("MI300X" in n for n in r.problems)  # no usage row for its family: a note
    assert r.usable and {p.what: p.status for p in r.probes} == {"network": "ok", "secret store": "ok"}


# -- on-prem and this machine -------------------------------------------------------------------------------------

def _listener(banner: bytes | None) -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if banner:
                conn.sendall(banner)
            time.sleep(0.2)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_baremetal_ssh_reachability():
    from providers.check_onprem import check_baremetal

    ssh, ssh_port = _listener(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
    web, web_port = _listener(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        site = SimpleNamespace(name="dc1", hosts=[f"ops@127.0.0.1:{ssh_port}", f"ops@127.0.0.1:{web_port}",
                                                  f"ops@127.0.0.1:{closed_port}"])
        t0 = time.perf_counter()
        r = check_baremetal(site, timeout_s=1.0)
        assert time.perf_counter() - t0 < 5
    finally:
        ssh.close()
        web.close()
    status = [p.status for p in r.probes]
    assert status == ["ok", "error", "error"] and "OpenSSH" in r.probes[0].detail
    assert "not with an SSH banner" in r.probes[1].detail
    assert not r.usable


def test_kubernetes_api_reachable(httpserver, tmp_path):
    from providers.check_onprem import check_kubernetes

    httpserver.expect_request("/version/").respond_with_json(  # the client asks /version/
        {"major": "1", "minor": "31", "gitVersion": "v1.31.2", "gitCommit": "5864a4677267e6adeae276ad85882a8714d69d9d",
         "gitTreeState": "clean", "buildDate": "2024-10-22T20:28:14Z", "goVersion": "go1.22.8", "compiler": "gc",
         "platform": "linux/amd64"})
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": httpserver.url_for("").rstrip("/")}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}]}))
    r = check_kubernetes(SimpleNamespace(name="k8s", kube_context="lab"), kubeconfig=str(cfg))
    assert r.usable and "v1.31.2" in r.probes[0].detail
    missing = check_kubernetes(SimpleNamespace(name="k8s", kube_context="lab"), kubeconfig=str(tmp_path / "none"))
    assert not missing.credentials_found and "no usable kubeconfig" in missing.credentials


# -- the command, with no credentials at all ----------------------------------------------------------------------

def _bare_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "KUBECONFIG"))}
    return {**keep, "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", "ORCH_VLLM_PYTHON": "/nonexistent/python"}


def _orch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], check=False, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_no_credentials_clear_table_and_exit_codes(tmp_path):
    env = _bare_env(tmp_path)
    every = _orch(["check"], env)
    assert every.returncode == 0, every.stderr  # nothing is used without a file
    assert "Traceback" not in every.stdout + every.stderr
    for provider in ("aws", "gcp", "azure", "local", "kubernetes"):
        assert provider in every.stdout
    assert "none found" in every.stdout

    used = _orch(["check", "examples/quickstart.yaml", "--json"], env)
    assert used.returncode == 3, used.stderr
    doc = json.loads(used.stdout)
    assert {p["provider"] for p in doc["providers"]} == {"aws", "gcp"}
    assert not doc["ready"] and all(p["used"] and not p["usable"] for p in doc["providers"])
    assert "Traceback" not in used.stderr
    assert "testing" not in used.stdout  # no secret value anywhere (the moto keys are not in this env)


# -- place --use-quotas -------------------------------------------------------------------------------------------

def test_use_quotas_changes_the_plan(aws, monkeypatch, tmp_path):
    from orchestrator.cli.check import checked_catalog
    from orchestrator.placement import place
    from orchestrator.spec.loader import load_spec

    spec_file = tmp_path / "d.yaml"
    spec_file.write_text("""
version: 1
project: qtest
deployments:
  - name: chat
    model: llama-3.1-8b-instruct
    traffic: {requests_per_second: 4, input_tokens: 800, output_tokens: 200}
    slo: {ttft_p95_ms: 3000, tpot_p95_ms: 80}
providers:
  aws: {regions: [us-east-1, us-west-2]}
""")
    loaded = load_spec(spec_file)
    before = place(loaded, with_fallbacks=False)
    chosen = before.deployments[0].replicas[0]
    for region in ("us-east-1", "us-west-2"):
        _set_all(aws, region, 1024)
    from providers.check_aws import FAMILY_QUOTAS, family

    code = FAMILY_QUOTAS[family(chosen.instance_type)][0]
    aws[(chosen.region.split(":", 1)[1], code)] = 0  # the account may not run that family where the plan put it
    msgs: list[str] = []
    catalog = checked_catalog(loaded.spec, msgs.append)
    after = place(loaded, catalog=catalog, with_fallbacks=False)
    moved = after.deployments[0].replicas[0]
    assert after.status in ("optimal", "feasible")
    assert (moved.region, moved.gpu) != (chosen.region, chosen.gpu)
    assert any("quota limit(s) from aws" in m for m in msgs)
