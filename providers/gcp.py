"""GCP provider: one Compute Engine VM per replica, from a Deep Learning VM image, running the vLLM container
from its startup-script metadata.

Credentials come only from google-auth's standard chain (Application Default Credentials); none is stored or
logged. Firewall: a container with ``ingress`` gets orch's firewall rules and network tag (providers.gcp_network);
without, the vLLM port must be open to the VMs (tag ``orch-vllm`` is set for such a rule).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import Field

from containers.labels import label_value
from containers.spec import ContainerSpec
from orchestrator.catalog.types import Offering
from orchestrator.errors import AuthError, NotFoundError, ProviderError, TransientError, UserError
from providers.abilities import WithFirewall, WithOfferingsRefresh, WithSpot
from providers.base import LABEL_PROJECT, Handle, Placement, State
from providers.gcp_errors import NO_CREDENTIALS, map_error
from providers.pricing import bare_region, qualified_region, stable_token
from providers.registry import CommaList, ProviderSettings, create as build, needed, placeholder, register
from providers.retry import with_retries

# Deep Learning VM image family (NVIDIA driver installed at first boot with install-nvidia-driver=True).
DEFAULT_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"
# Zone used when neither the placement nor the provider names one; most regions have "-a", these do not.
_DEFAULT_ZONE_SUFFIX = {"europe-west1": "b", "us-east1": "b"}
NETWORK_TAG = "orch-vllm"
PORT_LABEL = "orch-port"
_STATES: dict[str, State] = {"PROVISIONING": "pending", "STAGING": "pending", "RUNNING": "running", "REPAIRING": "pending",
                             "STOPPING": "stopped", "STOPPED": "stopped", "SUSPENDING": "stopped", "SUSPENDED": "stopped",
                             "TERMINATED": "stopped"}  # GCP's TERMINATED is a stopped VM that still exists


class GcpSettings(ProviderSettings):
    """providers.gcp.options (the zone for each region of the plan comes from zone / zones)."""

    project: str | None = needed("the GCP project id to launch in")
    zone: str | None = Field(None, description="a zone of the plan's region; zones for several regions")
    zones: CommaList = Field(default_factory=list, description="comma-separated, one per region the plan may use")
    gke_context: str | None = Field(None, description="launch on GKE (the kubernetes provider) instead of Compute "
                                    "Engine VMs: how orch runs TPUs; the kubeconfig context of the cluster")
    namespace: str = Field("orch", description="with gke_context: the namespace orch deploys into")
    image: str = DEFAULT_IMAGE
    disk_gb: int = 200
    disk_type: str = "pd-balanced"
    network: str = "global/networks/default"
    subnetwork: str | None = None
    service_account: str | None = None
    billing_url: str | None = None
    operation_timeout_s: float = 900

    @staticmethod
    def zone_of(options: dict[str, Any], region_name: str) -> str | None:
        """The zone of ``region_name`` among options zone / zones ('a-zone,b-zone')."""
        zones = [z.strip() for z in (options.get("zones") or options.get("zone") or "").split(",") if z.strip()]
        return next((z for z in zones if z.startswith(region_name + "-")), None)

    @classmethod
    def for_region(cls, region_name: str, options: dict[str, Any], where: str, lenient: bool) -> dict[str, Any]:
        zone = cls.zone_of(options, region_name)
        if zone is None and lenient:
            zone = placeholder(f"{where}.zone (a zone of {region_name})")
        if zone is None:
            raise UserError(f"{where}: no zone in region {region_name}; set zone (or zones: 'a-zone,b-zone') "
                            f"to a zone of {region_name}, e.g. {region_name}-a")
        return {**options, "zone": zone}

    @classmethod
    def missing(cls, options: dict[str, Any], regions: list[str]) -> list[str]:
        if options.get("gke_context"):  # GKE needs none of the VM settings
            return []
        zoneless = [r for r in regions if cls.zone_of(options, r) is None]
        return super().missing(options, regions) + ([
            f"zones with a zone of {', '.join(zoneless)} (e.g. zones: '{','.join(r + '-a' for r in zoneless)}')"
        ] if zoneless else [])


@register
class GcpProvider(WithOfferingsRefresh, WithSpot, WithFirewall):
    name = kind = "gcp"
    Settings = GcpSettings

    def __init__(self, settings: GcpSettings | None = None, *, credentials: Any = None, client_options: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        s = settings or GcpSettings()
        self.project = s.project
        self.zone = s.zone
        self.image = s.image
        self.disk_gb = s.disk_gb
        self.disk_type = s.disk_type
        self.network = s.network
        self.subnetwork = s.subnetwork
        self.service_account = s.service_account
        self.client_options = client_options
        self.billing_url = s.billing_url
        self.operation_timeout_s = s.operation_timeout_s
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
            except Exception as exc:
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
        from providers.pricing.gcp import live_offerings

        return live_offerings(self, [bare_region("gcp", r) for r in regions] if regions else None)

    def _auth_headers(self) -> dict[str, str]:
        from google.auth.transport.requests import Request

        creds = self._creds()
        if not creds.valid:
            self._call("refresh credentials", lambda: creds.refresh(Request()))
        headers: dict[str, str] = {}
        creds.apply(headers)
        return headers



create = partial(build, "gcp")  # settings (GcpSettings) and wiring (credentials, client_options, sleep)
