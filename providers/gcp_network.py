"""GCP network rules: VPC firewall rules per (project, deployment, role, port), holding exactly a container's ingress.

A container with ``ingress`` is launched with the network tag of its (project, deployment, role)
(``orch-<project>-<deployment>-<role>``). For each Ingress port, one INGRESS rule on the provider's network allows
``tcp:<port>`` to that tag from the Ingress CIDRs (``sourceRanges``), from the deployment's gateway tag for peer
"gateway" (``sourceTags``) and from the IP range of the instance's subnetwork for peer "network" (looked up:
the configured ``subnetwork``, else the network's subnetwork in the instance's region). One more rule, at the next
priority, denies those ports to the tag from everywhere else: the default network's ``default-allow-internal``
(priority 65534) and any user rule below orch's priority do not open them. GCP firewall rules have no labels:
their names are derived from (project, deployment, role, port) and the description carries orch-project,
orch-deployment and orch-role, by which ``cleanup`` finds and deletes them once no instance has the tag.

Source tags match traffic from the instances' *internal* addresses only (GCP documents this): a gateway that
reaches a replica through its external IP is seen as that IP.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from containers.labels import LABEL_ROLE, label_value
from containers.names import dns_label
from containers.spec import PEERS, ContainerSpec
from orchestrator.errors import NotFoundError, OrchError, TransientError, UserError
from providers.base import LABEL_DEPLOYMENT, LABEL_PROJECT, Handle, Placement

log = logging.getLogger(__name__)

GATEWAY = "gateway"
ALLOW_PRIORITY = 900  # before user rules at the default 1000
DENY_PRIORITY = ALLOW_PRIORITY + 1
_DESCRIPTION = re.compile(r"(orch-[a-z]+)=(\S+)")


def network_tag(project: str, deployment: str, role: str) -> str:
    return dns_label(f"orch-{project}-{deployment}-{role}")


def rule_name(project: str, deployment: str, role: str, port: int | str) -> str:
    return dns_label(f"orch-{project}-{deployment}-{role}-{port}")


def description(project: str, deployment: str, role: str) -> str:
    return (f"{LABEL_PROJECT}={label_value(project)} {LABEL_DEPLOYMENT}={label_value(deployment)} {LABEL_ROLE}={label_value(role)} "
            "(managed by orch)")


def firewalls(container: ContainerSpec, placement: Placement, network: str, subnet_range: str) -> list[Any]:
    """The firewall rules for a container's ingress: one allow per port, then one deny for those ports."""
    from google.cloud import compute_v1

    project, deployment, role = placement.project, placement.deployment, container.role
    tag = network_tag(project, deployment, role)
    out = []
    for ing in sorted(container.ingress, key=lambda i: i.port):
        ranges, tags = list(ing.cidrs), []
        for peer in ing.peers:
            if peer not in PEERS:
                raise UserError(f"gcp: unknown ingress peer {peer!r}; known: {', '.join(PEERS)}")
            if peer == GATEWAY:
                tags.append(network_tag(project, deployment, GATEWAY))
            else:
                ranges.append(subnet_range)
        if not ranges and not tags:
            continue  # nobody may connect: the deny rule says it
        out.append(compute_v1.Firewall(
            name=rule_name(project, deployment, role, ing.port), network=network, direction="INGRESS",
            priority=ALLOW_PRIORITY, description=description(project, deployment, role),
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=[str(ing.port)])],
            source_ranges=sorted(set(ranges)), source_tags=sorted(set(tags)), target_tags=[tag]))
    ports = sorted({str(i.port) for i in container.ingress})
    out.append(compute_v1.Firewall(
        name=rule_name(project, deployment, role, "deny"), network=network, direction="INGRESS",
        priority=DENY_PRIORITY, description=description(project, deployment, role),
        denied=[compute_v1.Denied(I_p_protocol="tcp", ports=ports)], source_ranges=["0.0.0.0/0"], target_tags=[tag]))
    return out


