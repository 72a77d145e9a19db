"""Azure network rules: a network security group per (project, deployment, role, location), holding exactly a
container's ingress, on the VM's NIC.

A container with ``ingress`` gets the NSG of its (project, deployment, role) in its location: inbound Allow rules
from priority 100 up, per Ingress port: TCP from the Ingress CIDRs (``sourceAddressPrefixes``), from the deployment's
gateway application security group for peer "gateway" (``sourceApplicationSecurityGroups``; gateway NICs are put
in that ASG) and from the ``VirtualNetwork`` service tag for peer "network". Azure's default rules allow all
VirtualNetwork traffic (AllowVnetInBound, 65000) before DenyAllInBound (65500), so one more rule (priority 4096)
denies those ports from anywhere else. The NSG and ASG are set on the NIC the compute API creates with the VM
(``networkSecurityGroup``, ``applicationSecurityGroups``: no network SDK needed). Both carry the tags orch-project,
orch-deployment and orch-role; ``cleanup`` deletes them, best effort, once no NIC uses them.

Resources go through plain ARM requests on the compute client's authenticated pipeline, with azure-mgmt-core's
ARM long-running-operation polling (azure-mgmt-network is not a dependency). ASG rules match traffic from the
gateway's *private* address inside one virtual network only.
"""

from __future__ import annotations

import logging
from typing import Any

from containers.labels import LABEL_ROLE
from containers.names import dns_label
from containers.spec import PEERS, ContainerSpec
from orchestrator.errors import NotFoundError, OrchError, UserError
from providers.base import LABEL_DEPLOYMENT, LABEL_PROJECT, Handle, Placement

log = logging.getLogger(__name__)

GATEWAY = "gateway"
FIRST_PRIORITY = 100
DENY_PRIORITY = 4096  # the last priority a user rule may have; Azure's own defaults come after it
_RULE_KEYS = ("protocol", "sourcePortRange", "destinationPortRange", "destinationPortRanges", "sourceAddressPrefix",
              "sourceAddressPrefixes", "sourceApplicationSecurityGroups", "destinationAddressPrefix", "access", "priority",
              "direction")


def nsg_name(project: str, deployment: str, role: str, location: str) -> str:
    return dns_label(f"orch-{project}-{deployment}-{role}-{location}", max_len=80)


def asg_name(project: str, deployment: str, location: str) -> str:
    return dns_label(f"orch-{project}-{deployment}-{GATEWAY}-{location}", max_len=80)


def tags(project: str, deployment: str, role: str) -> dict[str, str]:
    return {LABEL_PROJECT: project, LABEL_DEPLOYMENT: deployment, LABEL_ROLE: role}


def security_rules(container: ContainerSpec, asg_id: str | None) -> list[dict[str, Any]]:
    """The NSG's rules (ARM shape) for a container's ingress: allows, then one deny of the same ports."""
    rules: list[dict[str, Any]] = []

    def allow(name: str, port: int, **source: Any) -> None:
        rules.append({"name": name, "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": str(port), **source,
            "destinationAddressPrefix": "*", "access": "Allow", "priority": FIRST_PRIORITY + len(rules), "direction": "Inbound"}})

    for ing in sorted(container.ingress, key=lambda i: i.port):
        if ing.cidrs:
            allow(f"allow-{ing.port}-cidrs", ing.port, sourceAddressPrefixes=sorted(set(ing.cidrs)))
        for peer in ing.peers:
            if peer not in PEERS:
                raise UserError(f"azure: unknown ingress peer {peer!r}; known: {', '.join(PEERS)}")
            if peer == GATEWAY:
                allow(f"allow-{ing.port}-gateway", ing.port, sourceApplicationSecurityGroups=[{"id": asg_id}])
            else:
                allow(f"allow-{ing.port}-network", ing.port, sourceAddressPrefix="VirtualNetwork")
    rules.append({"name": "deny-other", "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRanges": sorted({str(i.port) for i in container.ingress}),
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Deny", "priority": DENY_PRIORITY,
        "direction": "Inbound"}})
    return rules


