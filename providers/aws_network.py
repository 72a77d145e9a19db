"""AWS network rules: one security group per (project, deployment, role), holding exactly a container's ingress.

A container with ``ingress`` gets the security group of its (project, deployment, role) in the VPC of the
provider's subnet (or the region's default VPC): TCP from each CIDR (``IpRanges``/``Ipv6Ranges``), from the
deployment's *gateway* security group for peer "gateway" (``UserIdGroupPairs``: the gateway's group is created,
empty, if no gateway has launched yet) and from the VPC's CIDR blocks for peer "network". Rules that are not wanted
are revoked, so the group allows exactly what the containers of that role ask for. Each group carries the tags
orch-project, orch-deployment and orch-role (and Name), by which it is found again and, once no instance uses it,
deleted (``cleanup``, best effort).

Security-group references match traffic to the instances' *private* addresses only (AWS documents this): a
gateway that reaches a replica through its public IP is seen as that public IP.
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
CLEANUP_WAIT_S = 300  # how long terminate waits for the last instance of a group to be gone before deleting it
_IN_USE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]

Rule = tuple[str, int | None, int | None, str, str]  # protocol, from port, to port, kind (cidr|cidr6|sg|prefix), source


def group_name(project: str, deployment: str, role: str) -> str:
    return dns_label(f"orch-{project}-{deployment}-{role}", max_len=255)


def group_tags(project: str, deployment: str, role: str) -> list[dict[str, str]]:
    return [{"Key": LABEL_PROJECT, "Value": project}, {"Key": LABEL_DEPLOYMENT, "Value": deployment},
            {"Key": LABEL_ROLE, "Value": role}, {"Key": "Name", "Value": group_name(project, deployment, role)}]


def wanted_rules(container: ContainerSpec, gateway_group: str | None, vpc_cidrs: list[str]) -> set[Rule]:
    """The TCP rules a container's ingress asks for (nothing else)."""
    out: set[Rule] = set()
    for ing in container.ingress:
        sources = [("cidr6" if ":" in c else "cidr", c) for c in ing.cidrs]
        for peer in ing.peers:
            if peer not in PEERS:
                raise UserError(f"aws: unknown ingress peer {peer!r}; known: {', '.join(PEERS)}")
            if peer == GATEWAY:
                sources.append(("sg", gateway_group or f"<security group {GATEWAY}>"))
            else:
                sources += [("cidr6" if ":" in c else "cidr", c) for c in vpc_cidrs]
        out |= {("tcp", ing.port, ing.port, kind, value) for kind, value in sources}
    return out


def existing_rules(permissions: list[dict[str, Any]]) -> set[Rule]:
    out: set[Rule] = set()
    for p in permissions:
        head = (p.get("IpProtocol", "-1"), p.get("FromPort"), p.get("ToPort"))
        out |= {(*head, "cidr", r["CidrIp"]) for r in p.get("IpRanges", [])}
        out |= {(*head, "cidr6", r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])}
        out |= {(*head, "sg", r["GroupId"]) for r in p.get("UserIdGroupPairs", [])}
        out |= {(*head, "prefix", r["PrefixListId"]) for r in p.get("PrefixListIds", [])}
    return out


def permissions(rules: set[Rule]) -> list[dict[str, Any]]:
    """Rules as EC2 IpPermissions, one source each (sorted: a stable request)."""
    keys = {"cidr": ("IpRanges", "CidrIp"), "cidr6": ("Ipv6Ranges", "CidrIpv6"), "sg": ("UserIdGroupPairs", "GroupId"),
            "prefix": ("PrefixListIds", "PrefixListId")}
    out = []
    for proto, lo, hi, kind, value in sorted(rules, key=lambda r: (r[0], r[1] or 0, r[2] or 0, r[3], r[4])):
        perm: dict[str, Any] = {"IpProtocol": proto}
        if lo is not None:
            perm.update(FromPort=lo, ToPort=hi)
        field, key = keys[kind]
        perm[field] = [{key: value}]
        out.append(perm)
    return out


