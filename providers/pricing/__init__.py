"""Live price and instance-type fetchers behind each cloud provider's offerings() (for `orch catalog refresh`).

One module per cloud, each turning that cloud's own API answers into catalog Offerings:
aws (Price List API + EC2), gcp (Cloud Billing Catalog + Compute machine/accelerator types),
azure (Retail Prices API + a table of GPU VM sizes). Small helpers shared by the provider modules live here.
"""

from __future__ import annotations

import hashlib
from datetime import date


def today() -> str:
    """As-of date stamped on every row fetched live."""
    return date.today().isoformat()


def bare_region(provider: str, region: str) -> str:
    """'aws:us-east-1' or 'us-east-1' -> 'us-east-1'. Rejects another provider's region."""
    if ":" in region:
        kind, name = region.split(":", 1)
        if kind != provider:
            from orchestrator.errors import UserError

            raise UserError(f"{provider}: region {region!r} belongs to provider {kind!r}")
        return name
    return region


def qualified_region(provider: str, region: str) -> str:
    return f"{provider}:{bare_region(provider, region)}"


def stable_token(*parts: str, length: int = 32) -> str:
    """A short hex digest of the parts: the same replica always gets the same token/name suffix."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