def _same(a: Any, b: Any) -> bool:
    def key(f: Any) -> tuple:
        rules = lambda xs: sorted((x.I_p_protocol, tuple(sorted(x.ports))) for x in xs)  # noqa: E731
        return (f.direction, f.priority, sorted(f.source_ranges), sorted(f.source_tags), sorted(f.target_tags),
                rules(f.allowed), rules(f.denied), bool(f.disabled))

    return key(a) == key(b)


class GcpNetwork:
    """The firewall rules of one GcpProvider (its clients, retries, project and network)."""

    def __init__(self, provider: Any) -> None:
        self.p = provider
        self._ranges: dict[str, str] = {}

    def tags(self, container: ContainerSpec, placement: Placement) -> list[str]:
        return [network_tag(placement.project, placement.deployment, container.role)] if container.ingress else []

    def _wait(self, op: Any) -> None:
        """Wait for a global operation; raise its error (a 409 as Conflict), if any."""
        from google.api_core import exceptions as gexc
        from google.cloud import compute_v1

        ops = self.p._client("GlobalOperationsClient")
        deadline = time.monotonic() + self.p.operation_timeout_s
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise TransientError(f"gcp: operation {op.name} still {op.status.name} after {self.p.operation_timeout_s:.0f}s")
            op = ops.wait(project=self.p.project, operation=op.name)
        errors = list(op.error.errors) if op.error else []
        if errors or op.http_error_status_code >= 400:
            text = "; ".join(f"{e.code}: {e.message}" for e in errors) or op.http_error_message
            code = op.http_error_status_code or (409 if any(e.code == "RESOURCE_ALREADY_EXISTS" for e in errors) else 500)
            raise gexc.from_http_status(code, text, errors=[{"reason": e.code} for e in errors])

    def subnet_range(self, region: str) -> str:
        """The primary IP range of the subnetwork instances in ``region`` get (peer "network")."""
        if region not in self._ranges:
            project, name = self.p.project, None
            if self.p.subnetwork:
                m = re.search(r"(?:projects/([^/]+)/)?regions/([^/]+)/subnetworks/([^/]+)$", self.p.subnetwork)
                project, region_of, name = (m.group(1) or project, m.group(2), m.group(3)) if m else (project, region, self.p.subnetwork)
            else:
                net = self.p.network.rstrip("/").rsplit("/", 1)[-1]
                networks = self.p._client("NetworksClient")
                found = self.p._call(f"get network {net}", lambda: networks.get(project=project, network=net))
                link = next((s for s in found.subnetworks if f"/regions/{region}/subnetworks/" in s), None)
                if link is None:
                    raise UserError(f"gcp: network {net} has no subnetwork in {region}; set providers.gcp.subnetwork")
                m = re.search(r"projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)$", link)
                project, region_of, name = m.group(1), m.group(2), m.group(3)  # type: ignore[union-attr]
            subnets = self.p._client("SubnetworksClient")
            sub = self.p._call(f"get subnetwork {name}", lambda: subnets.get(project=project, region=region_of, subnetwork=name))
            self._ranges[region] = sub.ip_cidr_range
        return self._ranges[region]

    def ensure(self, container: ContainerSpec, placement: Placement) -> None:
        """Create, or bring up to date, the container's firewall rules (idempotent; a 409 is someone else's insert)."""
        from google.api_core.exceptions import Conflict

        needs_range = any("network" in i.peers for i in container.ingress)
        subnet = self.subnet_range(placement.region_name) if needs_range else ""
        client = self.p._client("FirewallsClient")
        wanted = firewalls(container, placement, self.p.network, subnet)
        changed = False
        for fw in wanted:
            try:
                have = self.p._call(f"get firewall {fw.name}", lambda fw=fw: client.get(project=self.p.project, firewall=fw.name))
            except NotFoundError:
                have = None
            if have is not None and _same(have, fw):
                continue

            def put(fw: Any = fw, have: Any = have) -> None:
                try:
                    if have is None:
                        self._wait(client.insert_unary(project=self.p.project, firewall_resource=fw))
                    else:
                        self._wait(client.update_unary(project=self.p.project, firewall=fw.name, firewall_resource=fw))
                except Conflict:
                    pass  # inserted by a concurrent launch of the same role

            self.p._call(f"{'insert' if have is None else 'update'} firewall {fw.name}", put)
            changed = True
        if changed:  # a port may have gone from the spec: its rule goes too
            names = {fw.name for fw in wanted}
            for fw, labels in self._mine(label_value(placement.project), label_value(placement.deployment)):
                if labels.get(LABEL_ROLE) == label_value(container.role) and fw.name not in names:
                    self._delete(fw.name)

    def planned(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        from google.cloud import compute_v1

        region = placement.region_name
        calls: list[dict[str, Any]] = []
        if any("network" in i.peers for i in container.ingress):  # the subnetwork's range is looked up first
            lookup = ("subnetworks.get", {"region": region, "subnetwork": self.p.subnetwork}) if self.p.subnetwork else \
                ("networks.get", {"network": self.p.network})
            calls.append({"service": "compute", "call": lookup[0], "params": {"project": self.p.project, **lookup[1]}})
        for fw in firewalls(container, placement, self.p.network, f"<IP range of the subnetwork in {region}>"):
            calls.append({"service": "compute", "call": "firewalls.insert",
                          "params": {"project": self.p.project, "firewall_resource": compute_v1.Firewall.to_dict(fw)}})
        return calls

    # -- terminate ------------------------------------------------------------------------------------

    def cleanup(self, handle: Handle) -> None:
        """Delete the firewall rules of the handle's deployment whose tag no instance carries any more. Best
        effort: a failure is logged as a warning, never raised."""
        project, deployment = handle.labels.get(LABEL_PROJECT), handle.labels.get(LABEL_DEPLOYMENT)
        if not project or not deployment:
            return
        try:
            self._cleanup(handle, label_value(project), label_value(deployment))
        except Exception as exc:  # noqa: BLE001 - cleanup must never stop a termination
            log.warning("gcp: left the firewall rules of %s/%s in place: %s", project, deployment, exc)

    def _mine(self, project: str, deployment: str) -> list[tuple[Any, dict[str, str]]]:
        """orch's firewall rules of one deployment, with the labels their description carries."""
        from google.cloud import compute_v1

        client = self.p._client("FirewallsClient")
        listing = compute_v1.ListFirewallsRequest(project=self.p.project, filter='name eq "orch-.*"')
        out = []
        for fw in self.p._call("list firewalls", lambda: list(client.list(request=listing))):
            labels = dict(_DESCRIPTION.findall(fw.description or ""))
            if labels.get(LABEL_PROJECT) == project and labels.get(LABEL_DEPLOYMENT) == deployment:
                out.append((fw, labels))
        return out

    def _delete(self, name: str) -> None:
        client = self.p._client("FirewallsClient")
        try:
            self.p._call(f"delete firewall {name}", lambda: self._wait(client.delete_unary(project=self.p.project, firewall=name)))
        except NotFoundError:
            pass
        except OrchError as exc:
            log.warning("gcp: could not delete firewall rule %s: %s", name, exc)

    def _cleanup(self, handle: Handle, project: str, deployment: str) -> None:
        from google.cloud import compute_v1

        mine = [fw for fw, _ in self._mine(project, deployment)]
        if not mine:
            return
        instances = self.p._client("InstancesClient")
        terms = f'(labels.{LABEL_PROJECT} = "{project}") AND (labels.{LABEL_DEPLOYMENT} = "{deployment}")'
        request = compute_v1.AggregatedListInstancesRequest(project=self.p.project, filter=terms)
        gone = handle.id.rsplit("/", 1)[-1]

        def used() -> set[str]:
            return {t for _, scoped in instances.aggregated_list(request=request) for inst in scoped.instances
                    if inst.name != gone for t in inst.tags.items}

        in_use = self.p._call("aggregated_list instances", used)
        for fw in mine:
            if not set(fw.target_tags) & in_use:
                self._delete(fw.name)
