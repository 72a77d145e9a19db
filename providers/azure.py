"""Azure provider: one VM per replica, from the Ubuntu HPC marketplace image (NVIDIA driver, CUDA and Docker
preinstalled: publisher microsoft-dsvm, offer ubuntu-hpc, sku 2204), running the vLLM container from its custom data.

The VM's NIC and public IP are created by the compute API itself (networkProfile.networkInterfaceConfigurations,
deleted with the VM), in the subnet given as ``subnet_id``, so no network SDK is needed; the NIC and IP are read
back through the same authenticated ARM pipeline. A container with ``ingress`` gets orch's network security group
on that NIC (providers.azure_network); without, the subnet's network security group must allow the vLLM port.
Credentials come only from azure-identity's DefaultAzureCredential chain; none is stored or logged.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from containers.spec import ContainerSpec
from orchestrator.catalog.types import Offering
from orchestrator.errors import NotFoundError, ProviderError, UserError
from providers.abilities import WithFirewall, WithOfferingsRefresh, WithSpot
from providers.azure_errors import map_error
from providers.base import LABEL_PROJECT, Handle, Placement, State
from providers.pricing import bare_region, qualified_region
from providers.registry import ProviderSettings, create as build, needed, placed, register
from providers.retry import with_retries

DEFAULT_IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
NETWORK_API_VERSION = "2023-09-01"  # Microsoft.Network, for reading the NIC and public IP back
PORT_TAG = "orch-port"
_POWER: dict[str, State] = {
    "starting": "pending",
    "running": "running",
    "stopping": "stopped",
    "stopped": "stopped",
    "deallocating": "stopped",
    "deallocated": "stopped",
}


def _one_off_ssh_key() -> str:
    """Azure requires an SSH key or password; without a user key, a throwaway public key (private half discarded)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode() + " orch-no-login"


def _image(value: object) -> object:
    """The image as the az CLI takes it, a ``publisher:offer:sku:version`` URN, or its parts."""
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) != 4:
        raise ValueError(f"image {value!r} is not publisher:offer:sku:version")
    return dict(zip(("publisher", "offer", "sku", "version"), parts))


class AzureSettings(ProviderSettings):
    """providers.azure.options (and the location, from the plan)."""

    subscription_id: str | None = needed("the subscription to launch in")
    resource_group: str | None = needed("the resource group of the VMs")
    key_vault: str | None = needed("the Key Vault that holds the endpoint's keys")
    location: str | None = placed("the region to launch in (azure:eastus or eastus)")
    base_url: str | None = None
    subnet_id: str | None = None
    image: Annotated[dict[str, str], BeforeValidator(_image)] = Field(default_factory=lambda: dict(DEFAULT_IMAGE))
    admin_username: str = "orch"
    ssh_public_key: str | None = None
    disk_gb: int = 200
    prices_url: str | None = None
    polling_interval_s: float = 10


