"""A plan's replica group → the provider instance that runs it, built from the spec's provider settings.

One provider instance per provider-qualified region (a cloud region, an on-prem site, this machine).
Settings come from the deployment file: providers.aws/gcp/azure.options, providers.onprem sites,
providers.local. Credentials never pass through here: each SDK finds its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.spec.models import Providers
from providers import registry
from providers.base import Provider


@dataclass
class Target:
    key: str  # provider-qualified region: aws:us-east-1, onprem:dc-frankfurt, local:this-machine
    kind: str  # providers.<kind> module
    provider: Provider
    container_kwargs: dict[str, Any] = field(default_factory=dict)  # for DesiredReplica.container
    list_regions: list[str] | None = None  # what to pass to provider.list


# factory(provider name, region id, settings, *, lenient) → Target. lenient (dry runs): a missing required
# setting becomes a visible placeholder instead of an error, so the calls can still be shown.
Factory = Callable[..., Target]
register_target = registry.register_target  # plug in a plan provider name (tests, plugins); one registry with the kinds
GPU_CLOUDS = ("lambdalabs", "runpod", "nebius", "coreweave", "vultr")


def local_state_dir() -> Path:
    base = os.environ.get("ORCH_STATE_DIR")
    return (Path(base) if base else Path.home() / ".local" / "state" / "orch") / "local"


def _cloud_options(settings: Providers | None, name: str) -> dict[str, str]:
    cloud = getattr(settings, name, None) if settings else None
    return dict(cloud.options) if cloud else {}


def _cloud(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    """A cloud region of kind ``name`` from providers.<name>.options (its settings model: providers.<name>)."""
    region_name = region.split(":", 1)[1]
    opts = _cloud_options(settings, name)
    where = f"providers.{name}.options"
    if opts.get("gke_context"):  # GKE instead of Compute Engine VMs: how orch launches TPUs (no TPU VM API)
        provider = registry.create("kubernetes", where, context=opts["gke_context"],
                                   namespace=opts.get("namespace", "orch"), convention="gke", offline=lenient or None)
        return Target(region, "kubernetes", provider)
    provider = registry.for_region(name, region_name, opts, where=where, lenient=lenient)
    return Target(region, name, provider, list_regions=[region_name])


def _site(kind: str, section: Any, where: str, region: str, hosts_hint: str, lenient: bool) -> Target:
    """A site or a GPU cloud, launched as the file's ``kind`` says: kubernetes (a cluster) or baremetal (ssh)."""
    if kind == "kubernetes":
        provider = registry.create("kubernetes", where, context=section.kube_context, namespace=section.namespace,
                                   service_type=section.gateway_service, offline=lenient or None)
        return Target(region, "kubernetes", provider)
    if not section.hosts and not lenient:
        raise UserError(f"{where}.hosts: {hosts_hint}")
    hosts = list(section.hosts) or [_placeholder_host(where)]  # a dry run shows the calls all the same
    return Target(region, "baremetal", registry.create("baremetal", where, hosts=hosts))


def _placeholder_host(where: str) -> str:
    """A dry run's stand-in for a site's missing hosts (the calls can still be shown)."""
    name = where.split(".")[1]
    return "set-the-sites-hosts@placeholder" if name.startswith("onprem") else f"set-{name}-hosts@placeholder"


def _onprem(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    site_name = region.split(":", 1)[1]
    onprem = settings.onprem if settings else None
    site = next((s for s in onprem.sites if s.name == site_name), None) if onprem else None
    if onprem is None or site is None:
        raise UserError(f"providers.onprem: no site named {site_name!r} (needed by region {region})")
    return _site(onprem.kind, site, f"providers.onprem.sites[{site_name}]", region,
                 "bare-metal sites need ssh targets (user@host) to launch on", lenient)


def _gpu_cloud(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    """Lambda, RunPod, Nebius, CoreWeave, Vultr: their managed Kubernetes (kubernetes provider) or their instances
    over SSH (baremetal provider), as providers.<cloud>.kind says."""
    cloud = getattr(settings, name, None) if settings else None
    if cloud is None:
        raise UserError(f"providers.{name}: the plan uses {region}, but the file does not configure {name} (kind, and "
                        "kube_context or hosts)")
    return _site(cloud.kind, cloud, f"providers.{name}", region, "kind baremetal needs ssh targets (user@host) of the "
                 "instances you rented there", lenient)


def _local(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    from orchestrator.spec.models import LocalProvider

    local = (settings.local if settings else None) or LocalProvider()
    provider = registry.create("local", "providers.local", python=local.python, state_dir=local_state_dir(),
                               host=local.host)  # python None: $ORCH_VLLM_PYTHON, else python3
    # The local provider serves a config-only model: random weights (vLLM --load-format dummy).
    kwargs: dict[str, Any] = {"port": local.port, "extra_args": tuple(local.extra_args), "load_format": "dummy",
                              "bind": local.host, "control_bind": "127.0.0.1"}
    return Target(region, "local", provider, container_kwargs=kwargs)


def _factory(name: str) -> Factory | None:
    """How a plan's provider name becomes a Target: a plugged-in factory, else the file's section for it."""
    plugged = registry.target_factory(name)
    if plugged is not None:
        return plugged
    if name in ("onprem", "baremetal", "kubernetes"):
        return _onprem
    if name in GPU_CLOUDS:
        return _gpu_cloud
    if name == "local":
        return _local
    if name in Providers.model_fields and name in registry.kinds():  # aws, gcp, azure: providers.<name>.options
        return _cloud
    return None


class Targets:
    """Provider instances for one run, built once per region."""

    def __init__(self, settings: Providers | None, *, lenient: bool = False) -> None:
        self.settings = settings
        self.lenient = lenient
        self._cache: dict[tuple[str, str], Target] = {}

    def get(self, provider_name: str, region: str) -> Target:
        key = (provider_name, region)
        if key not in self._cache:
            factory = _factory(provider_name)
            if factory is None:
                known = sorted({*registry.kinds(), *GPU_CLOUDS, "onprem"} - {"baremetal", "kubernetes"})
                raise UserError(f"no provider for {provider_name!r} (region {region}); known: {', '.join(known)}")
            self._cache[key] = factory(provider_name, region, self.settings, lenient=self.lenient)
        return self._cache[key]

    def built(self) -> list[tuple[str, Target]]:
        """(provider name, target) of every target built so far."""
        return [(name, t) for (name, _), t in self._cache.items()]
