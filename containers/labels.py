"""The labels (tags) on every resource orch creates, and label-safe values: one home that the container builders
and the providers both import (providers depend on containers, never the reverse)."""

from __future__ import annotations

import re

# GCP-safe keys: lowercase, digits, '-', '_'.
LABEL_PROJECT = "orch-project"
LABEL_DEPLOYMENT = "orch-deployment"
LABEL_PLAN = "orch-plan"
LABEL_REPLICA = "orch-replica"  # <group key>-<index>: stable, so a rerun finds what it made
LABEL_GPU = "orch-gpu"
LABEL_MARKET = "orch-market"
LABEL_NODES = "orch-nodes"  # nodes one replica spans; present only when > 1 (renderers read it)
LABEL_ROLE = "orch-role"  # "gateway" on a deployment's gateway (absent on replicas); leader/worker pods; firewall roles


def label_value(value: str) -> str:
    """A value every platform accepts as a label (GCP is strictest: [a-z0-9_-], at most 63 chars)."""
    v = re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-_")
    return v[:63].rstrip("-_") or "none"