@register
class AzureProvider(WithOfferingsRefresh, WithSpot, WithFirewall):
    name = kind = "azure"
    Settings = AzureSettings

    def __init__(self, settings: AzureSettings | None = None, *, credential: Any = None,
                 client_kwargs: dict[str, Any] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        s = settings or AzureSettings()
        self.subscription_id = s.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID")
        self.resource_group = s.resource_group
        self.location = bare_region("azure", s.location) if s.location else None
        self.base_url = s.base_url
        self.subnet_id = s.subnet_id
        self.image = dict(s.image)
        self.admin_username = s.admin_username
        self.ssh_public_key = s.ssh_public_key
        self.key_vault = s.key_vault
        self.disk_gb = s.disk_gb
        self.prices_url = s.prices_url
        self.polling_interval_s = s.polling_interval_s
        self._client_kwargs = dict(client_kwargs or {})
        self._credential = credential
        self._sleep = sleep
        self._compute: Any = None
        from providers.azure_network import AzureNetwork

        self.network = AzureNetwork(self)

    # -- plumbing -------------------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._compute is None:
            from azure.mgmt.compute import ComputeManagementClient

            if not self.subscription_id:
                raise UserError("azure: no subscription id; set providers.azure.subscription_id or AZURE_SUBSCRIPTION_ID")
            if not self.resource_group:
                raise UserError("azure: no resource group; set providers.azure.resource_group")
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            kwargs = dict(self._client_kwargs)
            if self.base_url:
                kwargs["base_url"] = self.base_url
            self._compute = ComputeManagementClient(self._credential, self.subscription_id, **kwargs)
        return self._compute

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        def once() -> Any:
            try:
                return fn()
            except ProviderError:
                raise
            except Exception as exc:
                from azure.core.exceptions import AzureError

                if isinstance(exc, AzureError):
                    raise map_error(exc, what) from None
                raise

        return with_retries(once, sleep=self._sleep)

    @staticmethod
    def vm_name(placement: Placement) -> str:
        return placement.vm_name(max_len=64)

    # -- launch ---------------------------------------------------------------------------------------

    def vm_body(
        self, container: ContainerSpec, placement: Placement, *, subnet_id: str | None = None, ssh_key: str | None = None
    ) -> dict[str, Any]:
        """The VM resource (ARM REST shape) for one replica; customData is the base64 startup script."""
        from containers.render.vm import secret_fetch_lines, startup_script

        subnet_id = subnet_id or self.subnet_id
        if not subnet_id:
            raise UserError("azure: subnet_id is required (the VM's NIC is created in that subnet)")
        try:
            fetch = secret_fetch_lines(container, "azure", vault=self.key_vault)
        except ValueError as exc:
            raise UserError(f"azure: {exc}; set providers.azure.options.key_vault") from None
        name = self.vm_name(placement)
        port = next(iter(container.ports.values()), 8000)
        script = startup_script(container, fetch_secrets=fetch or None)
        props: dict[str, Any] = {
            "hardwareProfile": {"vmSize": placement.instance_type},
            "storageProfile": {
                "imageReference": self.image,
                "osDisk": {
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                    "diskSizeGB": self.disk_gb,
                    "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                },
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": self.admin_username,
                "customData": base64.b64encode(script.encode()).decode(),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {
                        "publicKeys": [
                            {
                                "path": f"/home/{self.admin_username}/.ssh/authorized_keys",
                                "keyData": ssh_key or self.ssh_public_key or _one_off_ssh_key(),
                            }
                        ]
                    },
                },
            },
            "networkProfile": {
                "networkApiVersion": "2022-11-01",
                "networkInterfaceConfigurations": [
                    {
                        "name": f"{name}-nic",
                        "properties": {
                            "primary": True,
                            "deleteOption": "Delete",
                            "ipConfigurations": [
                                {
                                    "name": "ipconfig1",
                                    "properties": {
                                        "subnet": {"id": subnet_id},
                                        "publicIPAddressConfiguration": {
                                            "name": f"{name}-ip",
                                            "sku": {"name": "Standard"},
                                            "properties": {"deleteOption": "Delete", "publicIPAllocationMethod": "Static"},
                                        },
                                    },
                                }
                            ],
                        },
                    }
                ],
            },
        }
        if placement.market == "spot":
            props.update({"priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1}})
        body: dict[str, Any] = {
            "location": placement.region_name,
            "tags": {**placement.labels(), PORT_TAG: str(port)},
            "properties": props,
        }
        if placement.zone:
            body["zones"] = [placement.zone]
        return body

    @staticmethod
    def attach_network(props: dict[str, Any], network: dict[str, Any]) -> None:
        """Put the NIC in its NSG (``nsg``) and application security groups (``asgs``: a gateway's)."""
        nic = props["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
        nic["networkSecurityGroup"] = {"id": network["nsg"]}
        if network.get("asgs"):
            nic["ipConfigurations"][0]["properties"]["applicationSecurityGroups"] = [{"id": a} for a in network["asgs"]]

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        body = self.vm_body(
            container,
            placement,
            subnet_id=self.subnet_id or "<set providers.azure.options.subnet_id>",
            ssh_key=self.ssh_public_key or "<a throwaway key generated at launch (set ssh_public_key to log in)>",
        )
        if container.ingress:
            self.attach_network(body["properties"], self.network.nic(container, placement))
        shown = {**body, "properties": {**body["properties"]}}
        os_profile = dict(shown["properties"]["osProfile"])
        os_profile["customData"] = "<base64 of the startup script below>"
        shown["properties"]["osProfile"] = os_profile
        return (self.network.planned(container, placement) if container.ingress else []) + [
            {
                "service": "compute",
                "call": "virtual_machines.begin_create_or_update",
                "params": {"resource_group": self.resource_group, "vm_name": self.vm_name(placement), "parameters": shown},
                "startup_script": base64.b64decode(body["properties"]["osProfile"]["customData"]).decode(),
            }
        ]

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        client = self._client()
        name = self.vm_name(placement)
        body = self.vm_body(container, placement)  # checks the settings before any network call
        if container.ingress:
            self.attach_network(body["properties"], self.network.ensure(container, placement))
        # PUT is idempotent by name: a retried launch converges on the same VM.
        self._call(
            f"create {placement.instance_type} in {placement.region_name}",
            lambda: client.virtual_machines.begin_create_or_update(
                self.resource_group, name, body, polling_interval=self.polling_interval_s
            ).result(),
        )
        return self.describe(name, placement.region)

    # -- read -----------------------------------------------------------------------------------------

    def _arm_get(self, resource_id: str) -> dict[str, Any]:
        from azure.core.rest import HttpRequest

        resp = self._client().send_request(HttpRequest("GET", f"{resource_id}?api-version={NETWORK_API_VERSION}"))
        resp.raise_for_status()
        return resp.json()

    def _public_ip(self, vm: dict[str, Any]) -> str | None:
        nics = vm.get("properties", {}).get("networkProfile", {}).get("networkInterfaces") or []
        if not nics:
            return None
        nic = self._arm_get(nics[0]["id"])
        for ipc in nic.get("properties", {}).get("ipConfigurations", []):
            props = ipc.get("properties", {})
            pip = props.get("publicIPAddress", {}).get("id")
            if pip:
                address = self._arm_get(pip).get("properties", {}).get("ipAddress")
                if address:
                    return address
            if props.get("privateIPAddress"):
                return props["privateIPAddress"]
        return None

    def _handle(self, vm: dict[str, Any], with_endpoint: bool) -> Handle:
        props = vm.get("properties", {})
        prov = (props.get("provisioningState") or "").lower()
        statuses = [s.get("code", "") for s in (props.get("instanceView") or {}).get("statuses", [])]
        power = next((c.split("/", 1)[1] for c in statuses if c.startswith("PowerState/")), None)
        state: State
        if prov == "deleting":
            state = "terminated"
        elif power in _POWER:
            state = _POWER[power]
        elif prov in ("creating", "updating"):
            state = "pending"
        elif prov == "succeeded":
            state = "running" if power is None and not statuses else "unknown"
        else:
            state = "unknown"
        tags = vm.get("tags") or {}
        endpoint = None
        if with_endpoint and state == "running":
            ip = self._public_ip(vm)
            endpoint = f"http://{ip}:{tags.get(PORT_TAG, '8000')}" if ip else None
        return Handle(
            provider="azure",
            id=vm["name"],
            region=qualified_region("azure", vm.get("location", "")),
            state=state,
            labels={k: v for k, v in tags.items() if k.startswith("orch-") and k != PORT_TAG},
            endpoint=endpoint,
            details={
                "vm_size": props.get("hardwareProfile", {}).get("vmSize"),
                "priority": props.get("priority", "Regular"),
                "provisioning_state": props.get("provisioningState"),
                "resource_group": self.resource_group,
            },
        )

    def describe(self, handle_id: str, region: str) -> Handle:
        client = self._client()

        def get() -> Handle:
            vm = client.virtual_machines.get(self.resource_group, handle_id, expand="instanceView")
            return self._handle(dict(vm), with_endpoint=True)

        return self._call(f"get {handle_id}", get)

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        client = self._client()
        locations = {bare_region("azure", r) for r in regions} if regions else None

        def scan() -> list[Handle]:
            found = []
            for vm in client.virtual_machines.list(self.resource_group):
                vm = dict(vm)
                tags = vm.get("tags") or {}
                if labels and any(tags.get(k) != v for k, v in labels.items()):
                    continue
                if not labels and LABEL_PROJECT not in tags:
                    continue
                if locations is not None and vm.get("location") not in locations:
                    continue
                found.append(self._handle(vm, with_endpoint=False))
            return found

        return self._call(f"list VMs in {self.resource_group}", scan)

    def terminate(self, handle: Handle) -> None:
        client = self._client()
        try:
            self._call(
                f"delete {handle.id}",
                lambda: client.virtual_machines.begin_delete(
                    self.resource_group, handle.id, polling_interval=self.polling_interval_s
                ).result(),
            )
        except NotFoundError:
            pass  # already gone
        self.network.cleanup(handle)  # its NSG and ASG, once no NIC uses them (never raises)

    # -- catalog --------------------------------------------------------------------------------------

    def offerings(self, regions: list[str] | None = None) -> list[Offering]:
        """Retail list prices (no credentials needed) for the GPU sizes orch knows, per region."""
        from providers.pricing.azure import live_offerings

        names = [bare_region("azure", r) for r in regions] if regions else [self.location or "eastus"]
        return live_offerings(names, self.prices_url, self._sleep)


create = partial(build, "azure")  # settings (AzureSettings) and wiring (credential, client_kwargs, sleep)
