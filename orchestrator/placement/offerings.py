"""A catalog's offerings as arrays (OfferingTable), prepared once for all the deployments' candidates."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from orchestrator.catalog.types import GPU, ONPREM_PROVIDERS, Offering


class OfferingTable:
    """A catalog's offerings as arrays, prepared once for all the deployments' candidates.

    Per region and GPU shape (type x count, inventory) only the cheapest on-demand and the cheapest spot offering
    can matter (instance types differing in CPU/RAM serve the same at a higher price), so only those are kept;
    ``spot_only`` marks those kept for their spot price alone."""

    def __init__(self, offerings: Sequence[Offering], gpus: dict[str, GPU]) -> None:
        kept, spot_only, self.providers_seen = _cheapest(offerings)
        self.offerings = kept
        self.spot_only = np.array(spot_only, bool)
        self.providers, self.provider = _index([o.provider for o in kept])
        self.regions, self.region = _index([o.region for o in kept])
        self.region_names = np.array(self.regions)
        self.count = np.array([o.gpu_count for o in kept], np.int64)
        self.max_gpus = np.array([-1 if o.max_gpus is None else o.max_gpus for o in kept], np.int64)
        _, self.gpu = _index([o.gpu for o in kept])
        self.onprem = np.array([o.provider in ONPREM_PROVIDERS for o in kept], bool)
        priced = np.array([_priced(o) for o in kept], bool)
        self.od_price = np.array([float(o.usd_per_hour) if p else math.nan for o, p in zip(kept, priced)])
        self.spot_price = np.array([math.nan if o.spot_usd_per_hour is None else o.spot_usd_per_hour for o in kept], float)
        self.spot_price[self.onprem] = math.nan
        known = np.array([o.gpu in gpus for o in kept], bool)
        self.unknown_gpu = np.nonzero(~known)[0]
        self.no_price = np.nonzero(known & ~priced)[0]
        groups: dict[tuple[str, int, int | None], list[int]] = defaultdict(list)
        for i in np.nonzero(known & priced)[0].tolist():
            o = kept[i]
            groups[(o.gpu, o.gpu_count, o.max_gpus)].append(i)
        self.groups = {k: np.array(v, np.int64) for k, v in groups.items()}
        # the groups in catalog order, by their first offering (without spot prices: by their first on-demand one)
        on_demand = {k: v[~self.spot_only[v]] for k, v in self.groups.items()}
        self.group_order = {True: list(self.groups),
                            False: sorted((k for k, v in on_demand.items() if len(v)), key=lambda k: int(on_demand[k][0]))}
        self.shapes = sorted({(o.gpu, o.gpu_count) for o in kept})
        self._counted: dict[int, tuple[Callable[[Any], bool], np.ndarray]] = {}

    def counted(self, limited: Callable[[Any], bool] | None) -> np.ndarray:
        """Per offering: on-prem, or ``limited`` (a quota counts its GPUs); remembered per function."""
        hit = self._counted.get(id(limited))
        if hit is None:
            flags = self.onprem.copy()
            if limited is not None:
                flags |= np.array([limited(o) for o in self.offerings], bool)
            hit = self._counted[id(limited)] = (limited, flags)  # the function is kept so its id stays its own
        return hit[1]



def _priced(o: Offering) -> bool:
    return o.usd_per_hour is not None and not (isinstance(o.usd_per_hour, float) and math.isnan(o.usd_per_hour))


def _cheapest(offerings: Sequence[Offering]) -> tuple[list[Offering], list[bool], set[str]]:
    """The cheapest on-demand and the cheapest spot offering per region and GPU shape (and one unpriced offering
    per shape, so its rejection is reported), in catalog order; whether each is kept for its spot price alone;
    every provider seen."""
    best: dict[tuple, Offering] = {}
    best_spot: dict[tuple, Offering] = {}
    seen: set[str] = set()
    for o in offerings:
        seen.add(o.provider)
        k = (o.region, o.gpu, o.gpu_count, o.max_gpus)
        if not _priced(o):
            best.setdefault(("noprice",) + k, o)
            continue
        if k not in best or o.usd_per_hour < best[k].usd_per_hour:
            best[k] = o
        if o.spot_usd_per_hour is not None and (k not in best_spot or o.spot_usd_per_hour < best_spot[k].spot_usd_per_hour):
            best_spot[k] = o
    on_demand = {id(o) for o in best.values()}
    spot = {id(o) for o in best_spot.values()}
    kept = [o for o in offerings if id(o) in on_demand or id(o) in spot]
    return kept, [id(o) not in on_demand for o in kept], seen


def _index(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values, sorted, and each value's position among them."""
    uniq, inv = np.unique(np.array(values, dtype=str), return_inverse=True) if values else (np.zeros(0, str), np.zeros(0, int))
    return uniq.tolist(), inv.astype(np.int64)
