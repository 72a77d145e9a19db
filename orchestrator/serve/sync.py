"""Tell each gateway which replicas to route to, and drain a replica before it goes.

Level-triggered and idempotent (what a gateway should route to is recomputed from what is healthy now, and
only the difference is added or removed), so a crash at any point is mended by the next apply or autoscale
round. A gateway routes to the healthy replicas in its upstream regions (those the plan routes its users to);
when none of them answers, to every healthy replica of the deployment (failover across regions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import OrchError
from orchestrator.serve.admin import GatewayAdmin


@dataclass(frozen=True)
class Worker:
    replica_id: str
    region: str
    endpoint: str
    private_endpoint: str | None = None  # its address inside its network (a cloud VM's private IP)


@dataclass(frozen=True)
class GatewayRef:
    replica_id: str
    endpoint: str
    upstream: tuple[str, ...]
    admin_key: str
    region: str = ""


def url_for(gateway: GatewayRef, w: Worker) -> str:
    """How the gateway reaches a worker: inside their network when they share a region (the replica's firewall
    admits the gateway's group there, and the traffic stays off the internet), else its public address."""
    return w.private_endpoint if w.private_endpoint and w.region == gateway.region else w.endpoint


def wanted(gateway: GatewayRef, healthy: list[Worker]) -> set[str]:
    """Worker URLs the gateway should route to."""
    own = {url_for(gateway, w) for w in healthy if w.region in gateway.upstream}
    return own or {url_for(gateway, w) for w in healthy}


def sync_gateway(gateway: GatewayRef, healthy: list[Worker], *, keep: set[str] = frozenset(),
                 say: Callable[[str], None] = lambda m: None) -> set[str]:
    """Add what ``wanted`` says is missing, remove what it no longer wants (``keep``: leave these registered,
    e.g. replicas still draining elsewhere). Returns the workers registered after the sync."""
    target = wanted(gateway, healthy)
    with GatewayAdmin(gateway.endpoint, gateway.admin_key) as admin:
        have = set(admin.workers())
        for url in sorted(target - have):
            admin.add(url)
            say(f"gateway {gateway.replica_id}: routing to {url}")
        for url in sorted(have - target - set(keep)):
            admin.remove(url)
            say(f"gateway {gateway.replica_id}: no longer routing to {url}")
        return target | (have & set(keep))


def deregister(gateways: list[GatewayRef], worker: Worker, say: Callable[[str], None] = lambda m: None) -> None:
    """Take ``worker`` out of every gateway (unreachable gateways are reported, not fatal)."""
    for g in gateways:
        url = url_for(g, worker)
        try:
            with GatewayAdmin(g.endpoint, g.admin_key) as admin:
                if url in admin.workers():
                    admin.remove(url)
                    say(f"gateway {g.replica_id}: no longer routing to {url}")
        except OrchError as exc:
            say(f"warning: gateway {g.replica_id}: could not remove {url}: {exc}")


def in_flight(endpoint: str, timeout_s: float = 3.0) -> float | None:
    """Requests running or waiting on a vLLM replica (its /metrics), or None when it cannot be read."""
    import httpx

    from orchestrator.metering.scrape import metrics_url, sample_from_text

    try:
        r = httpx.get(metrics_url(endpoint), timeout=timeout_s, trust_env=False)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    s = sample_from_text("drain", r.text)
    return s.gauges["running"] + s.gauges["waiting"] if s.ok else None


def drain(endpoint: str, timeout_s: float, *, interval_s: float = 0.5,
          sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait until the replica has no request left (True), or ``timeout_s`` (False). A replica whose metrics
    cannot be read has nothing left to finish."""
    deadline = time.monotonic() + timeout_s
    while True:
        n = in_flight(endpoint)
        if not n:
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(interval_s)
