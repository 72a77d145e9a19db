"""What `orch check` finds out about one provider, and the arithmetic shared by the per-provider probes.

Each ``providers/check_<kind>.py`` returns a :class:`CheckResult`: whether credentials were found (their source,
never their value), the account, the GPU quotas per region (converted to GPUs of each catalog GPU type), and
whether the calls `orch apply` needs besides launching (the secret store, the network rules) are allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Market = Literal["on_demand", "spot"]
Status = Literal["ok", "denied", "error", "skipped"]


@dataclass
class QuotaFinding:
    """One quota of the account, as GPUs of one type in one region.

    ``max_gpus`` is the most GPUs of ``gpu`` the quota allows: exact where the cloud counts GPUs (GCP), else the
    quota's vCPUs over the fewest vCPUs per GPU of the catalog's instance types of that GPU (AWS, Azure), so a
    plan above it cannot launch (one below it may still need more vCPUs, on larger instance types)."""

    region: str  # provider-qualified, as the catalog names it
    gpu: str  # canonical GPU name
    market: Market
    max_gpus: int
    limit: float  # the quota as the cloud states it
    unit: str  # GPUs | vCPUs
    quota: str  # the cloud's name for it: L-417A185B (Running On-Demand P instances), NVIDIA_H100_GPUS, ...
    usage: float | None = None  # what the account uses now, where the cloud says (GCP, Azure)


@dataclass
class Probe:
    """One permission or reachability test: the call made and what came back (one line, no secret)."""

    what: str  # secret store | network | ssh user@host:22 | API server
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")


@dataclass
class CheckResult:
    provider: str  # aws | gcp | azure | onprem:<site> | local
    credentials: str  # where they were found, or why not ("none found: ...")
    credentials_found: bool
    account: str | None = None  # account id, project, subscription, cluster context
    quotas: list[QuotaFinding] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    regions_checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what makes it unusable, or worth knowing
    used: bool = False  # the deployment file uses this provider
    blocking: bool = False  # one of the problems stops apply

    @property
    def usable(self) -> bool:
        return self.credentials_found and all(p.ok for p in self.probes) and not self.blocking

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["usable"] = self.usable
        return data


def catalog_gpus(provider: str, regions: Iterable[str] | None = None) -> dict[str, dict[str, list[tuple[str, int, int]]]]:
    """Per region (qualified id), per GPU: the catalog's (instance type, GPUs, vCPUs) of ``provider``."""
    from orchestrator.catalog.offerings import effective_offerings

    wanted = set(regions) if regions is not None else None
    out: dict[str, dict[str, list[tuple[str, int, int]]]] = {}
    for o in effective_offerings():
        if o.provider != provider or (wanted is not None and o.region not in wanted):
            continue
        out.setdefault(o.region, {}).setdefault(o.gpu, []).append((o.instance_type, o.gpu_count, o.vcpus))
    return out


def gpus_from_vcpus(vcpus: float, types: list[tuple[str, int, int]]) -> int:
    """The most GPUs ``vcpus`` of quota can hold with these instance types (the fewest vCPUs per GPU)."""
    per_gpu = min((v / g for _, g, v in types if g > 0 and v > 0), default=0.0)
    return int(vcpus // per_gpu) if per_gpu > 0 else 0


def run_probe(what: str, fn: Callable[[], str], classify: Callable[[Exception], Status]) -> Probe:
    """Run one permission test; ``fn`` returns a short detail, ``classify`` sorts a failure (denied or error)."""
    try:
        return Probe(what, "ok", fn())
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the table
        return Probe(what, classify(exc), one_line(exc))


def one_line(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def parallel(fn: Callable[[str], Any], items: list[str], workers: int = 8) -> dict[str, Any]:
    """fn over items on a few threads (regions are independent calls); exceptions are returned, not raised."""
    from concurrent.futures import ThreadPoolExecutor

    def safe(item: str) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001
            return exc

    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return dict(zip(items, pool.map(safe, items)))
