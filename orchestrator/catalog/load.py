"""The catalog the planner sees: shipped snapshot + user cache, narrowed and priced by the deployment file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.catalog.egress import EgressTariffs, load_egress
from orchestrator.catalog.gpus import all_gpus, canonical_gpu_name, get_gpu
from orchestrator.catalog.offerings import CLOUDS, GPU_CLOUDS, effective_offerings
from orchestrator.catalog.regions import all_regions, resolve_location
from orchestrator.catalog.types import GPU, Offering, Region
from orchestrator.errors import UserError
from orchestrator.suggest import did_you_mean

if TYPE_CHECKING:
    from orchestrator.spec.models import CloudProvider, DeploymentFile, OnPremSite

# A grid figure for "this machine" when nothing better is known: the world average of electricity generation,
# ~480 gCO2/kWh in 2023 (Ember, Global Electricity Review 2024). Zero would be wrong: the machine draws grid power.
LOCAL_CARBON_G_PER_KWH = 480.0
LOCAL_REGION_ID = "local:this-machine"


@dataclass(frozen=True)
class QuotaRule:
    """At most max_gpus GPUs of a provider, optionally within one region (qualified id) and/or of one GPU type."""

    provider: str
    region: str | None
    gpu: str | None
    max_gpus: int

    def applies_to(self, offering: Offering) -> bool:
        return (
            offering.provider == self.provider
            and (self.region is None or offering.region == self.region)
            and (self.gpu is None or offering.gpu == self.gpu)
        )


@dataclass
class Catalog:
    gpus: dict[str, GPU]
    offerings: list[Offering]
    regions: dict[str, Region]
    egress: EgressTariffs
    quotas: list[QuotaRule] = field(default_factory=list)
    as_of: str = ""  # the oldest as-of date among the offerings: prices are at least this fresh

    def offerings_for(
        self, provider: str | None = None, gpu: str | None = None, region: str | None = None
    ) -> list[Offering]:
        """Offerings filtered by provider, GPU (name or alias) and region (qualified, or the provider's own name)."""
        canonical = None
        if gpu is not None:
            canonical = canonical_gpu_name(gpu) or gpu
        out = []
        for o in self.offerings:
            if provider is not None and o.provider != provider:
                continue
            if canonical is not None and o.gpu != canonical:
                continue
            if region is not None and region not in (o.region, o.region.split(":", 1)[1]):
                continue
            out.append(o)
        return out

    def region(self, region_id: str) -> Region:
        try:
            return self.regions[region_id]
        except KeyError:
            raise UserError(f"unknown region {region_id!r}{did_you_mean(region_id, self.regions)}") from None


def load_catalog(spec: DeploymentFile | None = None) -> Catalog:
    """The catalog for a deployment file (or everything, without one).

    With a spec: only the providers its ``providers:`` section lists (every cloud when the section is omitted) and
    only their listed regions; each cloud's discount applies to on-demand list prices (the list price stays in
    ``Offering.list_usd_per_hour``; spot prices are not discounted); custom prices replace list prices; quotas
    become QuotaRules; each on-prem site adds one Region and one Offering per GPU type, priced at marginal cost
    (amortization + power x PUE) with its inventory in ``max_gpus``; ``providers.local`` adds this machine.
    """
    regions = dict(all_regions())
    offerings = effective_offerings()
    egress = load_egress()
    quotas: list[QuotaRule] = []
    providers = spec.providers if spec is not None else None
    if spec is not None and providers is None:  # every cloud, but GPU clouds only when the file names them
        offerings = [o for o in offerings if o.provider not in GPU_CLOUDS]
    if providers is not None:
        kept: list[Offering] = []
        for name in (*CLOUDS, *GPU_CLOUDS):
            cloud: CloudProvider | None = getattr(providers, name)
            if cloud is None:
                continue
            mine = [o for o in offerings if o.provider == name]
            kept.extend(_apply_cloud(name, cloud, mine, regions))
            quotas.extend(_quota_rules(name, cloud, regions))
        offerings = kept
        if providers.onprem is not None:
            for site in providers.onprem.sites:
                region = _site_region(site)
                regions[region.id] = region
                offerings.extend(_site_offerings(site, region))
                declared = getattr(site, "egress_usd_per_gb", None)
                if declared is not None:
                    egress.site_egress_usd_per_gb[region.id] = float(declared)
        if providers.local is not None:
            region = _local_region(spec, regions)
            regions[region.id] = region
            offerings.append(_local_offering(providers.local.usd_per_hour, providers.local.replicas))
    as_of = min((o.as_of for o in offerings), default="")
    return Catalog(
        gpus={g.name: g for g in all_gpus()},
        offerings=offerings,
        regions=regions,
        egress=egress,
        quotas=quotas,
        as_of=as_of,
    )


def _qualify(provider: str, name: str, regions: dict[str, Region], what: str) -> str:
    rid = name if ":" in name else f"{provider}:{name}"
    if rid not in regions or not rid.startswith(f"{provider}:"):
        own = [r.name for r in regions.values() if r.provider == provider]
        raise UserError(f"providers.{provider}.{what}: unknown {provider} region {name!r}{did_you_mean(name, own)}")
    return rid


def _apply_cloud(name: str, cloud: CloudProvider, offerings: list[Offering], regions: dict[str, Region]) -> list[Offering]:
    if cloud.regions is not None:
        allowed = {_qualify(name, r, regions, "regions") for r in cloud.regions}
        offerings = [o for o in offerings if o.region in allowed]
    custom: dict[tuple[str, str | None], tuple[float, float | None]] = {}
    known_types = {o.instance_type for o in offerings}
    for p in cloud.prices:
        if p.instance_type not in known_types:
            raise UserError(
                f"providers.{name}.prices: unknown {name} instance type {p.instance_type!r}"
                f"{did_you_mean(p.instance_type, known_types)}"
            )
        region = _qualify(name, p.region, regions, "prices.region") if p.region else None
        custom[(p.instance_type, region)] = (p.usd_per_hour, p.spot_usd_per_hour)
    out = []
    for o in offerings:
        listed = o.list_usd_per_hour if o.list_usd_per_hour is not None else o.usd_per_hour
        price = custom.get((o.instance_type, o.region)) or custom.get((o.instance_type, None))
        if price is not None:
            usd, spot = price
            out.append(
                dataclasses.replace(
                    o,
                    usd_per_hour=usd,
                    spot_usd_per_hour=spot if spot is not None else o.spot_usd_per_hour,
                    list_usd_per_hour=listed,
                    source=f"custom price (deployment file); list: {o.source}",
                )
            )
        elif cloud.discount:
            out.append(dataclasses.replace(o, usd_per_hour=listed * (1 - cloud.discount), list_usd_per_hour=listed))
        else:
            out.append(o)
    return out


def _quota_rules(name: str, cloud: CloudProvider, regions: dict[str, Region]) -> list[QuotaRule]:
    rules = []
    for q in cloud.quotas:
        region = _qualify(name, q.region, regions, "quotas.region") if q.region else None
        gpu = get_gpu(q.gpu).name if q.gpu else None
        rules.append(QuotaRule(provider=name, region=region, gpu=gpu, max_gpus=q.max_gpus))
    return rules


def _site_region(site: OnPremSite) -> Region:
    lat, lon, continent, carbon = resolve_location(site.location)
    if site.carbon_g_per_kwh is not None:
        carbon, carbon_src = site.carbon_g_per_kwh, "deployment file"
    else:
        carbon_src = f"grid of {site.location} (catalog)"
    return Region(
        id=f"onprem:{site.name}",
        provider="onprem",
        name=site.name,
        location=site.location,
        continent=continent,
        lat=lat,
        lon=lon,
        carbon_g_per_kwh=carbon,
        source=f"deployment file; coordinates of {site.location}; carbon: {carbon_src}",
        as_of=dt.date.today().isoformat(),
    )


def _site_offerings(site: OnPremSite, region: Region) -> list[Offering]:
    out = []
    today = dt.date.today().isoformat()
    for gpu_name, count in site.gpus.items():
        if count <= 0:
            continue
        gpu = get_gpu(gpu_name)
        per_node = min(site.gpus_per_node, count)
        c = site.cost
        per_gpu = c.amortized_usd_per_gpu_hour + gpu.tdp_w / 1000.0 * c.power_usd_per_kwh * c.pue
        out.append(
            Offering(
                provider="onprem",
                region=region.id,
                instance_type=f"{site.name}/{gpu.name}x{per_node}",
                gpu=gpu.name,
                gpu_count=per_node,
                vcpus=0,
                memory_gb=0.0,
                usd_per_hour=per_node * per_gpu,
                spot_usd_per_hour=None,
                source="deployment file",
                as_of=today,
                list_usd_per_hour=per_node * per_gpu,
                max_gpus=count,
            )
        )
    return out


def _local_region(spec: DeploymentFile | None, regions: dict[str, Region]) -> Region:
    near: Region | None = None
    if spec is not None:
        for d in spec.deployments:
            for src in d.traffic.sources:
                near = regions.get(src.region)
                if near is not None:
                    break
            if near is not None:
                break
    return Region(
        id=LOCAL_REGION_ID,
        provider="local",
        name="this-machine",
        location=f"this machine (near {near.id})" if near else "this machine",
        continent=near.continent if near else "na",
        lat=near.lat if near else 0.0,
        lon=near.lon if near else 0.0,
        carbon_g_per_kwh=LOCAL_CARBON_G_PER_KWH,
        source="coordinates of the first traffic source (or 0,0); carbon: world average ~480 gCO2/kWh "
        "(Ember Global Electricity Review 2024), a typical grid figure, not this machine's supply",
        as_of="2023-12-31",
    )


def _local_offering(usd_per_hour: float = 0.0, replicas: int = 1) -> Offering:
    memory_gb = 0.0
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return Offering(
        provider="local",
        region=LOCAL_REGION_ID,
        instance_type="this-machine",
        gpu="CPU",
        gpu_count=1,
        vcpus=os.cpu_count() or 1,
        memory_gb=memory_gb,
        usd_per_hour=usd_per_hour,
        spot_usd_per_hour=None,
        source="this machine; price from providers.local.usd_per_hour in the deployment file",
        as_of=dt.date.today().isoformat(),
        list_usd_per_hour=usd_per_hour,
        max_gpus=replicas,  # vLLM processes this machine may run at once (providers.local.replicas)
    )
