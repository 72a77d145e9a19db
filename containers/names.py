"""Names of what orch creates: one rule for containers, Kubernetes objects and cloud VMs on every provider."""

from __future__ import annotations

import hashlib
import re


def dns_label(value: str, max_len: int = 63) -> str:
    """An RFC 1123 label that starts with a letter (valid as a Kubernetes name, a GCP/Azure VM name and a
    GCP label); a name over `max_len` keeps a stable hash suffix of the whole value so it stays unique."""
    v = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    if not v or not v[0].isalpha():
        v = f"x-{v}".rstrip("-")
    if len(v) <= max_len:
        return v
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{v[: max_len - 9].rstrip('-')}-{digest}"


def replica_name(project: str, deployment: str, replica: str) -> str:
    """'<project>-<deployment>-<group>-<n>' for one replica, naming the project and deployment once even when
    the replica id already carries them (apply's ids do: '<project>-<deployment>-<group hash>-<n>')."""
    project, deployment, replica = (re.sub(r"[^a-z0-9-]+", "-", v.lower()).strip("-") for v in (project, deployment, replica))
    parts = [replica]
    if not replica.startswith(f"{project}-"):
        parts = [project, replica] if replica.startswith(f"{deployment}-") else [project, deployment, replica]
    return dns_label("-".join(parts))


def vm_name(project: str, deployment: str, replica: str, max_len: int = 63) -> str:
    """The cloud VM (AWS Name tag, GCP instance, Azure VM) of one replica: 'orch-' + its replica name."""
    return dns_label(f"orch-{replica_name(project, deployment, replica)}", max_len=max_len)
