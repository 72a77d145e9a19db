"""AWS provider: one EC2 instance per replica, running the vLLM container from a startup script (user data).

Credentials come only from boto3's standard chain (env, profile, SSO, instance role); none is stored or logged.
A container with ``ingress`` gets orch's security group for its (project, deployment, role) (providers.aws_network),
alongside any ``security_group_ids``; without ingress rules, the vLLM port (8000 unless the spec says otherwise) must
be reachable through the ``security_group_ids`` given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import Field

from containers.spec import ContainerSpec
from orchestrator.catalog.types import Offering
from orchestrator.errors import AuthError, CapacityError, NotFoundError, ProviderError, QuotaError, TransientError
from providers.abilities import WithFirewall, WithOfferingsRefresh, WithSpot
from providers.base import LABEL_PROJECT, Handle, Placement, State
from providers.pricing import bare_region, qualified_region, stable_token
from providers.registry import CommaList, ProviderSettings, create as build, placed, register
from providers.retry import with_retries

DEFAULT_REGION = "us-east-1"
# Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04): NVIDIA driver, Docker and the NVIDIA container toolkit.
DEFAULT_AMI_TYPE = "base-oss-nvidia-driver-gpu-ubuntu-22.04"
DLAMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/{ami_type}/latest/ami-id"
PORT_TAG = "orch-port"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
NO_CREDENTIALS = "aws: no credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`"

_CAPACITY = {
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet",
    "SpotMaxPriceTooLow",
    "Unsupported",  # instance type not offered in this zone
}
_QUOTA = {"VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded", "MaxSpotFleetRequestCountExceeded"}
_AUTH = {
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "OptInRequired",
}
_TRANSIENT = {
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
}
_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed", "InvalidParameterValue.NotFound"}

_STATES: dict[str, State] = {
    "pending": "pending",
    "running": "running",
    "stopping": "stopped",
    "stopped": "stopped",
    "shutting-down": "terminated",
    "terminated": "terminated",
}


def map_error(exc: Exception, what: str) -> ProviderError:
    """A botocore exception as orch's typed error (one line, never a secret)."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AuthError(NO_CREDENTIALS)
    if isinstance(exc, BotoConnectionError):
        return TransientError(f"aws: {what}: {exc}")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        msg = f"aws: {what}: {code}: {err.get('Message', '')}".rstrip(": ")
        if code in _CAPACITY:
            return CapacityError(msg)
        if code in _QUOTA:
            return QuotaError(msg)
        if code in _AUTH:
            return AuthError(msg + " (check the credentials in AWS_PROFILE / `aws configure` and their IAM permissions)")
        if code in _NOT_FOUND or code.endswith(".NotFound"):
            return NotFoundError(msg)
        if code in _TRANSIENT or status >= 500:
            return TransientError(msg)
        return ProviderError(msg)
    return ProviderError(f"aws: {what}: {exc}")


class AwsSettings(ProviderSettings):
    """providers.aws.options (and the region, from the plan)."""

    region: str | None = placed("the region to launch in (aws:us-east-1 or us-east-1)")
    ami_id: str | None = Field(None, description="the image; default: the latest Deep Learning Base AMI (ami_type)")
    subnet_id: str | None = None
    key_name: str | None = Field(None, description="an EC2 key pair, for ssh")
    security_group_ids: CommaList = Field(default_factory=list, description="comma-separated, on every instance")
    ami_type: str = DEFAULT_AMI_TYPE
    disk_gb: int = 200
    instance_profile: str | None = None


