"""A plan's replica group → the provider instance that runs it, built from the spec's provider settings.

One provider instance per provider-qualified region (a cloud region, an on-prem site, this machine).
Settings come from the deployment file: providers.aws/gcp/azure.options, providers.onprem sites,
providers.local. Credentials never pass through here: each SDK finds its own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.spec.models import Providers
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
_FACTORIES: dict[str, Factory] = {}


def register_target(provider_name: str, factory: Factory) -> None:
    """Plug in a provider name (tests, plugins): factory(provider name, region id, settings, lenient=) → Target."""
    _FACTORIES[provider_name] = factory


def local_state_dir() -> Path:
    base = os.environ.get("ORCH_STATE_DIR")
    return (Path(base) if base else Path.home() / ".local" / "state" / "orch") / "local"


def _create(kind: str, where: str, **config: Any) -> Provider:
    """providers.get_provider, passing only the settings create() accepts (unknown ones are a user error)."""
    import importlib

    from orchestrator.suggest import did_you_mean
    from providers import get_provider

    try:
        module = importlib.import_module(f"providers.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"providers.{kind}":
            raise
        raise UserError(f"{where}: the {kind} provider is not available in this build of orch") from None
    params = inspect.signature(module.create).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in config if k not in params]
        if unknown:
            hint = did_you_mean(unknown[0], list(params))
            raise UserError(f"{where}: unknown setting {unknown[0]!r} for the {kind} provider{hint}")
    try:
        return get_provider(kind, **{k: v for k, v in config.items() if v is not None})
    except TypeError as exc:
        raise UserError(f"{where}: bad settings for the {kind} provider: {exc}") from None


def _placeholder(setting: str) -> str:
    return f"<set {setting}>"


def _cloud_options(settings: Providers | None, name: str) -> dict[str, str]:
    cloud = getattr(settings, name, None) if settings else None
    return dict(cloud.options) if cloud else {}


def _aws(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    region_name = region.split(":", 1)[1]
    opts = _cloud_options(settings, "aws")
    return Target(region, "aws", _create("aws", "providers.aws.options", region=region_name, **opts),
                  list_regions=[region_name])


def _gcp(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    region_name = region.split(":", 1)[1]
    opts = _cloud_options(settings, "gcp")
    if "gke_context" in opts:  # GKE instead of Compute Engine VMs: how orch launches TPUs (no TPU VM API)
        provider = _create("kubernetes", "providers.gcp.options", context=opts["gke_context"],
                           namespace=opts.get("namespace", "orch"), convention="gke", offline=lenient or None)
        return Target(region, "kubernetes", provider)
    zones = [z.strip() for z in (opts.pop("zones", "") or opts.get("zone", "")).split(",") if z.strip()]
    opts.pop("zone", None)
    zone = next((z for z in zones if z.startswith(region_name + "-")), None)
    if zone is None and lenient:
        zone = _placeholder(f"providers.gcp.options.zone (a zone of {region_name})")
    if "project" not in opts and lenient:
        opts["project"] = _placeholder("providers.gcp.options.project")
    if zone is None:
        raise UserError(
            f"providers.gcp.options: no zone in region {region_name}; set zone (or zones: 'a-zone,b-zone') "
            f"to a zone of {region_name}, e.g. {region_name}-a"
        )
    if "project" not in opts:
        raise UserError("providers.gcp.options.project: the GCP project id to launch in is required")
    return Target(region, "gcp", _create("gcp", "providers.gcp.options", zone=zone, **opts),
                  list_regions=[region_name])


def _azure(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    region_name = region.split(":", 1)[1]
    opts = _cloud_options(settings, "azure")
    from orchestrator.apply.launch_settings import REQUIRED

    for required in REQUIRED["azure"]:  # the key vault holds the endpoint's keys
        if required not in opts and lenient:
            opts[required] = _placeholder(f"providers.azure.options.{required}")
        if required not in opts:
            raise UserError(f"providers.azure.options.{required} is required to launch on Azure")
    return Target(region, "azure", _create("azure", "providers.azure.options", location=region_name, **opts),
                  list_regions=[region_name])


def _onprem(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    site_name = region.split(":", 1)[1]
    onprem = settings.onprem if settings else None
    site = next((s for s in onprem.sites if s.name == site_name), None) if onprem else None
    if onprem is None or site is None:
        raise UserError(f"providers.onprem: no site named {site_name!r} (needed by region {region})")
    where = f"providers.onprem.sites[{site_name}]"
    if onprem.kind == "kubernetes":
        provider = _create("kubernetes", where, context=site.kube_context, namespace=site.namespace,
                           service_type=site.gateway_service, offline=lenient or None)
        return Target(region, "kubernetes", provider)
    if not site.hosts and not lenient:
        raise UserError(f"{where}.hosts: bare-metal sites need ssh targets (user@host) to launch on")
    hosts = list(site.hosts) or ["set-the-sites-hosts@placeholder"]  # a dry run shows the calls all the same
    return Target(region, "baremetal", _create("baremetal", where, hosts=hosts))


def _local(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    from orchestrator.spec.models import LocalProvider

    local = (settings.local if settings else None) or LocalProvider()
    python = local.python or os.environ.get("ORCH_VLLM_PYTHON") or "python3"
    provider = _create("local", "providers.local", python=python, state_dir=local_state_dir(), host=local.host)
    # The local provider serves a config-only model: random weights (vLLM --load-format dummy).
    kwargs: dict[str, Any] = {"port": local.port, "extra_args": tuple(local.extra_args), "load_format": "dummy",
                              "bind": local.host, "control_bind": "127.0.0.1"}
    return Target(region, "local", provider, container_kwargs=kwargs)


def _gpu_cloud(name: str, region: str, settings: Providers | None, *, lenient: bool = False) -> Target:
    """Lambda, RunPod, Nebius, CoreWeave, Vultr: their managed Kubernetes (kubernetes provider) or their instances
    over SSH (baremetal provider), as providers.<cloud>.kind says."""
    cloud = getattr(settings, name, None) if settings else None
    where = f"providers.{name}"
    if cloud is None:
        raise UserError(f"{where}: the plan uses {region}, but the file does not configure {name} (kind, and "
                        "kube_context or hosts)")
    if cloud.kind == "kubernetes":
        provider = _create("kubernetes", where, context=cloud.kube_context, namespace=cloud.namespace,
                           service_type=cloud.gateway_service, offline=lenient or None)
        return Target(region, "kubernetes", provider)
    if not cloud.hosts and not lenient:
        raise UserError(f"{where}.hosts: kind baremetal needs ssh targets (user@host) of the instances you rented there")
    hosts = list(cloud.hosts) or [f"set-{name}-hosts@placeholder"]
    return Target(region, "baremetal", _create("baremetal", where, hosts=hosts))


register_target("aws", _aws)
for _cloud in ("lambdalabs", "runpod", "nebius", "coreweave", "vultr"):
    register_target(_cloud, _gpu_cloud)
register_target("gcp", _gcp)
register_target("azure", _azure)
register_target("onprem", _onprem)
register_target("baremetal", _onprem)
register_target("kubernetes", _onprem)
register_target("local", _local)


class Targets:
    """Provider instances for one run, built once per region."""

    def __init__(self, settings: Providers | None, *, lenient: bool = False) -> None:
        self.settings = settings
        self.lenient = lenient
        self._cache: dict[tuple[str, str], Target] = {}

    def get(self, provider_name: str, region: str) -> Target:
        key = (provider_name, region)
        if key not in self._cache:
            factory = _FACTORIES.get(provider_name)
            if factory is None:
                raise UserError(f"no provider for {provider_name!r} (region {region}); known: {', '.join(_FACTORIES)}")
            self._cache[key] = factory(provider_name, region, self.settings, lenient=self.lenient)
        return self._cache[key]

    def built(self) -> list[tuple[str, Target]]:
        """(provider name, target) of every target built so far."""
        return [(name, t) for (name, _), t in self._cache.items()]
