"""Cloud GPU offerings: the embedded snapshot (orchestrator/data/offerings.csv) and the user-level cache.

The cache lives in ``$ORCH_CACHE_DIR`` (default ``~/.cache/orch``) as ``catalog/<provider>.csv``, in the
snapshot's CSV format with the provider's own region names. ``orch catalog refresh`` writes it with
``write_cache``; cached rows replace all snapshot rows of that provider.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from functools import cache
from pathlib import Path

from orchestrator.catalog.gpus import _rows
from orchestrator.catalog.types import Offering
from orchestrator.errors import UserError

COLUMNS = [
    "provider",
    "region",
    "instance_type",
    "gpu",
    "gpu_count",
    "vcpus",
    "memory_gb",
    "usd_per_hour",
    "spot_usd_per_hour",
    "source",
    "as_of",
]
CLOUDS = ("aws", "gcp", "azure")
# GPU clouds: offered only to a deployment file whose providers section names them (they launch through the
# kubernetes or baremetal provider with settings the file gives: README "GPU clouds").
GPU_CLOUDS = ("lambdalabs", "runpod", "nebius", "coreweave", "vultr")


def _parse(row: dict[str, str], where: str) -> Offering:
    try:
        provider = row["provider"].strip()
        region = row["region"].strip()
        spot = row.get("spot_usd_per_hour", "").strip()
        return Offering(
            provider=provider,
            region=region if ":" in region else f"{provider}:{region}",
            instance_type=row["instance_type"].strip(),
            gpu=row["gpu"].strip(),
            gpu_count=int(row["gpu_count"]),
            vcpus=int(float(row["vcpus"])),
            memory_gb=float(row["memory_gb"]),
            usd_per_hour=float(row["usd_per_hour"]),
            spot_usd_per_hour=float(spot) if spot else None,
            source=row["source"],
            as_of=row["as_of"],
            list_usd_per_hour=float(row["usd_per_hour"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{where}: bad offering row {row!r}: {exc}") from None


@cache
def _snapshot() -> tuple[Offering, ...]:
    return tuple(_parse(r, "orchestrator/data/offerings.csv") for r in _rows("offerings.csv"))


def snapshot_offerings() -> list[Offering]:
    """The embedded snapshot, region ids provider-qualified (cached parse)."""
    return list(_snapshot())


def cache_dir() -> Path:
    return Path(os.environ.get("ORCH_CACHE_DIR") or Path.home() / ".cache" / "orch") / "catalog"


def cache_path(provider: str) -> Path:
    return cache_dir() / f"{provider}.csv"


def cached_offerings(provider: str) -> list[Offering] | None:
    """The user cache for one provider, or None when there is none."""
    path = cache_path(provider)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [_parse(r, str(path)) for r in csv.DictReader(lines)]


def cache_origin(provider: str) -> str | None:
    """What wrote the provider's cache (its ``# origin:`` line), e.g. "SkyPilot catalog import of DIR on DATE"."""
    path = cache_path(provider)
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
    return first[len(ORIGIN):].strip() if first.startswith(ORIGIN) else None


ORIGIN = "# origin: "


def write_cache(provider: str, offerings: list[Offering], origin: str | None = None) -> Path:
    """Write one provider's offerings to the user cache atomically (temp file + os.replace); ``origin`` says what
    wrote them (shown in plans)."""
    path = cache_path(provider)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if origin:
        buf.write(ORIGIN + " ".join(origin.split()) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for o in offerings:
        if o.provider != provider:
            raise ValueError(f"offering of {o.provider!r} written to the {provider!r} cache")
        name = o.region.split(":", 1)[1] if ":" in o.region else o.region
        price = o.list_usd_per_hour if o.list_usd_per_hour is not None else o.usd_per_hour
        spot = "" if o.spot_usd_per_hour is None else repr(o.spot_usd_per_hour)
        writer.writerow(
            [o.provider, name, o.instance_type, o.gpu, o.gpu_count, o.vcpus, o.memory_gb, price, spot, o.source, o.as_of]
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{provider}.", suffix=".csv.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def effective_offerings() -> list[Offering]:
    """Snapshot rows, with each provider's rows replaced by the user cache where one exists."""
    snapshot = snapshot_offerings()
    out: list[Offering] = []
    for provider in sorted({o.provider for o in snapshot} | set(CLOUDS)):
        cached = cached_offerings(provider)
        out.extend(cached if cached is not None else [o for o in snapshot if o.provider == provider])
    return out


def split_gcp_instance_type(instance_type: str) -> tuple[str, str | None, int]:
    """GCP names: "g2-standard-4" -> ("g2-standard-4", None, 0);
    "n1-standard-8+nvidia-tesla-t4:1" -> ("n1-standard-8", "nvidia-tesla-t4", 1)."""
    if "+" not in instance_type:
        return instance_type, None, 0
    machine, accel = instance_type.split("+", 1)
    kind, _, count = accel.partition(":")
    return machine, kind, int(count or 1)
