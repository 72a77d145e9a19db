"""apply on AWS (moto): InsufficientInstanceCapacity on the first choice moves to the next ranked fallback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import boto3
from botocore.client import BaseClient  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto import mock_aws  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import test_apply_fakeprovider as fake  # noqa: E402
from orchestrator.cli.main import app  # noqa: E402

SPEC = """\
version: 1
project: acme
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {{requests_per_second: 1, input_tokens: 500, output_tokens: 100}}
    slo: {{ttft_p95_ms: 5000, tpot_p95_ms: 200}}
providers:
  aws:
    regions: [us-east-1, us-west-2]
    options: {{ami_id: {ami}}}
"""


def _group(region: str, instance: str, gpu: str, usd: float) -> dict:
    return {"provider": "aws", "region": f"aws:{region}", "instance_type": instance, "gpu": gpu,
            "gpus_per_replica": 1, "tensor_parallel": 1, "quantization": "bf16", "market": "on_demand",
            "count": 1, "usd_per_hour": usd}


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("ORCH_STATE_DIR", str(tmp_path / "orch"))
    monkeypatch.delenv("ORCH_STATE_URL", raising=False)
    with mock_aws():
        yield


def _no_capacity_for(monkeypatch: pytest.MonkeyPatch, instance_type: str) -> list[str]:
    """Every RunInstances for ``instance_type`` answers InsufficientInstanceCapacity, as EC2 does."""
    original = BaseClient._make_api_call
    seen: list[str] = []

    def call(self, operation_name, api_params):  # type: ignore[no-untyped-def]
        if operation_name == "RunInstances":
            seen.append(api_params["InstanceType"])
            if api_params["InstanceType"] == instance_type:
                raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity",
                                             "Message": f"We currently do not have sufficient {instance_type} capacity "
                                                        "in the Availability Zone you requested"}}, operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return seen


def _instances(region: str) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=region)
    out = []
    for res in ec2.describe_instances()["Reservations"]:
        for i in res["Instances"]:
            if i["State"]["Name"] not in ("terminated", "shutting-down"):
                out.append(i)
    return out


def test_capacity_error_on_the_first_choice_moves_to_the_fallback(aws, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ami = boto3.client("ec2", region_name="us-east-1").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ami_w = boto3.client("ec2", region_name="us-west-2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    assert ami  # moto serves the same image ids in every region
    spec = tmp_path / "deploy.yaml"
    spec.write_text(SPEC.format(ami=ami))
    import hashlib

    sha = hashlib.sha256(spec.read_bytes()).hexdigest()
    fake.write_plan(tmp_path / "plan.json", "acme", sha, {
        "chat": [[_group("us-east-1", "g6e.xlarge", "L40S", 1.86)], [_group("us-west-2", "g5.xlarge", "A10G", 1.006)]],
    })
    seen = _no_capacity_for(monkeypatch, "g6e.xlarge")
    db = tmp_path / "state.db"
    r = CliRunner().invoke(app, ["apply", str(spec), "--plan", str(tmp_path / "plan.json"), "--yes", "--no-wait",
                                 "--state", str(db)])
    assert r.exit_code == 0, r.stderr + (ami_w or "")
    assert "no capacity on aws aws:us-east-1 g6e.xlarge" in r.stderr
    assert "taking fallback #1: 1x aws aws:us-west-2 g5.xlarge" in r.stderr
    assert seen == ["g6e.xlarge", "g5.xlarge"]
    assert _instances("us-east-1") == []
    west = _instances("us-west-2")
    assert len(west) == 1 and west[0]["InstanceType"] == "g5.xlarge"
    tags = {t["Key"]: t["Value"] for t in west[0]["Tags"]}
    assert tags["orch-project"] == "acme" and tags["orch-deployment"] == "chat"

    con = sqlite3.connect(db)
    fb = con.execute("select detail from journal where action = 'fallback'").fetchall()
    row = con.execute("select region, instance_type, handle_id, usd_per_hour from replicas where status != 'failed'").fetchall()
    failed = con.execute("select region, handle_id from replicas where status = 'failed'").fetchall()
    con.close()
    assert len(fb) == 1 and "InsufficientInstanceCapacity" in json.loads(fb[0][0])["reason"]
    assert row == [("aws:us-west-2", "g5.xlarge", west[0]["InstanceId"], pytest.approx(1.006))]
    assert failed == [("aws:us-east-1", None)]  # the refused launch is on record, with nothing behind it

    again = CliRunner().invoke(app, ["apply", str(spec), "--plan", str(tmp_path / "plan.json"), "--yes", "--no-wait",
                                     "--state", str(db)])
    assert again.exit_code == 0 and "0 to create, 1 to keep" in again.stdout
    assert seen == ["g6e.xlarge", "g5.xlarge"]  # no new launch, not even a retry of the first choice

    gone = CliRunner().invoke(app, ["destroy", str(spec), "--yes", "--state", str(db)])
    assert gone.exit_code == 0, gone.stderr
    assert _instances("us-west-2") == []
