"""Azure provider: the real ComputeManagementClient (azure-mgmt-compute, azure-core pipeline, ARM long-running-operation
polling) with a fake TokenCredential, against a local HTTP server (pytest-httpserver) answering like ARM; and the
Retail Prices reader (httpx) against recorded-shape pages served locally."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from containers.spec import ContainerSpec
from orchestrator.errors import AuthError, CapacityError, NotFoundError, QuotaError
from providers.azure import AzureProvider, create
from providers.base import LABEL_PROJECT, Handle, Placement

SUB, RG = "sub-123", "rg-orch"
RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
REC = json.loads((RECORDINGS / "azure_compute.json").read_text().replace("/SUB/", f"/{SUB}/").replace("/RG/", f"/{RG}/"))
VM_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/orch-acme-chat-t4-0"
SUBNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/orch-vnet/subnets/default"


class FakeCredential:
    """A TokenCredential: hands out a fixed token and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.calls += 1
        return AccessToken("fake-arm-token", int(time.time()) + 3600)


class PlainHttpAuth(ARMChallengeAuthenticationPolicy):
    """ARM's bearer-token policy, allowed over plain http for the local test server only."""

    def on_request(self, request) -> None:  # type: ignore[no-untyped-def]
        request.context["enforce_https"] = False
        super().on_request(request)


def _provider(httpserver, cred: FakeCredential | None = None) -> AzureProvider:
    cred = cred or FakeCredential()
    return create(
        subscription_id=SUB,
        resource_group=RG,
        location="eastus",
        credential=cred,
        base_url=httpserver.url_for("/").rstrip("/"),
        subnet_id=SUBNET,
        ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtest orch@test",
        polling_interval_s=0,
        prices_url=httpserver.url_for("/").rstrip("/"),
        client_kwargs={"authentication_policy": PlainHttpAuth(cred, "https://management.azure.com/.default")},
        sleep=lambda s: None,
    )


def _spec() -> ContainerSpec:
    return ContainerSpec(name="chat-0", image="vllm/vllm-openai:v0.32.0", args=["Qwen/Qwen2.5-7B-Instruct", "--port", "8000"], ports={"http": 8000}, gpus=1, gpu_type="T4")


def _placement(market: str = "spot") -> Placement:
    return Placement("acme", "chat", "p1", "chat-t4-0", "azure:eastus", "Standard_NC4as_T4_v3", "T4", 1, market)  # type: ignore[arg-type]


