"""AWS provider against moto (EC2, SSM) and botocore's Stubber (Pricing API, which moto does not implement)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import boto3
from botocore.exceptions import ClientError  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from moto import mock_aws  # noqa: E402

from containers.spec import ContainerSpec  # noqa: E402
from orchestrator.errors import AuthError, CapacityError, NotFoundError, QuotaError  # noqa: E402
from providers.aws import AwsProvider, create  # noqa: E402
from providers.base import LABEL_PROJECT, LABEL_REPLICA, Placement  # noqa: E402
from providers.pricing.aws import parse_price_list, price_filters  # noqa: E402

RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def _ami(ec2) -> str:
    """The AMI id given to the provider (moto accepts any id; a real one would be the Deep Learning AMI)."""
    return "ami-0123456789abcdef0"


def _spec() -> ContainerSpec:
    return ContainerSpec(
        name="chat-0",
        image="vllm/vllm-openai:v0.32.0",
        args=["meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "1", "--port", "8000"],
        ports={"http": 8000},
        gpus=1,
        gpu_type="A10G",
        shm_gb=16,
    )


def _placement(market: str = "on_demand", replica: str = "chat-g5-0") -> Placement:
    return Placement(
        project="acme",
        deployment="chat",
        plan_id="p1",
        replica=replica,
        region=f"aws:{REGION}",
        instance_type="g5.xlarge",
        gpu="A10G",
        gpu_count=1,
        market=market,  # type: ignore[arg-type]
    )


def _provider(ec2, **kw) -> AwsProvider:
    return create(region=REGION, ami_id=_ami(ec2), sleep=lambda s: None, **kw)


def test_launch_tags_user_data_and_idempotent_token(aws_env):
    ec2 = aws_env
    p = _provider(ec2)
    h = p.launch(_spec(), _placement())
    assert h.provider == "aws" and h.region == "aws:us-east-1" and h.state in ("pending", "running")
    assert h.labels[LABEL_PROJECT] == "acme" and h.labels[LABEL_REPLICA] == "chat-g5-0"

    inst = ec2.describe_instances(InstanceIds=[h.id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["orch-deployment"] == "chat" and tags["orch-plan"] == "p1" and tags["Name"] == "orch-acme-chat-g5-0"
    assert inst["InstanceType"] == "g5.xlarge" and "InstanceLifecycle" not in inst
    vol_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    vtags = {t["Key"]: t["Value"] for t in ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["Tags"]}
    assert vtags["orch-replica"] == "chat-g5-0"

    ud = ec2.describe_instance_attribute(InstanceId=h.id, Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(ud).decode()
    assert script.startswith("#!/bin/bash")
    assert "vllm/vllm-openai:v0.32.0" in script and "meta-llama/Llama-3.1-8B-Instruct" in script

    # A retried launch of the same replica finds it (and would send the same ClientToken) instead of starting another.
    tokens: list[str] = []
    p._client("ec2", REGION).meta.events.register("provide-client-params.ec2.RunInstances", lambda params, **_: tokens.append(params["ClientToken"]))
    again = p.launch(_spec(), _placement())
    assert again.id == h.id and tokens == []
    p.terminate(h)
    fresh = p.launch(_spec(), _placement())
    assert fresh.id != h.id and tokens == [AwsProvider.client_token(_placement())]
    assert [x.id for x in p.list({LABEL_PROJECT: "acme"})] == [fresh.id]


def test_spot_launch_uses_spot_market(aws_env):
    p = _provider(aws_env)
    h = p.launch(_spec(), _placement("spot"))
    inst = aws_env.describe_instances(InstanceIds=[h.id])["Reservations"][0]["Instances"][0]
    assert inst["InstanceLifecycle"] == "spot"
    assert p.describe(h.id, "aws:us-east-1").details["lifecycle"] == "spot"


def test_list_by_tags_and_terminate_idempotent(aws_env):
    p = _provider(aws_env)
    a = p.launch(_spec(), _placement(replica="chat-g5-0"))
    b = p.launch(_spec(), _placement(replica="chat-g5-1"))
    other = create(region=REGION, ami_id=_ami(aws_env)).launch(
        _spec(), Placement("other", "x", "p9", "x-0", "aws:us-east-1", "g5.xlarge", "A10G", 1)
    )
    found = {h.id for h in p.list({LABEL_PROJECT: "acme"}, regions=["aws:us-east-1"])}
    assert found == {a.id, b.id}
    assert {h.id for h in p.list({LABEL_PROJECT: "acme", LABEL_REPLICA: "chat-g5-1"})} == {b.id}

    p.terminate(a)
    p.terminate(a)  # already terminating: no error
    assert {h.id for h in p.list({LABEL_PROJECT: "acme"})} == {b.id}
    assert p.describe(a.id, "us-east-1").state == "terminated"
    assert other.id not in found


def test_describe_unknown_instance_is_not_found(aws_env):
    with pytest.raises(NotFoundError):
        _provider(aws_env).describe("i-0123456789abcdef0", "aws:us-east-1")


def _fail_run_instances(p: AwsProvider, code: str, times: int) -> list[int]:
    calls = [0]

    def hook(**kwargs):
        calls[0] += 1
        if calls[0] <= times:
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": 500 if code == "InternalError" else 400}}, "RunInstances")

    p._client("ec2", REGION).meta.events.register("before-call.ec2.RunInstances", hook)
    return calls


def test_capacity_error_is_typed(aws_env):
    p = _provider(aws_env)
    calls = _fail_run_instances(p, "InsufficientInstanceCapacity", times=99)
    with pytest.raises(CapacityError, match="InsufficientInstanceCapacity"):
        p.launch(_spec(), _placement())
    assert calls[0] == 1  # capacity is not retried: apply moves to the next fallback


def test_quota_error_is_typed(aws_env):
    p = _provider(aws_env)
    _fail_run_instances(p, "VcpuLimitExceeded", times=99)
    with pytest.raises(QuotaError):
        p.launch(_spec(), _placement("spot"))


def test_transient_errors_are_retried_then_succeed(aws_env):
    p = _provider(aws_env)
    calls = _fail_run_instances(p, "RequestLimitExceeded", times=2)
    h = p.launch(_spec(), _placement())
    assert calls[0] == 3
    assert h.id.startswith("i-")


def test_missing_credentials_is_one_line_auth_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    p = create(region=REGION, ami_id="ami-12345678")
    with pytest.raises(AuthError) as err:
        p.launch(_spec(), _placement())
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("aws: no credentials") and "aws configure" in msg
    # planned_calls needs no credentials at all.
    calls = create(region=REGION).planned_calls(_spec(), _placement("spot"))
    assert [c["call"] for c in calls] == ["get_parameter", "run_instances"]
    run = calls[1]["params"]
    assert run["ImageId"].startswith("resolve:ssm:/aws/service/deeplearning/ami/x86_64/")
    assert "vllm/vllm-openai:v0.32.0" in run["UserData"]  # shown decoded
    assert run["InstanceMarketOptions"]["SpotOptions"]["InstanceInterruptionBehavior"] == "terminate"


def test_ssm_ami_lookup_when_no_ami_given(aws_env):
    ami = _ami(aws_env)
    p = create(region=REGION)
    # moto has no DLAMI parameters and reserves /aws/*: answer GetParameter with the real API's shape.
    stub = Stubber(p._client("ssm", REGION))
    name = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    stub.add_response("get_parameter", {"Parameter": {"Name": name, "Type": "String", "Value": ami, "Version": 1}}, {"Name": name})
    with stub:
        h = p.launch(_spec(), _placement())
    assert aws_env.describe_instances(InstanceIds=[h.id])["Reservations"][0]["Instances"][0]["ImageId"] == ami


def test_offerings_from_ec2_and_stubbed_pricing(aws_env):
    rec = json.loads((RECORDINGS / "aws_pricing_get_products_us-east-1.json").read_text())
    p = _provider(aws_env)
    pricing = p._client("pricing", "us-east-1")
    stub = Stubber(pricing)
    base = {"ServiceCode": "AmazonEC2", "Filters": price_filters(REGION), "FormatVersion": "aws_v1"}
    stub.add_response("get_products", rec["pages"][0], base)
    stub.add_response("get_products", rec["pages"][1], {**base, "NextToken": "page-2"})
    with stub:
        offers = p.offerings(["aws:us-east-1"])
    stub.assert_no_pending_responses()
    by_type = {o.instance_type: o for o in offers}
    assert set(by_type) == {"g5.xlarge", "p5.48xlarge"}  # m5.large has no GPU; unpriced GPU types are left out
    g5, p5 = by_type["g5.xlarge"], by_type["p5.48xlarge"]
    assert (g5.gpu, g5.gpu_count, g5.vcpus, g5.memory_gb, g5.usd_per_hour) == ("A10G", 1, 4, 16.0, 1.006)
    assert (p5.gpu, p5.gpu_count, p5.usd_per_hour) == ("H100", 8, 55.04)
    assert g5.region == "aws:us-east-1" and g5.spot_usd_per_hour is not None  # moto's spot history (fake prices)
    assert "Price List API" in g5.source and g5.as_of


def test_parse_price_list_reads_hourly_usd_only():
    doc = {
        "product": {"attributes": {"instanceType": "p4d.24xlarge"}},
        "terms": {"OnDemand": {"A": {"priceDimensions": {"B": {"unit": "Quantity", "pricePerUnit": {"USD": "9"}}, "C": {"unit": "Hrs", "pricePerUnit": {"USD": "21.96"}}}}}},
    }
    assert parse_price_list([json.dumps(doc)]) == {"p4d.24xlarge": 21.96}


@pytest.mark.parametrize(
    "code,status,expected",
    [
        ("InsufficientInstanceCapacity", 500, "CapacityError"),
        ("MaxSpotInstanceCountExceeded", 400, "QuotaError"),
        ("UnauthorizedOperation", 403, "AuthError"),
        ("AuthFailure", 401, "AuthError"),
        ("RequestLimitExceeded", 503, "TransientError"),
        ("SomethingNew", 502, "TransientError"),
        ("InvalidInstanceID.NotFound", 400, "NotFoundError"),
        ("InvalidParameterValue", 400, "ProviderError"),
    ],
)
def test_error_mapping(code: str, status: int, expected: str):
    from providers.aws import map_error

    exc = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "RunInstances")
    err = map_error(exc, "run_instances")
    assert type(err).__name__ == expected and code in str(err)


# -- network rules: one security group per (project, deployment, role) --------------------------------------

CONTROL = ("198.51.100.7/32",)
ALLOW = ("203.0.113.0/24",)


def _replica_spec() -> ContainerSpec:
    """What containers.vllm.build_vllm_container gives with control_cidrs: the port open to the gateways and orch."""
    from containers.spec import Ingress

    spec = _spec()
    spec.ingress = [Ingress(8000, cidrs=CONTROL, peers=("gateway",))]
    return spec


def _gateway_spec() -> ContainerSpec:
    from containers.gateway import GatewayNetwork, build_gateway_container

    return build_gateway_container(project="acme", deployment="chat", gateway="gw-0",
                                   network=GatewayNetwork(allow_cidrs=ALLOW, control_cidrs=CONTROL))


def _gw_placement() -> Placement:
    return Placement("acme", "chat", "p1", "chat-gw-0", f"aws:{REGION}", "m7i.large", "CPU", 0)


def _groups(ec2) -> dict[str, dict]:
    """orch's security groups by role."""
    out = {}
    for g in ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["orch-role"]}])["SecurityGroups"]:
        tags = {t["Key"]: t["Value"] for t in g["Tags"]}
        assert tags["orch-project"] == "acme" and tags["orch-deployment"] == "chat"
        out[tags["orch-role"]] = g
    return out


