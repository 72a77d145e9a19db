"""GCP provider: one Compute Engine VM per replica, from a Deep Learning VM image, running the vLLM container
from its startup-script metadata.

Credentials come only from google-auth's standard chain (Application Default Credentials); none is stored or
logged. Firewall: a container with ``ingress`` gets orch's firewall rules and network tag (providers.gcp_network);
without, the vLLM port must be open to the VMs (tag ``orch-vllm`` is set for such a rule).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from containers.spec import ContainerSpec
from orchestrator.catalog.types import Offering
from orchestrator.errors import (
    AuthError,
    CapacityError,
    NotFoundError,
    ProviderError,
    QuotaError,
    TransientError,
    UserError,
)
from providers.base import LABEL_PROJECT, Handle, Placement, State
from providers.pricing import bare_region, qualified_region, stable_token
from providers.retry import with_retries

# Deep Learning VM image family (NVIDIA driver installed at first boot with install-nvidia-driver=True).
DEFAULT_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"
# Zone used when neither the placement nor the provider names one; most regions have "-a", these do not.
_DEFAULT_ZONE_SUFFIX = {"europe-west1": "b", "us-east1": "b"}
NETWORK_TAG = "orch-vllm"
PORT_LABEL = "orch-port"
NO_CREDENTIALS = (
    "gcp: no credentials found; run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
)
_STATES: dict[str, State] = {
    "PROVISIONING": "pending",
    "STAGING": "pending",
    "RUNNING": "running",
    "STOPPING": "stopped",
    "STOPPED": "stopped",
    "SUSPENDING": "stopped",
    "SUSPENDED": "stopped",
    "TERMINATED": "stopped",  # GCP's TERMINATED is a stopped VM that still exists
    "REPAIRING": "pending",
}


def label_value(value: str) -> str:
    """GCP label values: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]+", "-", value.lower())[:63]


