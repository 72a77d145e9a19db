"""What `orch apply` will need from the deployment file to launch on each provider it declares: checked when the
file is loaded, so that a missing setting shows at `validate` and `place`, not after a plan is made.

An unknown setting is an error (apply would refuse it); a missing one a warning (the file still plans, and a
dry run shows a placeholder). The factories in orchestrator.apply.targets read the same REQUIRED table.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from orchestrator.spec.problems import Issue

# settings apply cannot launch without, per cloud (GCP on GKE, with gke_context, needs none of these)
REQUIRED = {
    "gcp": {"project": "the GCP project id to launch in"},
    "azure": {"subscription_id": "the subscription to launch in", "resource_group": "the resource group of the VMs",
              "key_vault": "the Key Vault that holds the endpoint's keys"},
}
# settings the targets read themselves, on top of each provider's create() parameters
EXTRA = {"gcp": {"zone", "zones", "gke_context", "namespace"}, "aws": set(), "azure": set()}
INTERNAL = {"region", "zone", "location", "session", "sleep", "client_options", "client_kwargs", "credential",
            "credentials", "compute_client", "network_client", "endpoint_url"}  # passed by orch or tests; never secrets


def settings_known(kind: str) -> set[str]:
    """The option keys providers.<kind>.options may hold."""
    params = inspect.signature(importlib.import_module(f"providers.{kind}").create).parameters
    return ({p for p in params if p not in INTERNAL} | EXTRA.get(kind, set()))


def gcp_zone(opts: dict[str, str], region_name: str) -> str | None:
    """The zone of ``region_name`` among options zone / zones ('a-zone,b-zone')."""
    zones = [z.strip() for z in (opts.get("zones") or opts.get("zone") or "").split(",") if z.strip()]
    return next((z for z in zones if z.startswith(region_name + "-")), None)


def launch_issues(providers: Any) -> tuple[list[Issue], list[Issue]]:
    """(errors, warnings) about the launch settings of the providers the file declares."""
    from orchestrator.suggest import did_you_mean

    errors: list[Issue] = []
    warnings: list[Issue] = []
    if providers is None:
        return errors, warnings
    for kind in ("aws", "gcp", "azure"):
        cloud = getattr(providers, kind, None)
        if cloud is None:
            continue
        opts = dict(cloud.options)
        path = ("providers", kind, "options")
        known = settings_known(kind)
        for key in opts:
            if key not in known:
                errors.append(Issue((*path, key), f"unknown setting {key!r} for {kind}{did_you_mean(key, sorted(known))}; "
                                                  f"expected one of {', '.join(sorted(known))}", at_key=True))
        if kind == "gcp" and "gke_context" in opts:
            continue
        need = [f"{key} ({what})" for key, what in REQUIRED.get(kind, {}).items() if key not in opts]
        if kind == "gcp":
            zoneless = [r for r in cloud.regions or [] if gcp_zone(opts, r) is None]
            if zoneless:
                need.append(f"zones with a zone of {', '.join(zoneless)} (e.g. zones: "
                            f"'{','.join(r + '-a' for r in zoneless)}')")
        if need:
            warnings.append(Issue(path if cloud.options else ("providers", kind),
                                  f"orch apply on {kind} will need options {'; '.join(need)}; placing works without them",
                                  at_key=True))
    for name in ("lambdalabs", "runpod", "nebius", "coreweave", "vultr"):
        cloud = getattr(providers, name, None)
        if cloud is not None and cloud.kind == "baremetal" and not cloud.hosts:
            warnings.append(Issue(("providers", name), f"orch apply will need hosts (ssh targets of the instances you "
                                                       f"rented on {name}) for kind baremetal"))
    onprem = getattr(providers, "onprem", None)
    if onprem is not None and onprem.kind == "baremetal":
        for i, site in enumerate(onprem.sites):
            if not site.hosts:
                warnings.append(Issue(("providers", "onprem", "sites", i),
                                      f"orch apply will need hosts (ssh targets) for site {site.name}"))
    return errors, warnings