def _rules(group: dict) -> set[tuple]:
    out = set()
    for p in group["IpPermissions"]:
        out |= {(p["IpProtocol"], p["FromPort"], p["ToPort"], r["CidrIp"]) for r in p.get("IpRanges", [])}
        out |= {(p["IpProtocol"], p["FromPort"], p["ToPort"], r["GroupId"]) for r in p.get("UserIdGroupPairs", [])}
    return out


def _instance_groups(ec2, instance_id: str) -> set[str]:
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {g["GroupId"] for g in inst["SecurityGroups"]}


def test_replica_and_gateway_security_groups_hold_exactly_their_ingress(aws_env):
    ec2 = aws_env
    p = _provider(ec2, security_group_ids=None)
    vpc_cidr = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["CidrBlock"]

    replica = p.launch(_replica_spec(), _placement())
    groups = _groups(ec2)
    assert set(groups) == {"replica", "gateway"}  # the gateway's group exists (empty) before any gateway launched
    gw_sg, rep_sg = groups["gateway"]["GroupId"], groups["replica"]["GroupId"]
    assert groups["gateway"]["IpPermissions"] == []
    assert _rules(groups["replica"]) == {("tcp", 8000, 8000, gw_sg), ("tcp", 8000, 8000, CONTROL[0])}
    assert groups["replica"]["GroupName"] == "orch-acme-chat-replica"
    assert _instance_groups(ec2, replica.id) == {rep_sg}
    inst = ec2.describe_instances(InstanceIds=[replica.id])["Reservations"][0]["Instances"][0]
    assert replica.details["private_ip"] == inst["PrivateIpAddress"]  # the address group references match

    gateway = p.launch(_gateway_spec(), _gw_placement())
    groups = _groups(ec2)
    assert groups["gateway"]["GroupId"] == gw_sg and groups["replica"]["GroupId"] == rep_sg
    assert _rules(groups["gateway"]) == {("tcp", 8080, 8080, vpc_cidr), ("tcp", 8080, 8080, ALLOW[0]), ("tcp", 8081, 8081, CONTROL[0])}
    assert not any(r[3] == "0.0.0.0/0" for g in groups.values() for r in _rules(g))
    assert _instance_groups(ec2, gateway.id) == {gw_sg}

    # A second replica (and a rerun of either) reuses both groups: nothing duplicated, rules unchanged.
    second = p.launch(_replica_spec(), _placement(replica="chat-g5-1"))
    p.launch(_gateway_spec(), _gw_placement())
    again = _groups(ec2)
    assert {r: g["GroupId"] for r, g in again.items()} == {"replica": rep_sg, "gateway": gw_sg}
    assert _rules(again["replica"]) == _rules(groups["replica"]) and _rules(again["gateway"]) == _rules(groups["gateway"])
    assert _instance_groups(ec2, second.id) == {rep_sg}


