"""Prices from gpuhunt (dstack's GPU catalog library, the optional extra ``orch[gpuhunt]``) for
`orch catalog refresh --provider P --source gpuhunt`.

gpuhunt publishes one zipped CSV per provider under ``{CATALOG_URL}/{provider}/{version}/catalog.zip`` (latest
version in ``{CATALOG_URL}/{provider}/version``; its ``GPUHUNT_CATALOG_URL`` moves it, ``file://`` included), or reads
``<dir>/<provider>.csv`` from ``GPUHUNT_CATALOG_DIR`` (gpuhunt 0.1.34, ``_internal/catalog.py``). Both are loaded
through gpuhunt's own ``Catalog``; only its offline providers are used (no API keys). Rows map to orch offerings:
the GPU through orch's table (A100 by memory; the snapshot's GPU where it knows the instance type), the region
through orch's region table, GCP zones collapse into their region (on-demand = lowest zone, spot = median), GCP N1
machines get their accelerator in orch's ``machine+accelerator:count`` name. Rows orch cannot use are counted.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from orchestrator.catalog.types import Offering
from orchestrator.errors import ProviderError, UserError

GPUHUNT_PIN = "0.1.34"
# orch providers that gpuhunt has an offline (published, keyless) catalog for.
COVERED = ("aws", "gcp", "azure", "lambdalabs", "runpod", "nebius")
# gpuhunt flags mark rows a consumer must opt into; of those only GCP's A4 (B200) machines are plain offers for orch
# (DWS calendar mode, RunPod clusters, ARM Lambda machines and G4 preview duplicates are not).
ALLOWED_FLAGS = ("gcp-a4",)
NOT_INSTALLED = (f"gpuhunt is not installed: `pip install 'orch[gpuhunt]'` (gpuhunt=={GPUHUNT_PIN}) for "
                 "--source gpuhunt")


def import_gpuhunt() -> Any:
    """gpuhunt, or one UserError naming the extra that installs it."""
    try:
        import gpuhunt
    except ImportError:
        raise UserError(NOT_INSTALLED) from None
    return gpuhunt


@dataclass
class Location:
    """Where the gpuhunt catalog is: a directory of ``<provider>.csv`` files, or a base URL in the published layout."""

    csv_dir: Path | None = None
    url: str | None = None

    @property
    def local(self) -> bool:
        return self.csv_dir is not None or urlsplit(self.url or "").scheme == "file"

    def describe(self) -> str:
        return str(self.csv_dir) if self.csv_dir is not None else str(self.url)


def locate(where: str | None) -> Location:
    """``--base-url`` (a URL, or a local directory in either layout), else gpuhunt's own environment, else its bucket."""
    if where is None:
        if os.environ.get("GPUHUNT_CATALOG_DIR"):
            return Location(csv_dir=Path(os.environ["GPUHUNT_CATALOG_DIR"]))
        return Location(url=os.environ.get("GPUHUNT_CATALOG_URL") or _default_url())
    if re.match(r"^[a-z][a-z0-9+.-]*://", where):
        return Location(url=where.rstrip("/"))
    path = Path(where).expanduser()
    if not path.is_dir():
        raise UserError(f"{where}: not a directory or URL (expected gpuhunt's <provider>.csv files, or its published "
                        "layout <provider>/version and <provider>/<version>/catalog.zip)")
    if any(path.glob("*.csv")):
        return Location(csv_dir=path.resolve())
    return Location(url=path.resolve().as_uri())


def _default_url() -> str:
    from gpuhunt._internal.catalog import CATALOG_URL

    return str(CATALOG_URL)


