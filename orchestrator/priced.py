"""One replica where it runs and what an hour of it costs: the one record that carries the price from the plan to the
report (issue 19, item 4).

The plan's ``ReplicaGroup`` makes it (``group.replica()``, per replica); apply's desired replica and diff carry it;
the state row stores its columns (``columns()``) and gives it back (``of(row)``); metering's ``Replica`` is one, with
its history added. The list price is never lost on the way: where there is no discount it equals the effective one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, kw_only=True)
class PricedReplica:
    provider: str
    region: str  # provider-qualified
    instance_type: str
    gpu: str  # "CPU" on a gateway
    gpu_count: int  # per replica (0 on a gateway)
    market: str  # on_demand | spot | onprem
    usd_per_hour: float  # effective: after negotiated discounts; the spot or on-prem price
    list_usd_per_hour: float  # before discounts (= usd_per_hour where there is none)

    def columns(self) -> dict[str, Any]:
        """The state row's columns of this record (orchestrator/state/models.Replica keeps these names)."""
        return asdict(self)

    @classmethod
    def of(cls, row: Any) -> PricedReplica:
        """From a state row or its mapping; missing values as an older or foreign database may have them."""
        m: Mapping[str, Any] = row if isinstance(row, Mapping) else {f.name: getattr(row, f.name) for f in fields(cls)}
        usd = float(m.get("usd_per_hour") or 0.0)
        list_usd = m.get("list_usd_per_hour")
        return cls(provider=m.get("provider") or "", region=m.get("region") or "",
                   instance_type=m.get("instance_type") or "", gpu=m.get("gpu") or "",
                   gpu_count=int(m["gpu_count"]) if m.get("gpu_count") is not None else 1,
                   market=m.get("market") or "on_demand",
                   usd_per_hour=usd, list_usd_per_hour=float(list_usd) if list_usd is not None else usd)

    @classmethod
    def unknown(cls, provider: str, region: str) -> PricedReplica:
        """A resource a provider reports that state has no row for: where it is, nothing else."""
        return cls(provider=provider, region=region, instance_type="?", gpu="?", gpu_count=0, market="?",
                   usd_per_hour=0.0, list_usd_per_hour=0.0)