def test_security_group_rules_follow_the_spec_and_user_groups_stay(aws_env):
    from containers.spec import Ingress

    ec2 = aws_env
    mine = ec2.create_security_group(GroupName="ssh", Description="user's")["GroupId"]
    p = _provider(ec2, security_group_ids=mine)
    h = p.launch(_replica_spec(), _placement())
    rep_sg = _groups(ec2)["replica"]["GroupId"]
    assert _instance_groups(ec2, h.id) == {rep_sg, mine}

    changed = _replica_spec()
    changed.ingress = [Ingress(8000, cidrs=("192.0.2.9/32",), peers=("gateway",))]  # orch moved: the old CIDR goes
    p.launch(changed, _placement())
    gw_sg = _groups(ec2)["gateway"]["GroupId"]
    assert _rules(_groups(ec2)["replica"]) == {("tcp", 8000, 8000, gw_sg), ("tcp", 8000, 8000, "192.0.2.9/32")}


def test_no_ingress_keeps_todays_request(aws_env):
    p = _provider(aws_env, security_group_ids="sg-1")
    params = p.run_instances_params(_spec(), _placement(), "ami-1")
    assert params["SecurityGroupIds"] == ["sg-1"]
    assert [c["call"] for c in p.planned_calls(_spec(), _placement())] == ["run_instances"]
    assert _groups(aws_env) == {}