@contextmanager
def _environment(loc: Location) -> Iterator[None]:
    """gpuhunt reads its catalog location from the environment at call time: set it for one load, then restore."""
    wanted = {"GPUHUNT_CATALOG_DIR": str(loc.csv_dir) if loc.csv_dir is not None else None,
              "GPUHUNT_CATALOG_URL": loc.url}
    saved = {k: os.environ.get(k) for k in wanted}
    try:
        for k, v in wanted.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _LoadLog(logging.Handler):
    """gpuhunt logs each provider it could not load (with a traceback) and each malformed row it skipped: keep the
    reasons and the count per provider, print nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}
        self.malformed: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if not (record.args and isinstance(record.args, tuple)):
            return
        if str(record.msg).startswith("Skipping malformed row"):
            self.malformed[str(record.args[0])] += 1
        elif record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self.reasons[str(record.args[0])] = f"{type(exc).__name__}: {exc}"


def fetch_items(kind: str, loc: Location) -> tuple[list[Any], str, str, int]:
    """(gpuhunt CatalogItems with GPUs for ``kind``, what was read, its date, rows gpuhunt found malformed) through
    gpuhunt's own loader."""
    gpuhunt = import_gpuhunt()
    if not loc.local:
        from orchestrator.catalog.keyless import NetworkDown, check_reachable

        try:
            check_reachable(str(loc.url))  # offline: one message within seconds, not urllib's long wait
        except NetworkDown as exc:
            raise NetworkDown(f"{kind}: gpuhunt's catalog: {exc}; is this machine offline? The catalog is unchanged "
                              "(--base-url DIR reads a local gpuhunt catalog)") from None
    log = logging.getLogger("gpuhunt")
    failures, level, propagate = _LoadLog(), log.level, log.propagate
    log.addHandler(failures)
    log.setLevel(logging.WARNING)
    log.propagate = False
    try:
        with _environment(loc):
            catalog = gpuhunt.Catalog(balance_resources=False, auto_reload=False)
            if loc.csv_dir is not None:
                csv_file = loc.csv_dir / f"{kind}.csv"
                if not csv_file.is_file():
                    raise UserError(f"{loc.csv_dir}: no {kind}.csv (gpuhunt's catalog directory has one CSV per provider)")
                as_of = date.fromtimestamp(csv_file.stat().st_mtime).isoformat()
                label = f"{csv_file} (file dated {as_of})"
            else:
                try:
                    catalog.load()
                except gpuhunt.GPUHuntError:
                    pass  # every provider failed: the reason for ours is below
                loaded = catalog.catalog.get(kind)
                if loaded is None:
                    reason = failures.reasons.get(kind, "not in the catalog")
                    raise ProviderError(f"{kind}: gpuhunt could not load its catalog from {loc.describe()} ({reason}); "
                                        "the catalog is unchanged")
                as_of = version_date(str(loaded.version))
                label = f"{loc.url}/{kind}, version {loaded.version}"
            items = catalog.query(provider=kind, min_gpu_count=1, allowed_flags=ALLOWED_FLAGS)
    except (OSError, ValueError) as exc:  # a malformed file gpuhunt could not read at all
        raise UserError(f"{kind}: gpuhunt could not read {loc.describe()}: {exc}") from None
    finally:
        log.removeHandler(failures)
        log.setLevel(level)
        log.propagate = propagate
    return list(items), label, as_of, failures.malformed[kind]


def version_date(version: str) -> str:
    """gpuhunt's catalog versions start with their build date (YYYYMMDD...); an ISO date stays as it is."""
    m = re.match(r"^(\d{4})-?(\d{2})-?(\d{2})", version)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            pass
    return date.today().isoformat()