def map_error(exc: Exception, what: str) -> ProviderError:
    """A google.api_core / google.auth exception as orch's typed error."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return AuthError(NO_CREDENTIALS)
    if isinstance(exc, auth_exc.GoogleAuthError):
        return AuthError(f"gcp: {what}: credentials rejected ({type(exc).__name__}); {NO_CREDENTIALS.split('; ', 1)[1]}")
    text = str(exc)
    reasons = " ".join(str(getattr(e, "code", "") or (e.get("reason", "") if isinstance(e, dict) else e)) for e in (getattr(exc, "errors", None) or []))
    blob = f"{text} {reasons}".upper()
    msg = f"gcp: {what}: {' '.join(text.split())}"
    if "RESOURCE_POOL_EXHAUSTED" in blob or "STOCKOUT" in blob or "DOES NOT HAVE ENOUGH RESOURCES" in blob:
        return CapacityError(msg)
    if "QUOTA" in blob:
        return QuotaError(msg)
    if isinstance(exc, (gexc.Unauthenticated, gexc.PermissionDenied, gexc.Unauthorized, gexc.Forbidden)):
        return AuthError(msg)
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(msg)
    if isinstance(exc, gexc.ResourceExhausted):  # gRPC RESOURCE_EXHAUSTED (a TooManyRequests subclass): no capacity
        return CapacityError(msg)
    if isinstance(exc, (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError, gexc.GatewayTimeout, gexc.DeadlineExceeded, gexc.BadGateway)):
        return TransientError(msg)
    return ProviderError(msg)


class GcpProvider:
    name = "gcp"

    def __init__(
        self,
        project: str | None = None,
        zone: str | None = None,
        credentials: Any = None,
        client_options: Any = None,
        image: str = DEFAULT_IMAGE,
        disk_gb: int = 200,
        disk_type: str = "pd-balanced",
        network: str = "global/networks/default",
        subnetwork: str | None = None,
        service_account: str | None = None,
        billing_url: str | None = None,
        operation_timeout_s: float = 900,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project = project
        self.zone = zone
        self.image = image
        self.disk_gb = disk_gb
        self.disk_type = disk_type
        self.network = network
        self.subnetwork = subnetwork
        self.service_account = service_account
        self.client_options = client_options
        self.billing_url = billing_url
        self.operation_timeout_s = operation_timeout_s
        self._credentials = credentials
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        from providers.gcp_network import GcpNetwork

        self.firewall = GcpNetwork(self)

    # -- plumbing -------------------------------------------------------------------------------------

    def _creds(self) -> Any:
        if self._credentials is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            except DefaultCredentialsError:
                raise AuthError(NO_CREDENTIALS) from None
            self.project = self.project or project
        if not self.project:
            raise UserError("gcp: no project given; set providers.gcp.project or GOOGLE_CLOUD_PROJECT")
        return self._credentials

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            from google.cloud import compute_v1

            creds = self._creds()
            cls = getattr(compute_v1, kind)
            self._clients[kind] = cls(credentials=creds, client_options=self.client_options, transport="rest")
        return self._clients[kind]

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        def once() -> Any:
            try:
                return fn()
            except ProviderError:
                raise
            except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a typed error
                from google.api_core.exceptions import GoogleAPIError
                from google.auth.exceptions import GoogleAuthError

                if isinstance(exc, (GoogleAPIError, GoogleAuthError)):
                    raise map_error(exc, what) from None
                raise

        return with_retries(once, sleep=self._sleep)

    def _wait(self, op: Any, zone: str) -> None:
        """Wait for a zone operation (ZoneOperations.wait, repeated until DONE); raise its error, if any."""
        from google.api_core import exceptions as gexc
        from google.cloud import compute_v1

        ops = self._client("ZoneOperationsClient")
        deadline = time.monotonic() + self.operation_timeout_s
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise TransientError(f"gcp: operation {op.name} in {zone} still {op.status.name} after {self.operation_timeout_s:.0f}s")
            op = ops.wait(project=self.project, zone=zone, operation=op.name)
        errors = list(op.error.errors) if op.error else []
        if errors or op.http_error_status_code >= 400:
            text = "; ".join(f"{e.code}: {e.message}" for e in errors) or op.http_error_message
            raise gexc.from_http_status(op.http_error_status_code or 500, text, errors=[{"reason": e.code} for e in errors])

    def _zone(self, placement: Placement) -> str:
        if placement.zone:
            return placement.zone
        region = placement.region_name
        if self.zone and self.zone.rsplit("-", 1)[0] == region:
            return self.zone
        return f"{region}-{_DEFAULT_ZONE_SUFFIX.get(region, 'a')}"

    @staticmethod
    def instance_name(placement: Placement) -> str:
        return placement.vm_name()

    # -- launch ---------------------------------------------------------------------------------------

    def instance_resource(self, container: ContainerSpec, placement: Placement, zone: str) -> Any:
        from google.cloud import compute_v1

        from containers.render.vm import secret_fetch_lines, startup_script

        from orchestrator.catalog.offerings import split_gcp_instance_type

        machine, attached, attached_count = split_gcp_instance_type(placement.instance_type)
        family = machine.split("-", 1)[0]
        labels = {k: label_value(v) for k, v in placement.labels().items()}
        port = next(iter(container.ports.values()), 8000)
        labels[PORT_LABEL] = str(port)
        script = startup_script(container, fetch_secrets=secret_fetch_lines(container, "gcp") or None)
        scheduling = compute_v1.Scheduling(on_host_maintenance="TERMINATE", automatic_restart=placement.market != "spot")
        if placement.market == "spot":
            scheduling.provisioning_model = "SPOT"
            scheduling.instance_termination_action = "DELETE"
        inst = compute_v1.Instance(
            name=self.instance_name(placement),
            machine_type=f"zones/{zone}/machineTypes/{machine}",
            labels=labels,
            tags=compute_v1.Tags(items=[NETWORK_TAG, *self.firewall.tags(container, placement)]),
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=self.image,
                        disk_size_gb=self.disk_gb,
                        disk_type=f"zones/{zone}/diskTypes/{self.disk_type}",
                        labels=labels,
                    ),
                )
            ],
            network_interfaces=[
                compute_v1.NetworkInterface(
                    network=self.network,
                    subnetwork=self.subnetwork or None,
                    access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")],
                )
            ],
            metadata=compute_v1.Metadata(
                items=[
                    compute_v1.Items(key="startup-script", value=script),
                    compute_v1.Items(key="install-nvidia-driver", value="True"),
                ]
            ),
            scheduling=scheduling,
        )
        if attached or family == "n1":  # A2/A3/A4/G2 machine types include their GPUs; N1 takes attached ones
            from providers.pricing.gcp import GPU_ACCELERATOR

            accel = attached or GPU_ACCELERATOR.get(placement.gpu)
            if accel is None:
                raise UserError(f"gcp: GPU {placement.gpu} cannot be attached to {placement.instance_type}")
            inst.guest_accelerators = [
                compute_v1.AcceleratorConfig(
                    accelerator_type=f"zones/{zone}/acceleratorTypes/{accel}",
                    accelerator_count=attached_count if attached else placement.gpu_count,
                )
            ]
        if self.service_account:  # the VM's own identity, e.g. to read its secrets from Secret Manager
            inst.service_accounts = [
                compute_v1.ServiceAccount(email=self.service_account, scopes=["https://www.googleapis.com/auth/cloud-platform"])
            ]
        return inst

    @staticmethod
    def request_id(placement: Placement) -> str:
        """Idempotency key GCP honours for a retried insert (a UUID, stable per replica of a plan)."""
        return str(uuid.UUID(stable_token(placement.project, placement.deployment, placement.plan_id, placement.replica)))

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        from google.cloud import compute_v1

        zone = self._zone(placement)
        body = compute_v1.Instance.to_dict(self.instance_resource(container, placement, zone))
        return (self.firewall.planned(container, placement) if container.ingress else []) + [
            {
                "service": "compute",
                "call": "instances.insert",
                "params": {"project": self.project, "zone": zone, "request_id": self.request_id(placement), "instance_resource": body},
            }
        ]

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        from google.api_core.exceptions import Conflict

        zone = self._zone(placement)
        client = self._client("InstancesClient")
        inst = self.instance_resource(container, placement, zone)
        if container.ingress:
            self.firewall.ensure(container, placement)

        def insert() -> None:
            try:
                from google.cloud import compute_v1

                request = compute_v1.InsertInstanceRequest(
                    project=self.project, zone=zone, instance_resource=inst, request_id=self.request_id(placement)
                )
                self._wait(client.insert_unary(request=request), zone)
            except Conflict:
                pass  # already exists (an earlier attempt got through): adopt it below

        self._call(f"insert {placement.instance_type} in {zone}", insert)
        return self.describe(f"{zone}/{inst.name}", placement.region)

    # -- read -----------------------------------------------------------------------------------------

    def _handle(self, inst: Any) -> Handle:
        from datetime import datetime

        zone = inst.zone.rsplit("/", 1)[-1]
        state = _STATES.get(inst.status, "unknown")
        ip = None
        for nic in inst.network_interfaces:
            ip = next((ac.nat_i_p for ac in nic.access_configs if ac.nat_i_p), None) or nic.network_i_p or None
            if ip:
                break
        port = inst.labels.get(PORT_LABEL, "8000")
        launched = None
        if inst.creation_timestamp:
            try:
                launched = datetime.fromisoformat(inst.creation_timestamp)
            except ValueError:
                pass
        return Handle(
            provider="gcp",
            id=f"{zone}/{inst.name}",
            region=qualified_region("gcp", zone.rsplit("-", 1)[0]),
            state=state,
            labels={k: v for k, v in inst.labels.items() if k.startswith("orch-") and k != PORT_LABEL},
            endpoint=f"http://{ip}:{port}" if ip and state == "running" else None,
            launched_at=launched,
            details={
                "zone": zone,
                "machine_type": inst.machine_type.rsplit("/", 1)[-1],
                "provisioning_model": inst.scheduling.provisioning_model or "STANDARD",
                "private_ip": next((n.network_i_p for n in inst.network_interfaces if n.network_i_p), None),  # source tags match it
            },
        )

    @staticmethod
    def _split(handle_id: str) -> tuple[str, str]:
        if "/" not in handle_id:
            raise UserError(f"gcp: handle id {handle_id!r} is not <zone>/<instance name>")
        zone, name = handle_id.split("/", 1)
        return zone, name

    def describe(self, handle_id: str, region: str) -> Handle:
        zone, name = self._split(handle_id)
        client = self._client("InstancesClient")
        inst = self._call(f"get {handle_id}", lambda: client.get(project=self.project, zone=zone, instance=name))
        return self._handle(inst)

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        from google.cloud import compute_v1

        client = self._client("InstancesClient")
        wanted = {k: label_value(v) for k, v in labels.items()}
        terms = [f'(labels.{k} = "{v}")' for k, v in wanted.items()] or [f"(labels.{LABEL_PROJECT}:*)"]
        region_names = {bare_region("gcp", r) for r in regions} if regions else None

        def scan() -> list[Handle]:
            found = []
            for _scope, scoped in client.aggregated_list(
                request=compute_v1.AggregatedListInstancesRequest(project=self.project, filter=" AND ".join(terms))
            ):
                for inst in scoped.instances:
                    if any(inst.labels.get(k) != v for k, v in wanted.items()):
                        continue
                    h = self._handle(inst)
                    if region_names is None or bare_region("gcp", h.region) in region_names:
                        found.append(h)
            return found

        return self._call("aggregated_list instances", scan)

    def terminate(self, handle: Handle) -> None:
        zone, name = self._split(handle.id)
        client = self._client("InstancesClient")
        try:
            self._call(
                f"delete {handle.id}",
                lambda: self._wait(client.delete_unary(project=self.project, zone=zone, instance=name), zone),
            )
        except NotFoundError:
            pass  # already gone
        self.firewall.cleanup(handle)  # its firewall rules, once no instance has their tag (never raises)

    # -- catalog --------------------------------------------------------------------------------------

    def offerings(self, regions: list[str] | None = None) -> list[Offering]:
        import httpx
        from google.cloud import compute_v1

        from providers.pricing import gcp as gp

        names = [bare_region("gcp", r) for r in regions] if regions else None
        mt_client = self._client("MachineTypesClient")
        acc_client = self._client("AcceleratorTypesClient")

        mt_request = compute_v1.AggregatedListMachineTypesRequest(project=self.project, filter=gp.MACHINE_TYPE_FILTER)

        def shapes() -> dict[str, dict[str, gp.Shape]]:
            mts = [m for _, sl in mt_client.aggregated_list(request=mt_request) for m in sl.machine_types]
            accs = [a for _, sl in acc_client.aggregated_list(project=self.project) for a in sl.accelerator_types]
            return gp.shapes_by_region(mts, accs)

        by_region = self._call("machine/accelerator types", shapes)
        headers = self._auth_headers()

        def skus() -> gp.SkuPrices:
            try:
                with httpx.Client(timeout=60) as http:
                    return gp.parse_skus(gp.fetch_skus(http, headers, self.billing_url or gp.BILLING_URL))
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                err = f"gcp: Cloud Billing catalog: HTTP {code}"
                if code in (401, 403):
                    raise AuthError(err + " (the credentials need the Cloud Billing API enabled)") from None
                raise (TransientError(err) if code == 429 or code >= 500 else ProviderError(err)) from None
            except httpx.TransportError as exc:
                raise TransientError(f"gcp: Cloud Billing catalog: {exc}") from None

        prices = self._call("billing catalog", skus)
        out: list[Offering] = []
        for region in names or sorted(by_region):
            if not by_region.get(region):
                raise ProviderError(f"gcp: no GPU machine types visible in region {region} (project {self.project})")
            out += gp.region_offerings(region, by_region[region], prices)
        return out

    def _auth_headers(self) -> dict[str, str]:
        from google.auth.transport.requests import Request

        creds = self._creds()
        if not creds.valid:
            self._call("refresh credentials", lambda: creds.refresh(Request()))
        headers: dict[str, str] = {}
        creds.apply(headers)
        return headers


def create(
    project: str | None = None,
    zone: str | None = None,
    credentials: Any = None,
    client_options: Any = None,
    image: str = DEFAULT_IMAGE,
    disk_gb: int | str = 200,
    disk_type: str = "pd-balanced",
    network: str = "global/networks/default",
    subnetwork: str | None = None,
    service_account: str | None = None,
    billing_url: str | None = None,
    operation_timeout_s: float | str = 900,
    sleep: Callable[[float], None] = time.sleep,
) -> GcpProvider:
    """The GCP provider. Settings may come as strings (deployment-file options)."""
    return GcpProvider(
        project=project,
        zone=zone,
        credentials=credentials,
        client_options=client_options,
        image=image,
        disk_gb=int(disk_gb),
        disk_type=disk_type,
        network=network,
        subnetwork=subnetwork,
        service_account=service_account,
        billing_url=billing_url,
        operation_timeout_s=float(operation_timeout_s),
        sleep=sleep,
    )
