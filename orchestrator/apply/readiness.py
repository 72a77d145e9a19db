"""Readiness: GET <endpoint>/health until 200, with a rich progress display on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from rich.console import Console


def check_health(endpoint: str | None, timeout_s: float = 3.0, client: httpx.Client | None = None) -> bool:
    """True when <endpoint>/health answers 200 (vLLM: 200 healthy, 503 engine dead)."""
    if not endpoint:
        return False
    import httpx

    url = endpoint.rstrip("/") + "/health"
    try:
        if client is not None:
            return client.get(url, timeout=timeout_s).status_code == 200
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Waiting:
    replica_id: str
    endpoint: str | None
    refresh: Callable[[], str | None] | None = None  # asks the provider for the endpoint while it is unknown
    exited: Callable[[], str | None] | None = None  # why it can no longer become healthy (it exited), else None


EXIT_CHECK_S = 5.0  # how often a replica that is not healthy yet is asked whether it still runs


def wait_ready(
    items: list[Waiting],
    *,
    timeout_s: float,
    console: Console,
    interval_s: float = 2.0,
    on_ready: Callable[[str, str], None] = lambda rid, endpoint: None,
    on_exit: Callable[[str, str], None] = lambda rid, why: None,
) -> dict[str, bool]:
    """Poll every replica until healthy, exited, or the timeout; ``on_ready(replica, endpoint)`` as each becomes
    healthy, ``on_exit(replica, why)`` when one exits before it does (it is not waited for any longer)."""
    import httpx
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    ready = {w.replica_id: False for w in items}
    if not items:
        return ready
    deadline = time.monotonic() + timeout_s
    gone: set[str] = set()
    next_check = time.monotonic() + EXIT_CHECK_S
    with httpx.Client() as client, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("waiting for /health", total=len(items))
        while True:
            check = time.monotonic() >= next_check
            if check:
                next_check = time.monotonic() + EXIT_CHECK_S
            for w in items:
                if ready[w.replica_id] or w.replica_id in gone:
                    continue
                if not w.endpoint and w.refresh is not None:
                    try:
                        w.endpoint = w.refresh()
                    except Exception:  # the provider may not know the address yet
                        w.endpoint = None
                if check_health(w.endpoint, client=client):
                    ready[w.replica_id] = True
                    on_ready(w.replica_id, w.endpoint or "")
                    progress.console.print(f"healthy: {w.replica_id} at {w.endpoint}")
                elif check and w.exited is not None:
                    try:
                        why = w.exited()
                    except Exception:  # noqa: BLE001 - the provider could not say: keep waiting
                        why = None
                    if why is not None:
                        gone.add(w.replica_id)
                        on_exit(w.replica_id, why)
            done = sum(ready.values())
            pending = [rid for rid, ok in ready.items() if not ok and rid not in gone]
            progress.update(task, completed=done, description=f"waiting for /health ({', '.join(pending[:3])}"
                            + ("..." if len(pending) > 3 else "") + ")" if pending else "all healthy")
            if done + len(gone) == len(items) or time.monotonic() >= deadline:
                return ready
            time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
