"""How old a price is, and where the catalog's prices came from (for `catalog list` and the plan).

A row is stale when its ``as_of`` is more than ``STALE_AFTER_DAYS`` before today: list prices move (AWS cut P5 by
~45% in June 2025), so a plan built on such a row says so. ``ORCH_TODAY`` (ISO date) pins "today" for tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from orchestrator.catalog.types import ONPREM_PROVIDERS

if TYPE_CHECKING:
    from orchestrator.catalog.types import Offering

STALE_AFTER_DAYS = 183  # six months
SNAPSHOT = "embedded snapshot (orchestrator/data/offerings.csv)"


def today() -> date:
    pinned = os.environ.get("ORCH_TODAY")
    return date.fromisoformat(pinned) if pinned else date.today()


def _as_date(as_of: str) -> date | None:
    try:
        return date.fromisoformat(as_of.strip()[:10])
    except ValueError:
        return None


def is_stale(as_of: str, now: date | None = None) -> bool:
    """True when ``as_of`` is older than six months, or is not a date at all (then nobody knows its age)."""
    d = _as_date(as_of)
    return d is None or d < (now or today()) - timedelta(days=STALE_AFTER_DAYS)


def stale_cutoff(now: date | None = None) -> str:
    return ((now or today()) - timedelta(days=STALE_AFTER_DAYS)).isoformat()


def price_origin(provider: str) -> str:
    """Where ``provider``'s rows come from now: the user cache (with what wrote it) or the embedded snapshot."""
    from orchestrator.catalog.offerings import cache_origin, cache_path

    if provider in ONPREM_PROVIDERS:
        return "your deployment file"
    path = cache_path(provider)  # GPU clouds too: `catalog refresh --source gpuhunt` writes their caches
    if not path.is_file():
        return SNAPSHOT
    origin = cache_origin(provider)
    return f"user cache {path}" + (f" ({origin})" if origin else "")


def plan_price_messages(chosen: Iterable[Offering]) -> list[str]:
    """Plan lines: which source each provider's prices come from, and a warning per provider with stale rows."""
    by_provider: dict[str, list[Offering]] = {}
    for o in chosen:
        by_provider.setdefault(o.provider, []).append(o)
    lines: list[str] = []
    for provider in sorted(by_provider):
        if provider in ONPREM_PROVIDERS:
            continue
        rows = by_provider[provider]
        dates = sorted({o.as_of for o in rows})
        span = dates[0] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
        lines.append(f"prices: {provider} from {price_origin(provider)}, as of {span}")
        old = sorted({(o.instance_type, o.region, o.as_of) for o in rows if is_stale(o.as_of)})
        if old:
            names = ", ".join(f"{t} in {r} ({a})" for t, r, a in old[:4]) + (f" and {len(old) - 4} more" if len(old) > 4 else "")
            lines.append(f"warning: stale price: the plan uses {names}, more than six months old (before "
                         f"{stale_cutoff()}); run `orch catalog refresh --provider {provider}` or `orch catalog import`")
    return lines