def _normal(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rules as compared: the fields orch sets, ids lower-cased (ARM may change their case), empty lists dropped."""
    out = {}
    for r in rules:
        props = r.get("properties", {})
        kept = {}
        for k in _RULE_KEYS:
            v = props.get(k)
            if k == "sourceApplicationSecurityGroups" and v:
                v = sorted(x["id"].lower() for x in v)
            if v not in (None, [], ""):
                kept[k] = v
        out[r["name"]] = kept
    return out


class AzureNetwork:
    """The NSGs and ASGs of one AzureProvider (its client, retries, subscription and resource group)."""

    def __init__(self, provider: Any) -> None:
        self.p = provider

    def _id(self, kind: str, name: str) -> str:
        sub = self.p.subscription_id or "<subscription id>"
        rg = self.p.resource_group or "<resource group>"
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/{kind}/{name}"

    # -- ARM plumbing ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        """One ARM request through the compute client's pipeline; returns the PipelineResponse."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.exceptions import ARMErrorFormat

        from providers.azure import NETWORK_API_VERSION

        url = path if "api-version=" in path else f"{path}{'&' if '?' in path else '?'}api-version={NETWORK_API_VERSION}"
        request = HttpRequest(method, url, json=body) if body is not None else HttpRequest(method, url)
        pipeline_response = self.p._client().send_request(request, _return_pipeline_response=True)
        response = pipeline_response.http_response
        if response.status_code not in ok:
            cls = ResourceNotFoundError if response.status_code == 404 else HttpResponseError
            raise cls(response=response, error_format=ARMErrorFormat)
        return pipeline_response

    def _lro(self, method: str, path: str, body: Any = None) -> Any:
        """PUT or DELETE, then ARM's long-running-operation polling (Azure-AsyncOperation / Location) to the end."""
        from azure.core.polling import LROPoller
        from azure.mgmt.core.polling.arm_polling import ARMPolling

        first = self._send(method, path, body, ok=(200, 201, 202, 204))

        def result(pipeline_response: Any) -> Any:
            resp = pipeline_response.http_response
            return resp.json() if resp.status_code == 200 and resp.content else None

        return LROPoller(self.p._client(), first, result, ARMPolling(self.p.polling_interval_s)).result()

    def _get(self, what: str, path: str) -> dict[str, Any] | None:
        try:
            return self.p._call(f"get {what}", lambda: self._send("GET", path).http_response.json())
        except NotFoundError:
            return None

    def _list(self, kind: str) -> list[dict[str, Any]]:
        def scan() -> list[dict[str, Any]]:
            items, link = [], self._id(kind, "").rstrip("/")
            while link:
                page = self._send("GET", link).http_response.json()
                items += page.get("value", [])
                link = page.get("nextLink")
            return items

        return self.p._call(f"list {kind} in {self.p.resource_group}", scan)

    # -- launch ---------------------------------------------------------------------------------------

    def bodies(self, container: ContainerSpec, placement: Placement) -> list[tuple[str, str, dict[str, Any]]]:
        """(kind, name, ARM body) of the ASG (when the gateway's is needed) and the NSG, in creation order."""
        project, deployment, role, loc = placement.project, placement.deployment, container.role, placement.region_name
        out = []
        asg_id = None
        if role == GATEWAY or any(GATEWAY in i.peers for i in container.ingress):
            name = asg_name(project, deployment, loc)
            asg_id = self._id("applicationSecurityGroups", name)
            out.append(("applicationSecurityGroups", name, {"location": loc, "tags": tags(project, deployment, GATEWAY), "properties": {}}))
        name = nsg_name(project, deployment, role, loc)
        out.append(("networkSecurityGroups", name, {"location": loc, "tags": tags(project, deployment, role),
                                                    "properties": {"securityRules": security_rules(container, asg_id)}}))
        return out

    def nic(self, container: ContainerSpec, placement: Placement) -> dict[str, Any]:
        """What the VM's NIC gets: the NSG id, and the gateway ASG for a gateway."""
        made = {kind: self._id(kind, name) for kind, name, _ in self.bodies(container, placement)}
        out: dict[str, Any] = {"nsg": made["networkSecurityGroups"], "asgs": []}
        if container.role == GATEWAY:
            out["asgs"] = [made["applicationSecurityGroups"]]
        return out

    def ensure(self, container: ContainerSpec, placement: Placement) -> dict[str, Any]:
        """Create, or bring up to date, the container's ASG and NSG (idempotent: unchanged ones are left alone)."""
        for kind, name, body in self.bodies(container, placement):
            path = self._id(kind, name)
            have = self._get(name, path)
            rules = body["properties"].get("securityRules")  # None: an ASG, which holds nothing to bring up to date
            if have is not None and (rules is None or _normal(have.get("properties", {}).get("securityRules", [])) == _normal(rules)):
                continue
            self.p._call(f"create {name}", lambda path=path, body=body: self._lro("PUT", path, body))
        return self.nic(container, placement)

    def planned(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        ops = {"applicationSecurityGroups": "application_security_groups", "networkSecurityGroups": "network_security_groups"}
        return [{"service": "network", "call": f"{ops[kind]}.begin_create_or_update",
                 "params": {"resource_group": self.p.resource_group, "name": name, "parameters": body}}
                for kind, name, body in self.bodies(container, placement)]

    # -- terminate ------------------------------------------------------------------------------------

    def cleanup(self, handle: Handle) -> None:
        """Delete the NSGs (then the gateway ASG) of the handle's deployment that no NIC uses any more. Best
        effort: a failure is logged as a warning, never raised."""
        project, deployment = handle.labels.get(LABEL_PROJECT), handle.labels.get(LABEL_DEPLOYMENT)
        if not project or not deployment:
            return
        try:
            self._cleanup(handle, project, deployment)
        except Exception as exc:  # noqa: BLE001 - cleanup must never stop a termination
            log.warning("azure: left the network security groups of %s/%s in place: %s", project, deployment, exc)

    def _cleanup(self, handle: Handle, project: str, deployment: str) -> None:
        def mine(item: dict[str, Any]) -> bool:
            t = item.get("tags") or {}
            return t.get(LABEL_PROJECT) == project and t.get(LABEL_DEPLOYMENT) == deployment and LABEL_ROLE in t

        gone_nic = f"/networkinterfaces/{handle.id}-nic".lower()  # the NIC deleted with the VM (deleteOption Delete)
        nsgs = [n for n in self._list("networkSecurityGroups") if mine(n)]
        left = list(nsgs)
        for nsg in sorted(nsgs, key=lambda n: n["tags"][LABEL_ROLE] == GATEWAY):
            props = nsg.get("properties", {})
            nics = [n["id"] for n in props.get("networkInterfaces", []) if not n["id"].lower().endswith(gone_nic)]
            if nics or props.get("subnets"):
                continue  # still in use
            if self._delete(nsg["name"], nsg["id"]):
                left.remove(nsg)
        for asg in (a for a in self._list("applicationSecurityGroups") if mine(a)):
            if not any(n.get("location") == asg.get("location") for n in left):  # no gateway NIC, no rule refers to it
                self._delete(asg["name"], asg["id"])

    def _delete(self, name: str, path: str) -> bool:
        try:
            self.p._call(f"delete {name}", lambda: self._lro("DELETE", path))
            return True
        except NotFoundError:
            return True
        except OrchError as exc:
            log.warning("azure: could not delete %s: %s", name, exc)
            return False