@register
class AwsProvider(WithOfferingsRefresh, WithSpot, WithFirewall):
    name = kind = "aws"
    Settings = AwsSettings

    def __init__(self, settings: AwsSettings | None = None, *, session: Any = None, endpoint_url: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        s = settings or AwsSettings()
        self.region = bare_region("aws", s.region) if s.region else None
        self.ami_id = s.ami_id
        self.subnet_id = s.subnet_id
        self.key_name = s.key_name
        self.security_group_ids = list(s.security_group_ids)
        self.endpoint_url = endpoint_url
        self.ami_type = s.ami_type
        self.disk_gb = s.disk_gb
        self.instance_profile = s.instance_profile
        self._session = session
        self._sleep = sleep
        self._clients: dict[tuple[str, str], Any] = {}
        from providers.aws_network import AwsNetwork

        self.network = AwsNetwork(self)

    # -- plumbing -------------------------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            if self._session is None:
                self._session = boto3.session.Session()
            if self._session.get_credentials() is None:
                raise AuthError(NO_CREDENTIALS)
            self._clients[key] = self._session.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._clients[key]

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call with typed errors; throttling and 5xx are retried with backoff."""

        def once() -> Any:
            try:
                return fn()
            except Exception as exc:
                if isinstance(exc, ProviderError):
                    raise
                raise map_error(exc, what) from None

        return with_retries(once, sleep=self._sleep)

    def _region(self, region: str | None) -> str:
        return bare_region("aws", region) if region else (self.region or DEFAULT_REGION)

    # -- launch ---------------------------------------------------------------------------------------

    def ami_parameter(self) -> str:
        return DLAMI_PARAMETER.format(ami_type=self.ami_type)

    def run_instances_params(
        self, container: ContainerSpec, placement: Placement, image_id: str, security_group: str | None = None
    ) -> dict[str, Any]:
        """The exact RunInstances request for one replica (UserData in clear text; boto3 base64-encodes it).
        ``security_group``: orch's group for the container's ingress, attached with the user's groups."""
        from containers.render.vm import secret_fetch_lines, startup_script

        labels = placement.labels()
        port = next(iter(container.ports.values()), 8000)
        tags = [{"Key": k, "Value": v} for k, v in labels.items()]
        tags += [{"Key": "Name", "Value": placement.vm_name()}, {"Key": PORT_TAG, "Value": str(port)}]
        params: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": placement.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "UserData": startup_script(container, fetch_secrets=secret_fetch_lines(container, "aws") or None),
            "ClientToken": self.client_token(placement),
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": self.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}
            ],
            "MetadataOptions": {"HttpTokens": "required"},
        }
        if placement.market == "spot":
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        if placement.zone:
            params["Placement"] = {"AvailabilityZone": placement.zone}
        if self.subnet_id:
            params["SubnetId"] = self.subnet_id
        groups = ([security_group] if security_group else []) + self.security_group_ids
        if groups:
            params["SecurityGroupIds"] = groups
        if self.key_name:
            params["KeyName"] = self.key_name
        if self.instance_profile:  # the VM's own identity, e.g. to read its secrets from Secrets Manager
            params["IamInstanceProfile"] = {"Name": self.instance_profile}
        return params

    @staticmethod
    def client_token(placement: Placement) -> str:
        """Idempotency token: the same replica of the same plan never starts twice, however often launch is retried."""
        return stable_token(placement.project, placement.deployment, placement.plan_id, placement.replica, length=64)

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        image = self.ami_id or f"resolve:ssm:{self.ami_parameter()}"
        calls: list[dict[str, Any]] = []
        group = None
        if container.ingress:
            calls, group = self.network.planned(container, placement)
        if not self.ami_id:
            calls.append({"service": "ssm", "region": placement.region_name, "call": "get_parameter", "params": {"Name": self.ami_parameter()}})
        calls.append(
            {
                "service": "ec2",
                "region": placement.region_name,
                "call": "run_instances",
                "params": self.run_instances_params(container, placement, image, group),
            }
        )
        return calls

    def _image_id(self, region: str) -> str:
        if self.ami_id:
            return self.ami_id
        ssm = self._client("ssm", region)
        name = self.ami_parameter()
        resp = self._call(f"get_parameter {name}", lambda: ssm.get_parameter(Name=name))
        return resp["Parameter"]["Value"]

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        region = placement.region_name
        ec2 = self._client("ec2", region)
        # The security group first: a rerun brings its rules up to date even when the instance exists already.
        group = self.network.ensure(ec2, region, container, placement) if container.ingress else None
        existing = self.list(placement.labels(), regions=[region])
        if existing:  # launched before (a retry after a crash or a lost answer): adopt it
            return existing[0]
        params = self.run_instances_params(container, placement, self._image_id(region), group)
        resp = self._call(f"run_instances {placement.instance_type} in {region}", lambda: ec2.run_instances(**params))
        inst = resp["Instances"][0]
        if _STATES.get(inst["State"]["Name"]) == "terminated":
            # The token belongs to an earlier launch of this replica that has since been terminated: start afresh.
            params["ClientToken"] = stable_token(params["ClientToken"], str(time.time_ns()), length=64)
            resp = self._call(f"run_instances {placement.instance_type} in {region}", lambda: ec2.run_instances(**params))
            inst = resp["Instances"][0]
        return self._handle(inst, region)

    # -- read -----------------------------------------------------------------------------------------

    def _handle(self, inst: dict[str, Any], region: str) -> Handle:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        port = tags.get(PORT_TAG, "8000")
        ip = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress")
        state = _STATES.get(inst.get("State", {}).get("Name", ""), "unknown")
        return Handle(
            provider="aws",
            id=inst["InstanceId"],
            region=qualified_region("aws", region),
            state=state,
            labels={k: v for k, v in tags.items() if k.startswith("orch-") and k != PORT_TAG},
            endpoint=f"http://{ip}:{port}" if ip and state == "running" else None,
            launched_at=inst.get("LaunchTime"),
            details={
                "instance_type": inst.get("InstanceType"),
                "zone": inst.get("Placement", {}).get("AvailabilityZone"),
                "lifecycle": inst.get("InstanceLifecycle", "on-demand"),
                "spot_request_id": inst.get("SpotInstanceRequestId"),
                "public_dns": inst.get("PublicDnsName") or None,
                "private_ip": inst.get("PrivateIpAddress"),  # what security-group references match (aws_network)
            },
        )

    def describe(self, handle_id: str, region: str) -> Handle:
        r = self._region(region)
        ec2 = self._client("ec2", r)
        resp = self._call(f"describe_instances {handle_id}", lambda: ec2.describe_instances(InstanceIds=[handle_id]))
        for res in resp.get("Reservations", []):
            for inst in res.get("Instances", []):
                return self._handle(inst, r)
        raise NotFoundError(f"aws: instance {handle_id} not found in {r}")

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in labels.items()]
        if not labels:
            filters.append({"Name": "tag-key", "Values": [LABEL_PROJECT]})
        filters.append({"Name": "instance-state-name", "Values": LIVE_STATES})
        out: list[Handle] = []
        for r in [self._region(x) for x in (regions or [None])]:  # type: ignore[list-item]
            ec2 = self._client("ec2", r)

            def scan(ec2: Any = ec2, r: str = r) -> list[Handle]:
                found = []
                for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
                    for res in page.get("Reservations", []):
                        found += [self._handle(i, r) for i in res.get("Instances", [])]
                return found

            out += self._call(f"describe_instances in {r}", scan)
        return out

    def terminate(self, handle: Handle) -> None:
        r = self._region(handle.region)
        ec2 = self._client("ec2", r)
        try:
            self._call(f"terminate_instances {handle.id}", lambda: ec2.terminate_instances(InstanceIds=[handle.id]))
        except NotFoundError:
            pass  # already gone
        self.network.cleanup(ec2, handle)  # its security groups, once no instance uses them (never raises)

    # -- catalog --------------------------------------------------------------------------------------

    def offerings(self, regions: list[str] | None = None) -> list[Offering]:
        from providers.pricing.aws import region_offerings

        pricing = self._client("pricing", "us-east-1")  # the Price List API is served from us-east-1
        out: list[Offering] = []
        for r in [self._region(x) for x in (regions or [None])]:  # type: ignore[list-item]
            ec2 = self._client("ec2", r)
            out += self._call(f"offerings in {r}", lambda ec2=ec2, r=r: region_offerings(ec2, pricing, r))
        return out



create = partial(build, "aws")  # settings (AwsSettings) and wiring (session, endpoint_url, sleep)