def test_terminating_the_last_instances_deletes_the_groups(aws_env):
    ec2 = aws_env
    p = _provider(ec2)
    a = p.launch(_replica_spec(), _placement())
    b = p.launch(_replica_spec(), _placement(replica="chat-g5-1"))
    gw = p.launch(_gateway_spec(), _gw_placement())
    assert set(_groups(ec2)) == {"replica", "gateway"}

    p.terminate(a)
    assert set(_groups(ec2)) == {"replica", "gateway"}  # b still uses the replica group
    p.terminate(gw)
    assert set(_groups(ec2)) == {"replica", "gateway"}  # the replica group still refers to the gateway's
    p.terminate(b)
    assert _groups(ec2) == {}  # the last replica: its group, then the gateway's, nothing left
    p.terminate(b)  # again: nothing to do, no error


def test_cleanup_failure_is_a_warning_not_an_error(aws_env, caplog):
    p = _provider(aws_env)
    h = p.launch(_replica_spec(), _placement())

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "DeleteSecurityGroup")

    p._client("ec2", REGION).meta.events.register("before-call.ec2.DeleteSecurityGroup", refuse)
    with caplog.at_level("WARNING", logger="providers.aws_network"):
        p.terminate(h)
    assert p.describe(h.id, REGION).state == "terminated"
    assert "DependencyViolation" in caplog.text and set(_groups(aws_env)) == {"replica", "gateway"}


def test_planned_calls_list_the_security_group_calls_without_credentials():
    calls = create(region=REGION, ami_id="ami-1", security_group_ids="sg-user").planned_calls(_replica_spec(), _placement())
    assert [c["call"] for c in calls] == ["describe_vpcs", "create_security_group", "create_security_group",
                                          "authorize_security_group_ingress", "run_instances"]
    assert [c["params"]["GroupName"] for c in calls if c["call"] == "create_security_group"] == ["orch-acme-chat-gateway", "orch-acme-chat-replica"]
    perms = calls[3]["params"]["IpPermissions"]
    assert {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "IpRanges": [{"CidrIp": CONTROL[0]}]} in perms
    assert {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "UserIdGroupPairs": [{"GroupId": "<security group orch-acme-chat-gateway>"}]} in perms
    assert calls[-1]["params"]["SecurityGroupIds"] == ["<security group orch-acme-chat-replica>", "sg-user"]