@dataclass
class Mapped:
    """What one gpuhunt catalog became: offerings by region, and the rows orch could not use, by reason."""

    by_region: dict[str, list[Offering]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    unknown_gpus: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> list[Offering]:
        return [o for rows in self.by_region.values() for o in rows]

    def skipped_text(self) -> str:
        parts = [f"{n} {why}" for why, n in sorted(self.skipped.items())]
        if self.unknown_gpus:
            parts.append("unknown GPU " + ", ".join(f"{g} ×{n}" for g, n in sorted(self.unknown_gpus.items())))
        return "; ".join(parts)


def gpu_for(item: Any, known: dict[tuple[str, str], str]) -> str | None:
    """orch's GPU for a gpuhunt row: the snapshot's where it knows the instance type, else by name (A100 by memory)."""
    from orchestrator.catalog.gpus import canonical_gpu_name

    if (item.provider, item.instance_name) in known:
        return known[(item.provider, item.instance_name)]
    name = str(item.gpu_name or "")
    if name.upper() == "A100":
        return "A100-80GB" if (item.gpu_memory or 0) > 48 else "A100-40GB"
    return canonical_gpu_name(name) if name else None


def region_for(kind: str, location: str) -> str:
    """orch's region name for a gpuhunt location: GCP zones lose their zone letter, RunPod ids are lower case."""
    if kind == "gcp" and re.match(r"^[a-z]+-[a-z]+\d+-[a-z]$", location):
        return location.rsplit("-", 1)[0]
    return location.lower() if kind == "runpod" else location


def instance_type_for(kind: str, item: Any, gpu: str, snapshot: list[Offering]) -> str | None:
    """orch's instance type name for a gpuhunt row (None: no name orch's launchers would accept)."""
    name = str(item.instance_name)
    if kind == "gcp" and name.startswith("n1-"):  # gpuhunt lists the N1 machine; orch names the GPU attached
        accel = {o.instance_type.split("+", 1)[1].split(":")[0] for o in snapshot
                 if o.provider == "gcp" and o.gpu == gpu and "+" in o.instance_type}
        return f"{name}+{sorted(accel)[0]}:{item.gpu_count}" if accel else None
    if kind == "nebius":  # gpuhunt: "<platform> <preset>"; orch (as SkyPilot): "<platform>_<preset>"
        return name.replace(" ", "_")
    if kind == "runpod":  # gpuhunt names the pod type ("NVIDIA H100 80GB HBM3"); orch: "<n>x_<GPU>_SECURE"
        same = sorted({o.instance_type for o in snapshot if o.provider == "runpod" and o.gpu == gpu
                       and o.gpu_count == item.gpu_count})
        return same[0] if same else f"{item.gpu_count}x_{gpu}_SECURE"
    return name


def to_offerings(kind: str, items: list[Any], label: str, as_of: str, known_regions: set[str],
                 snapshot: list[Offering]) -> Mapped:
    """Map gpuhunt rows of one provider to orch offerings, one per (instance type, region)."""
    from orchestrator.catalog.skypilot import _Prices

    known_gpu = {(o.provider, o.instance_type): o.gpu for o in snapshot}
    out = Mapped()
    prices: dict[tuple[str, str], _Prices] = defaultdict(_Prices)
    shape: dict[tuple[str, str], tuple[str, int, int, float]] = {}
    for item in items:
        vendor = getattr(item.gpu_vendor, "value", item.gpu_vendor)
        if vendor == "google":  # gpuhunt lists TPU VM types; orch launches TPUs as GKE machine types
            out.skipped["TPU VM types (orch prices TPUs as GKE machine types)"] += 1
            continue
        gpu = gpu_for(item, known_gpu)
        if gpu is None:
            out.unknown_gpus[str(item.gpu_name)] += 1
            continue
        region = region_for(kind, str(item.location))
        if f"{kind}:{region}" not in known_regions:
            out.skipped["in regions orch does not know"] += 1
            continue
        itype = instance_type_for(kind, item, gpu, snapshot)
        if itype is None:
            out.skipped["N1 machines with a GPU orch has no GCP accelerator name for"] += 1
            continue
        key = (itype, region)
        if item.spot:
            prices[key].add(None, float(item.price))
        else:
            prices[key].add(float(item.price), None)
        shape.setdefault(key, (gpu, int(item.gpu_count), int(item.cpu), round(float(item.memory), 1)))
    source = f"gpuhunt {_installed_version()} catalog {label}"
    for (itype, region), p in sorted(prices.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        od, spot = p.on_demand(), p.spot_median()
        if od is None:
            out.skipped["spot-only (no on-demand price)"] += 1
            continue
        if spot is not None and spot >= od:
            spot = None  # a spot price above on-demand is a data error, not a market
        gpu, count, vcpus, mem = shape[(itype, region)]
        out.by_region.setdefault(region, []).append(Offering(
            provider=kind, region=f"{kind}:{region}", instance_type=itype, gpu=gpu, gpu_count=count, vcpus=vcpus,
            memory_gb=mem, usd_per_hour=round(od, 5), spot_usd_per_hour=None if spot is None else round(spot, 5),
            source=source, as_of=as_of, list_usd_per_hour=round(od, 5)))
    return out


def gpuhunt_offerings(kind: str, where: str | None, offline: bool = False) -> Mapped:
    """Load ``kind``'s gpuhunt catalog (``where``: --base-url) and map it; offline only a local catalog is read."""
    from orchestrator.catalog.offerings import snapshot_offerings
    from orchestrator.catalog.regions import all_regions
    from orchestrator.suggest import did_you_mean

    if kind not in COVERED:
        raise UserError(f"gpuhunt has no keyless catalog for {kind!r}{did_you_mean(kind, list(COVERED))}; "
                        f"--source gpuhunt covers {', '.join(COVERED)}")
    import_gpuhunt()  # not installed: one line naming the extra, before anything else
    loc = locate(where)
    if offline and not loc.local:
        raise ProviderError(f"{kind}: --offline: gpuhunt's catalog at {loc.describe()} is on the network; the catalog "
                            "is unchanged (pass --base-url DIR with a local gpuhunt catalog)")
    items, label, as_of, malformed = fetch_items(kind, loc)
    mapped = to_offerings(kind, items, label, as_of, set(all_regions()), snapshot_offerings())
    if malformed:
        mapped.skipped["malformed rows (gpuhunt could not read them)"] += malformed
    return mapped


def _installed_version() -> str:
    try:
        from gpuhunt.version import __version__

        return str(__version__)
    except ImportError:
        return GPUHUNT_PIN