def _code(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


class AwsNetwork:
    """The security groups of one AwsProvider (its clients, retries and subnet)."""

    def __init__(self, provider: Any) -> None:
        self.p = provider
        self._vpcs: dict[str, tuple[str, list[str]]] = {}

    # -- launch ---------------------------------------------------------------------------------------

    def vpc(self, ec2: Any, region: str) -> tuple[str, list[str]]:
        """The VPC instances launch into (the subnet's, else the default VPC) and its CIDR blocks."""
        if region not in self._vpcs:
            if self.p.subnet_id:
                sub = self.p._call(f"describe_subnets {self.p.subnet_id}", lambda: ec2.describe_subnets(SubnetIds=[self.p.subnet_id]))
                vpcs = self.p._call("describe_vpcs", lambda: ec2.describe_vpcs(VpcIds=[sub["Subnets"][0]["VpcId"]]))["Vpcs"]
            else:
                flt = [{"Name": "is-default", "Values": ["true"]}]
                vpcs = self.p._call("describe_vpcs (default)", lambda: ec2.describe_vpcs(Filters=flt))["Vpcs"]
                if not vpcs:
                    raise UserError(f"aws: no default VPC in {region}; set providers.aws.subnet_id")
            vpc = vpcs[0]
            cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
                     if a.get("CidrBlockState", {}).get("State", "associated") == "associated"] or [vpc["CidrBlock"]]
            cidrs += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])
                      if a.get("Ipv6CidrBlockState", {}).get("State", "associated") == "associated"]
            self._vpcs[region] = (vpc["VpcId"], cidrs)
        return self._vpcs[region]

    def group(self, ec2: Any, vpc_id: str, project: str, deployment: str, role: str) -> dict[str, Any]:
        """The (project, deployment, role) security group in this VPC: found by its tags, else created."""
        flt = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": f"tag:{LABEL_PROJECT}", "Values": [project]},
               {"Name": f"tag:{LABEL_DEPLOYMENT}", "Values": [deployment]}, {"Name": f"tag:{LABEL_ROLE}", "Values": [role]}]
        name = group_name(project, deployment, role)
        found = self.p._call(f"describe_security_groups {name}", lambda: ec2.describe_security_groups(Filters=flt))["SecurityGroups"]
        if found:
            return found[0]

        def create() -> dict[str, Any] | None:
            try:
                return ec2.create_security_group(
                    GroupName=name, VpcId=vpc_id, Description=f"orch {role} of {project}/{deployment} (managed by orch)",
                    TagSpecifications=[{"ResourceType": "security-group", "Tags": group_tags(project, deployment, role)}])
            except Exception as exc:
                if _code(exc) == "InvalidGroup.Duplicate":  # another launch made it in the meantime
                    return None
                raise

        made = self.p._call(f"create_security_group {name}", create)
        by_name = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}]
        groups = self.p._call(f"describe_security_groups {name}", lambda: ec2.describe_security_groups(
            **({"GroupIds": [made["GroupId"]]} if made else {"Filters": by_name})))["SecurityGroups"]
        if not groups:
            raise NotFoundError(f"aws: security group {name} vanished right after it was created")
        return groups[0]

    def ensure(self, ec2: Any, region: str, container: ContainerSpec, placement: Placement) -> str:
        """The id of the container's security group, holding exactly its ingress rules (idempotent)."""
        vpc_id, cidrs = self.vpc(ec2, region)
        project, deployment = placement.project, placement.deployment
        gateway = None
        if container.role == GATEWAY or any(GATEWAY in i.peers for i in container.ingress):
            gateway = self.group(ec2, vpc_id, project, deployment, GATEWAY)
        own = gateway if container.role == GATEWAY and gateway else self.group(ec2, vpc_id, project, deployment, container.role)
        sg = own["GroupId"]
        want = wanted_rules(container, gateway["GroupId"] if gateway else None, cidrs)
        have = existing_rules(own.get("IpPermissions", []))

        def tolerant(fn: Any, ok: str) -> Any:
            def run() -> Any:
                try:
                    return fn()
                except Exception as exc:
                    if _code(exc) == ok:  # a concurrent launch did the same
                        return None
                    raise
            return run

        if want - have:
            perms = permissions(want - have)
            self.p._call(f"authorize_security_group_ingress {sg}", tolerant(
                lambda: ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=perms), "InvalidPermission.Duplicate"))
        if have - want:
            extra = permissions(have - want)
            self.p._call(f"revoke_security_group_ingress {sg}", tolerant(
                lambda: ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=extra), "InvalidPermission.NotFound"))
        return sg

    def planned(self, container: ContainerSpec, placement: Placement) -> tuple[list[dict[str, Any]], str]:
        """The calls ``ensure`` makes when nothing exists yet (no credentials), and the group id placeholder."""
        region = placement.region_name
        project, deployment, role = placement.project, placement.deployment, container.role
        calls: list[dict[str, Any]] = []

        def call(name: str, params: dict[str, Any]) -> None:
            calls.append({"service": "ec2", "region": region, "call": name, "params": params})

        if self.p.subnet_id:
            call("describe_subnets", {"SubnetIds": [self.p.subnet_id]})
        call("describe_vpcs", {"VpcIds": ["<the subnet's VPC>"]} if self.p.subnet_id else {"Filters": [{"Name": "is-default", "Values": ["true"]}]})
        roles = ([GATEWAY] if role == GATEWAY or any(GATEWAY in i.peers for i in container.ingress) else []) + \
            ([role] if role != GATEWAY else [])
        for r in roles:
            name = group_name(project, deployment, r)
            call("create_security_group", {
                "GroupName": name, "VpcId": "<the VPC>", "Description": f"orch {r} of {project}/{deployment} (managed by orch)",
                "TagSpecifications": [{"ResourceType": "security-group", "Tags": group_tags(project, deployment, r)}]})
        own = f"<security group {group_name(project, deployment, role)}>"
        rules = wanted_rules(container, f"<security group {group_name(project, deployment, GATEWAY)}>", ["<the VPC's CIDR>"])
        if rules:
            call("authorize_security_group_ingress", {"GroupId": own, "IpPermissions": permissions(rules)})
        return calls, own

    # -- terminate ------------------------------------------------------------------------------------

    def cleanup(self, ec2: Any, handle: Handle) -> None:
        """Delete the security groups of the handle's deployment that no instance uses any more. Best effort:
        a failure is logged as a warning, never raised."""
        project, deployment = handle.labels.get(LABEL_PROJECT), handle.labels.get(LABEL_DEPLOYMENT)
        if not project or not deployment:
            return
        try:
            self._cleanup(ec2, handle, project, deployment)
        except Exception as exc:  # noqa: BLE001 - cleanup must never stop a termination
            log.warning("aws: left the security groups of %s/%s in place: %s", project, deployment, exc)

    def _cleanup(self, ec2: Any, handle: Handle, project: str, deployment: str) -> None:
        flt = [{"Name": f"tag:{LABEL_PROJECT}", "Values": [project]}, {"Name": f"tag:{LABEL_DEPLOYMENT}", "Values": [deployment]},
               {"Name": "tag-key", "Values": [LABEL_ROLE]}]
        groups = self.p._call("describe_security_groups", lambda: ec2.describe_security_groups(Filters=flt))["SecurityGroups"]
        if not groups:
            return
        ids = [g["GroupId"] for g in groups]
        users: dict[str, set[str]] = {i: set() for i in ids}
        ifl = [{"Name": "instance.group-id", "Values": ids}, {"Name": "instance-state-name", "Values": _IN_USE_STATES}]
        for page in self.p._call("describe_instances by group", lambda: list(ec2.get_paginator("describe_instances").paginate(Filters=ifl))):
            for res in page.get("Reservations", []):
                for inst in res.get("Instances", []):
                    for g in inst.get("SecurityGroups", []):
                        users.get(g["GroupId"], set()).add(inst["InstanceId"])
        free = [g for g in groups if not users[g["GroupId"]] - {handle.id}]
        if any(handle.id in users[g["GroupId"]] for g in free):  # the group can go once this instance is gone
            waiter = ec2.get_waiter("instance_terminated")
            waiter.wait(InstanceIds=[handle.id], WaiterConfig={"Delay": 10, "MaxAttempts": max(1, CLEANUP_WAIT_S // 10)})
        role = {g["GroupId"]: next((t["Value"] for t in g.get("Tags", []) if t["Key"] == LABEL_ROLE), "") for g in groups}
        vpc = {g["GroupId"]: g.get("VpcId") for g in groups}
        left = set(ids)
        for g in sorted(free, key=lambda g: role[g["GroupId"]] == GATEWAY):  # the gateway's group is referenced: last
            gid = g["GroupId"]
            if role[gid] == GATEWAY and any(role[o] != GATEWAY and vpc[o] == vpc[gid] for o in left):
                continue  # a group of this deployment in the same VPC still refers to it
            try:
                self.p._call(f"delete_security_group {gid}", lambda gid=gid: ec2.delete_security_group(GroupId=gid))
                left.discard(gid)
            except NotFoundError:
                left.discard(gid)
            except OrchError as exc:
                log.warning("aws: could not delete security group %s (%s): %s", gid, g.get("GroupName"), exc)
