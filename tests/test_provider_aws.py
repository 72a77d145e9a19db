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
