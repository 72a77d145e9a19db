"""Data transfer tariffs (orchestrator/data/egress.yaml): what moving a GB from one region to another costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from orchestrator.catalog.types import ONPREM_PROVIDERS, Region
from orchestrator.errors import UserError


@dataclass(frozen=True)
class Tier:
    up_to_gb: float | None  # upper bound of this tier's monthly volume; None = unbounded
    usd_per_gb: float


@dataclass(frozen=True)
class ProviderTariff:
    internet: tuple[Tier, ...]
    same_continent: float
    inter_continent: float
    from_asia: float
    from_sa: float
    source: str

    def inter_region(self, src_continent: str, dst_continent: str) -> float:
        if src_continent in ("asia", "oc"):
            return self.from_asia
        if src_continent == "sa":
            return self.from_sa
        return self.same_continent if src_continent == dst_continent else self.inter_continent


@dataclass
class EgressTariffs:
    """Per-provider tariffs. Ingress is free everywhere; on-prem sites may declare their own egress price."""

    providers: dict[str, ProviderTariff]
    as_of: str
    site_egress_usd_per_gb: dict[str, float] = field(default_factory=dict)  # region id -> declared price

    def _tariff(self, provider: str) -> ProviderTariff:
        try:
            return self.providers[provider]
        except KeyError:
            raise UserError(f"no egress tariff for provider {provider!r}; known: {', '.join(self.providers)}") from None

    def internet_usd_per_gb(self, provider: str, monthly_gb: float = 0) -> float:
        """Marginal internet egress price at this monthly volume (the tier the next GB falls in)."""
        for tier in self._tariff(provider).internet:
            if tier.up_to_gb is None or monthly_gb < tier.up_to_gb:
                return tier.usd_per_gb
        return self._tariff(provider).internet[-1].usd_per_gb

    def transfer_usd_per_gb(self, src: Region, dst: Region) -> float:
        """Price of one GB from src to dst: same region 0; same provider by continent pair;
        different providers at the source's internet price; on-prem/local sources at the declared price or 0."""
        if src.id == dst.id:
            return 0.0
        if src.provider in ONPREM_PROVIDERS:
            return self.site_egress_usd_per_gb.get(src.id, 0.0)
        if src.provider != dst.provider:
            return self.internet_usd_per_gb(src.provider)
        return self._tariff(src.provider).inter_region(src.continent, dst.continent)


@cache
def _load() -> EgressTariffs:
    import yaml

    text = resources.files("orchestrator.data").joinpath("egress.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    providers: dict[str, ProviderTariff] = {}
    for name, p in data["providers"].items():
        ir = p["inter_region"]
        providers[name] = ProviderTariff(
            internet=tuple(Tier(t["up_to_gb"], float(t["usd_per_gb"])) for t in p["internet"]),
            same_continent=float(ir["same_continent"]),
            inter_continent=float(ir["inter_continent"]),
            from_asia=float(ir["from_asia"]),
            from_sa=float(ir["from_sa"]),
            source=p["source"],
        )
    return EgressTariffs(providers=providers, as_of=str(data["as_of"]))


def load_egress() -> EgressTariffs:
    """The shipped tariffs (a fresh object: callers may add site prices without touching the cache)."""
    base = _load()
    return EgressTariffs(providers=dict(base.providers), as_of=base.as_of)