def _serve_vm_reads(httpserver) -> None:
    httpserver.expect_request(VM_PATH, method="GET").respond_with_json(REC["vmSucceeded"])
    nic = REC["vmSucceeded"]["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
    httpserver.expect_request(nic, method="GET").respond_with_json(REC["nic"])
    httpserver.expect_request(REC["nic"]["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"], method="GET").respond_with_json(REC["publicIp"])


def _async_op(httpserver, name: str) -> str:
    return httpserver.url_for(f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations/{name}") + "?api-version=2024-11-01"


def test_spot_launch_polls_the_long_running_operation(httpserver):
    op_path = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations/op1"
    httpserver.expect_request(VM_PATH, method="PUT").respond_with_json(
        REC["vmCreating"], status=201, headers={"Azure-AsyncOperation": _async_op(httpserver, "op1"), "Retry-After": "0"}
    )
    httpserver.expect_oneshot_request(op_path, method="GET").respond_with_json(REC["asyncInProgress"])
    httpserver.expect_request(op_path, method="GET").respond_with_json(REC["asyncSucceeded"])
    _serve_vm_reads(httpserver)
    cred = FakeCredential()

    h = _provider(httpserver, cred).launch(_spec(), _placement())

    put = next(req for req, _ in httpserver.log if req.method == "PUT")
    assert put.headers["Authorization"] == "Bearer fake-arm-token" and cred.calls >= 1
    body = put.get_json()
    props = body["properties"]
    assert body["location"] == "eastus"
    assert body["tags"] == {"orch-project": "acme", "orch-deployment": "chat", "orch-plan": "p1", "orch-replica": "chat-t4-0", "orch-port": "8000"}
    assert props["hardwareProfile"] == {"vmSize": "Standard_NC4as_T4_v3"}
    assert (props["priority"], props["evictionPolicy"], props["billingProfile"]) == ("Spot", "Delete", {"maxPrice": -1})
    assert props["storageProfile"]["imageReference"]["offer"] == "ubuntu-hpc"
    script = base64.b64decode(props["osProfile"]["customData"]).decode()
    assert "vllm/vllm-openai:v0.32.0" in script and "Qwen/Qwen2.5-7B-Instruct" in script
    ipc = props["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"]
    assert ipc["subnet"]["id"] == SUBNET
    polls = [req for req, _ in httpserver.log if req.path.endswith("/operations/op1")]
    assert len(polls) == 2  # InProgress, then Succeeded
    assert h.id == "orch-acme-chat-t4-0" and h.region == "azure:eastus" and h.state == "running"
    assert h.endpoint == "http://20.121.33.44:8000" and h.labels[LABEL_PROJECT] == "acme"


def test_on_demand_has_no_spot_fields():
    p = create(subscription_id=SUB, resource_group=RG, subnet_id=SUBNET)  # planned_calls needs no credentials
    call = p.planned_calls(_spec(), _placement("on_demand"))[0]
    props = call["params"]["parameters"]["properties"]
    assert "priority" not in props and "billingProfile" not in props
    assert "throwaway key" in props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"]
    assert "vllm/vllm-openai:v0.32.0" in call["startup_script"]


def test_allocation_failure_in_async_operation_is_capacity_error(httpserver):
    op_path = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations/op2"
    httpserver.expect_request(VM_PATH, method="PUT").respond_with_json(
        REC["vmCreating"], status=201, headers={"Azure-AsyncOperation": _async_op(httpserver, "op2"), "Retry-After": "0"}
    )
    httpserver.expect_request(op_path, method="GET").respond_with_json(REC["asyncAllocationFailed"])
    with pytest.raises(CapacityError, match="AllocationFailed"):
        _provider(httpserver).launch(_spec(), _placement())
    assert sum(1 for req, _ in httpserver.log if req.method == "PUT") == 1  # capacity is not retried


def test_quota_error(httpserver):
    httpserver.expect_request(VM_PATH, method="PUT").respond_with_json(REC["quotaError"], status=409)
    with pytest.raises(QuotaError, match="quota"):
        _provider(httpserver).launch(_spec(), _placement())


def test_throttling_is_retried(httpserver):
    httpserver.expect_oneshot_request(VM_PATH, method="PUT").respond_with_json(REC["throttled"], status=429, headers={"Retry-After": "0"})
    httpserver.expect_request(VM_PATH, method="PUT").respond_with_json(REC["vmSucceeded"], status=200)
    _serve_vm_reads(httpserver)
    p = _provider(httpserver)
    p._client_kwargs["retry_total"] = 0  # let orch's with_retries do the retrying, not azure-core's policy
    h = p.launch(_spec(), _placement())
    assert h.state == "running"
    assert sum(1 for req, _ in httpserver.log if req.method == "PUT") == 2


def test_list_by_tags_describe_and_terminate(httpserver):
    other = dict(REC["vmSucceeded"], name="orch-other-0", tags={"orch-project": "other"})
    httpserver.expect_request(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines", method="GET").respond_with_json(
        {"value": [REC["vmSucceeded"], other]}
    )
    p = _provider(httpserver)
    assert [h.id for h in p.list({LABEL_PROJECT: "acme"})] == ["orch-acme-chat-t4-0"]
    assert p.list({LABEL_PROJECT: "acme"}, regions=["azure:westeurope"]) == []

    httpserver.expect_request(VM_PATH, method="DELETE").respond_with_data("", status=200)
    p.terminate(Handle("azure", "orch-acme-chat-t4-0", "azure:eastus", "running"))
    gone = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/orch-gone"
    httpserver.expect_request(gone, method="DELETE").respond_with_json(REC["notFound"], status=404)
    p.terminate(Handle("azure", "orch-gone", "azure:eastus", "running"))  # already gone: fine
    httpserver.expect_request(gone, method="GET").respond_with_json(REC["notFound"], status=404)
    with pytest.raises(NotFoundError):
        p.describe("orch-gone", "azure:eastus")


def test_missing_credentials_is_one_line_auth_error(httpserver):
    from azure.core.exceptions import ClientAuthenticationError

    class NoCredential:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials: ...")

    p = _provider(httpserver)
    p._credential = NoCredential()
    p._client_kwargs["authentication_policy"] = PlainHttpAuth(p._credential, "https://management.azure.com/.default")
    with pytest.raises(AuthError) as err:
        p.describe("orch-acme-chat-t4-0", "azure:eastus")
    assert "\n" not in str(err.value) and str(err.value).startswith("azure: no credentials found")


def test_missing_credentials_through_default_chain(monkeypatch, tmp_path):
    """The real DefaultAzureCredential with nothing configured (no env, no az CLI login) -> one-line AuthError."""
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no az / azd / pwsh binaries
    import azure.identity

    real = azure.identity.DefaultAzureCredential
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: real(exclude_managed_identity_credential=True))
    p = create(subscription_id=SUB, resource_group=RG, base_url="https://127.0.0.1:9", sleep=lambda s: None)
    with pytest.raises(AuthError) as err:
        p.describe("x", "azure:eastus")
    assert "\n" not in str(err.value) and "az login" in str(err.value)


def test_offerings_from_retail_prices(httpserver):
    pages = json.loads((RECORDINGS / "azure_retail_prices_eastus.json").read_text())["pages"]
    pages[0]["NextPageLink"] = httpserver.url_for("/api/retail/prices") + "?api-version=2023-01-01-preview&$skip=1000"
    filt = "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and priceType eq 'Consumption'"
    httpserver.expect_request("/api/retail/prices", query_string={"api-version": "2023-01-01-preview", "$filter": filt}).respond_with_json(pages[0])
    httpserver.expect_request("/api/retail/prices", query_string={"api-version": "2023-01-01-preview", "$skip": "1000"}).respond_with_json(pages[1])

    offers = {o.instance_type: o for o in _provider(httpserver).offerings(["azure:eastus"])}
    assert set(offers) == {"Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4", "Standard_ND96isr_H100_v5"}
    t4 = offers["Standard_NC4as_T4_v3"]
    assert (t4.gpu, t4.gpu_count, t4.vcpus, t4.memory_gb) == ("T4", 1, 4, 28)
    assert t4.usd_per_hour == 0.526 and t4.spot_usd_per_hour == 0.21  # Windows and Low Priority rows ignored
    h100 = offers["Standard_ND96isr_H100_v5"]
    assert (h100.gpu, h100.gpu_count, h100.usd_per_hour, h100.spot_usd_per_hour) == ("H100", 8, 98.32, None)
    assert all(o.region == "azure:eastus" and "Retail Prices" in o.source for o in offers.values())


def test_vm_names_are_valid():
    p = Placement("Acme", "chat", "p1", "Chat_T4.0", "azure:eastus", "Standard_NC4as_T4_v3", "T4", 1)
    assert AzureProvider.vm_name(p) == "orch-acme-chat-t4-0"


def test_missing_subnet_is_a_user_error_at_launch_and_a_placeholder_in_dry_runs():
    from orchestrator.errors import UserError

    p = create(subscription_id=SUB, resource_group=RG, credential=FakeCredential())
    with pytest.raises(UserError, match="subnet_id"):
        p.launch(_spec(), _placement())
    call = p.planned_calls(_spec(), _placement())[0]
    nic = call["params"]["parameters"]["properties"]["networkProfile"]["networkInterfaceConfigurations"][0]
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == "<set providers.azure.options.subnet_id>"


def test_one_off_ssh_key_is_an_openssh_public_key():
    from providers.azure import _one_off_ssh_key

    key = _one_off_ssh_key()
    assert key.startswith("ssh-rsa AAAA") and "PRIVATE" not in key


# -- network rules: an NSG per (project, deployment, role) on the VM's NIC, an ASG for the gateways ----------

CONTROL = ("198.51.100.7/32",)
ALLOW = ("203.0.113.0/24",)
NET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"
GW_VM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/orch-acme-chat-gw-0"
ASG_ID = f"{NET}/applicationSecurityGroups/orch-acme-chat-gateway-eastus"
REP_NSG, GW_NSG = f"{NET}/networkSecurityGroups/orch-acme-chat-replica-eastus", f"{NET}/networkSecurityGroups/orch-acme-chat-gateway-eastus"


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


def _net_provider(httpserver) -> AzureProvider:
    p = _provider(httpserver)
    p.key_vault = "orch-kv"  # the gateway's keys come from Key Vault
    return p


def _gw_placement() -> Placement:
    return Placement("acme", "chat", "p1", "chat-gw-0", "azure:eastus", "Standard_D2s_v5", "CPU", 0, "on_demand")


def _fake_network(httpserver) -> dict:
    """Microsoft.Network NSGs and ASGs as ARM answers them (PUT/DELETE as long-running operations), backed by a dict."""
    import re

    from werkzeug import Response

    store: dict[str, dict] = {}
    ops = f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/eastus"

    def js(body, status=200, headers=None):
        return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")

    def resource(request):
        path = request.path
        if request.method == "GET" and path.endswith(("/networkSecurityGroups", "/applicationSecurityGroups")):
            return js({"value": [v for k, v in store.items() if k.rsplit("/", 1)[0] == path]})
        if request.method == "PUT":
            body = request.get_json()
            kind = path.split("/")[-2]
            item = {**body, "id": path, "name": path.rsplit("/", 1)[-1], "type": f"Microsoft.Network/{kind}",
                    "etag": 'W/"1"', "properties": {**body["properties"], "provisioningState": "Succeeded"}}
            if kind == "networkSecurityGroups":
                item["properties"]["securityRules"] = [
                    {**r, "id": f"{path}/securityRules/{r['name']}", "etag": 'W/"1"', "type": f"Microsoft.Network/{kind}/securityRules",
                     "properties": {"provisioningState": "Succeeded", "sourcePortRanges": [], "destinationPortRanges": [],
                                    "sourceAddressPrefixes": [], "destinationAddressPrefixes": [], **r["properties"]}}
                    for r in body["properties"]["securityRules"]]
                item["properties"]["defaultSecurityRules"] = [{"name": "AllowVnetInBound", "properties": {"priority": 65000, "access": "Allow"}}]
            created = path not in store
            store[path] = item
            return js(dict(item, properties={**item["properties"], "provisioningState": "Updating"}), 201 if created else 200,
                      {"Azure-AsyncOperation": httpserver.url_for(f"{ops}/operations/put-1") + "?api-version=2023-09-01", "Retry-After": "0"})
        if path not in store:
            return js({"error": {"code": "NotFound", "message": f"Resource {path} not found."}}, 404)
        if request.method == "GET":
            return js(store[path])
        del store[path]  # DELETE
        return js({}, 202, {"Azure-AsyncOperation": httpserver.url_for(f"{ops}/operations/del-1") + "?api-version=2023-09-01",
                            "Location": httpserver.url_for(f"{ops}/operationResults/del-1") + "?api-version=2023-09-01", "Retry-After": "0"})

    httpserver.expect_request(re.compile(rf"^{NET}/(networkSecurityGroups|applicationSecurityGroups)(/[^/]+)?$")).respond_with_handler(resource)
    httpserver.expect_request(re.compile(rf"^{ops}/operations/[^/]+$"), method="GET").respond_with_json(REC["asyncSucceeded"])
    httpserver.expect_request(re.compile(rf"^{ops}/operationResults/[^/]+$"), method="GET").respond_with_data("", status=204)
    return store


def _serve_vms(httpserver) -> None:
    for path, name in ((VM_PATH, "orch-acme-chat-t4-0"), (GW_VM, "orch-acme-chat-gw-0")):
        httpserver.expect_request(path, method="PUT").respond_with_json(dict(REC["vmSucceeded"], name=name))
        httpserver.expect_request(path, method="GET").respond_with_json(dict(REC["vmSucceeded"], name=name))
        httpserver.expect_request(path, method="DELETE").respond_with_data("", status=200)
    nic = REC["vmSucceeded"]["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
    httpserver.expect_request(nic, method="GET").respond_with_json(REC["nic"])
    httpserver.expect_request(REC["nic"]["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"], method="GET").respond_with_json(REC["publicIp"])


def _rules(store: dict, nsg: str) -> dict[str, dict]:
    keep = ("priority", "access", "direction", "protocol", "destinationPortRange", "destinationPortRanges", "sourceAddressPrefix",
            "sourceAddressPrefixes", "sourceApplicationSecurityGroups")
    return {r["name"]: {k: r["properties"][k] for k in keep if r["properties"].get(k)} for r in store[nsg]["properties"]["securityRules"]}


def _vm_nic(httpserver, vm_path: str) -> dict:
    """The NIC configuration of the last VM PUT, read through the compute SDK's own model (so the fields are real)."""
    from azure.mgmt.compute.models import VirtualMachine

    body = [req.get_json() for req, _ in httpserver.log if req.method == "PUT" and req.path == vm_path][-1]
    return VirtualMachine(body).properties.network_profile.network_interface_configurations[0].properties


def test_replica_and_gateway_nsgs_hold_exactly_their_ingress(httpserver):
    store = _fake_network(httpserver)
    _serve_vms(httpserver)
    p = _net_provider(httpserver)

    p.launch(_replica_spec(), _placement())
    assert set(store) == {ASG_ID, REP_NSG}  # the gateways' ASG exists before any gateway launched
    assert store[REP_NSG]["tags"] == {"orch-project": "acme", "orch-deployment": "chat", "orch-role": "replica"}
    assert store[ASG_ID]["tags"]["orch-role"] == "gateway" and store[REP_NSG]["location"] == "eastus"
    assert _rules(store, REP_NSG) == {
        "allow-8000-cidrs": {"priority": 100, "access": "Allow", "direction": "Inbound", "protocol": "Tcp", "destinationPortRange": "8000", "sourceAddressPrefixes": list(CONTROL)},
        "allow-8000-gateway": {"priority": 101, "access": "Allow", "direction": "Inbound", "protocol": "Tcp", "destinationPortRange": "8000", "sourceApplicationSecurityGroups": [{"id": ASG_ID}]},
        "deny-other": {"priority": 4096, "access": "Deny", "direction": "Inbound", "protocol": "Tcp", "destinationPortRanges": ["8000"], "sourceAddressPrefix": "*"},
    }
    nic = _vm_nic(httpserver, VM_PATH)
    assert nic.network_security_group.id == REP_NSG and not nic.ip_configurations[0].properties.application_security_groups
    polls = [r for r, _ in httpserver.log if "/Microsoft.Network/locations/eastus/operations/" in r.path]
    assert len(polls) == 2  # the ASG's and the NSG's PUT, each polled to Succeeded

    p.launch(_gateway_spec(), _gw_placement())
    rules = _rules(store, GW_NSG)
    assert rules["allow-8080-cidrs"]["sourceAddressPrefixes"] == list(ALLOW)
    assert rules["allow-8080-network"]["sourceAddressPrefix"] == "VirtualNetwork"
    assert rules["allow-8081-cidrs"]["sourceAddressPrefixes"] == list(CONTROL) and rules["allow-8081-cidrs"]["destinationPortRange"] == "8081"
    assert rules["deny-other"]["destinationPortRanges"] == ["8080", "8081"]
    assert [r["priority"] for r in rules.values()] == [100, 101, 102, 4096]
    assert not any("*" in r.get("sourceAddressPrefixes", []) or r.get("sourceAddressPrefix") == "*" for r in rules.values() if r["access"] == "Allow")
    gw_nic = _vm_nic(httpserver, GW_VM)
    assert gw_nic.network_security_group.id == GW_NSG
    assert [a.id for a in gw_nic.ip_configurations[0].properties.application_security_groups] == [ASG_ID]

    # A rerun (or another replica) finds both as they should be: no network PUT at all.
    puts = sum(1 for r, _ in httpserver.log if r.method == "PUT" and "/Microsoft.Network/" in r.path)
    p.launch(_replica_spec(), _placement())
    p.launch(_gateway_spec(), _gw_placement())
    assert sum(1 for r, _ in httpserver.log if r.method == "PUT" and "/Microsoft.Network/" in r.path) == puts == 3


def test_changed_ingress_rewrites_the_nsg(httpserver):
    from containers.spec import Ingress

    store = _fake_network(httpserver)
    _serve_vms(httpserver)
    p = _net_provider(httpserver)
    p.launch(_replica_spec(), _placement())
    changed = _replica_spec()
    changed.ingress = [Ingress(8000, cidrs=("192.0.2.9/32",), peers=("gateway",))]
    p.launch(changed, _placement())
    assert _rules(store, REP_NSG)["allow-8000-cidrs"]["sourceAddressPrefixes"] == ["192.0.2.9/32"]


def test_terminate_deletes_unused_nsgs_then_the_asg(httpserver, caplog):
    store = _fake_network(httpserver)
    _serve_vms(httpserver)
    p = _net_provider(httpserver)
    p.launch(_replica_spec(), _placement())
    p.launch(_gateway_spec(), _gw_placement())
    nic = f"{NET}/networkInterfaces/orch-acme-chat-gw-0-nic"
    store[GW_NSG]["properties"]["networkInterfaces"] = [{"id": nic}]  # ARM lists the NICs an NSG is on
    labels = {"orch-project": "acme", "orch-deployment": "chat"}

    p.terminate(Handle("azure", "orch-acme-chat-t4-0", "azure:eastus", "running", labels=labels))
    assert set(store) == {GW_NSG, ASG_ID}  # the replica NSG went; the gateway's is on a NIC, so the ASG stays
    deletes = [r for r, _ in httpserver.log if r.method == "DELETE" and "/Microsoft.Network/" in r.path]
    assert [r.path for r in deletes] == [REP_NSG] and any(r.path.endswith("/operations/del-1") for r, _ in httpserver.log)

    p.terminate(Handle("azure", "orch-acme-chat-gw-0", "azure:eastus", "running", labels=labels))
    assert store == {}  # its own NIC went with the VM: the NSG, then the ASG

    # A refused delete is a warning; termination goes on.
    p.launch(_replica_spec(), _placement())
    assert set(store) == {REP_NSG, ASG_ID}
    httpserver.clear()
    _serve_vms(httpserver)
    httpserver.expect_request(f"{NET}/networkSecurityGroups", method="GET").respond_with_json({"value": [store[REP_NSG]]})
    httpserver.expect_request(f"{NET}/applicationSecurityGroups", method="GET").respond_with_json({"value": []})
    httpserver.expect_request(REP_NSG, method="DELETE").respond_with_json(
        {"error": {"code": "InUseNetworkSecurityGroupCannotBeDeleted", "message": "Network security group is in use."}}, status=400)
    with caplog.at_level("WARNING", logger="providers.azure_network"):
        p.terminate(Handle("azure", "orch-acme-chat-t4-0", "azure:eastus", "running", labels=labels))
    assert "InUseNetworkSecurityGroupCannotBeDeleted" in caplog.text


def test_planned_calls_list_the_asg_and_nsg_without_credentials():
    p = create(subscription_id=SUB, resource_group=RG, subnet_id=SUBNET, key_vault="orch-kv")
    calls = p.planned_calls(_gateway_spec(), _gw_placement())
    assert [c["call"] for c in calls] == ["application_security_groups.begin_create_or_update",
                                          "network_security_groups.begin_create_or_update", "virtual_machines.begin_create_or_update"]
    nsg = calls[1]["params"]
    assert nsg["name"] == "orch-acme-chat-gateway-eastus" and nsg["parameters"]["tags"]["orch-role"] == "gateway"
    nic = calls[2]["params"]["parameters"]["properties"]["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
    assert nic["networkSecurityGroup"] == {"id": GW_NSG}
    assert nic["ipConfigurations"][0]["properties"]["applicationSecurityGroups"] == [{"id": ASG_ID}]
    assert [c["call"] for c in p.planned_calls(_spec(), _placement())] == ["virtual_machines.begin_create_or_update"]
