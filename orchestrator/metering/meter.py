"""The scrape loop: every interval, one concurrent scrape of every running replica, stored in state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.metering.scrape import Sample, scrape_async
from orchestrator.metering.store import Replica, record_samples, running_replicas

if TYPE_CHECKING:
    from sqlalchemy import Engine


async def scrape_all(replicas: list[Replica], timeout: float = 5.0) -> list[Sample]:
    """Scrape every replica at once; a replica that fails is a gap sample, never an exception."""
    import httpx

    if not replicas:
        return []
    async with httpx.AsyncClient(trust_env=False) as client:
        return list(
            await asyncio.gather(*(scrape_async(client, r.id, r.endpoint or "", timeout) for r in replicas))
        )


def meter_once(engine: Engine, timeout: float = 5.0) -> list[Sample]:
    """One sample of every running replica, recorded. Returns the samples (gaps included)."""
    samples = asyncio.run(scrape_all(running_replicas(engine), timeout))
    record_samples(engine, samples)
    return samples


def run(
    engine: Engine,
    interval: float = 15.0,
    *,
    iterations: int | None = None,
    timeout: float = 5.0,
    on_samples: Callable[[list[Sample]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Scrape on a fixed cadence (drift-free) until interrupted, or for ``iterations`` rounds."""
    n = 0
    next_at = time.monotonic()
    while iterations is None or n < iterations:
        samples = meter_once(engine, min(timeout, interval))
        if on_samples:
            on_samples(samples)
        n += 1
        if iterations is not None and n >= iterations:
            break
        next_at += interval
        sleep(max(0.0, next_at - time.monotonic()))
