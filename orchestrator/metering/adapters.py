"""Tokens per LoRA adapter: an estimate from the one thing vLLM 0.32 says about adapters.

vLLM 0.32's token counters carry no adapter label. Its gauge ``vllm:lora_requests_info`` has one series per set of
adapters it has seen active together (labels ``running_lora_adapters`` and ``waiting_lora_adapters``, each a comma-
joined list of the adapters with requests in flight; ``max_lora``), and each series' value is the last time (the
replica's clock) an engine step reported that set (``set_to_current_time``, vllm/v1/metrics/loggers.py).

So between two scrapes of a replica, the sets whose value moved (or that are new) are the sets that were active
during that interval. The rule (``split``): the interval's token increase (prompt, generation, requests, prefill and
decode time) is shared equally among the adapters of those sets, each set counting once for each adapter in it. An
interval in which no adapter was seen active goes to "(no adapter)": base-model requests. Comparing each series with
its previous value needs no clock agreement between orch and the replica.

It is exact when each interval serves one adapter, and an estimate otherwise: adapters active in the same interval
share its tokens equally, whatever their real traffic; base-model requests served while an adapter was active are
counted to the adapter; a request that starts and ends between two engine steps' stats is not seen. A shorter scrape
interval (`orch meter --interval`) makes it finer. Reports say so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from orchestrator.metering import tables as T
from orchestrator.metering.scrape import COUNTERS, delta

LORA_INFO = "vllm:lora_requests_info"
NO_ADAPTER = "(no adapter)"
ESTIMATE_NOTE = (
    "tokens by adapter are an estimate: vLLM 0.32 labels no token counter by adapter, so each scrape interval's "
    "tokens are shared equally among the adapters vllm:lora_requests_info showed active in it (exact when one "
    "adapter ran per interval; scrape more often for a finer split); cost follows each adapter's share of a "
    "replica-day's tokens"
)


def parse_lora_info(text: str) -> dict[str, float] | None:
    """Adapter set (sorted names joined by ',', '' for none) -> the latest value of its series; None without the
    gauge (LoRA is off)."""
    if LORA_INFO not in text:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    lines = [ln for ln in text.splitlines() if ln.startswith((LORA_INFO + "{", LORA_INFO + " "))]
    if not lines:
        return None
    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for s in family.samples:
                names = {n for key in ("running_lora_adapters", "waiting_lora_adapters")
                         for n in s.labels.get(key, "").split(",") if n}
                key = ",".join(sorted(names))
                out[key] = max(out.get(key, float("-inf")), float(s.value))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return out


def active_sets(prev: dict[str, float] | None, cur: dict[str, float]) -> list[list[str]]:
    """The adapter sets seen active since ``prev``: new series, or series whose time moved."""
    prev = prev or {}
    return [key.split(",") for key, ts in sorted(cur.items()) if key and ts > prev.get(key, float("-inf"))]


def split(sets: list[list[str]], increase: dict[str, float]) -> dict[str, dict[str, float]]:
    """adapter -> its share of ``increase`` (the module's rule)."""
    weight: dict[str, float] = defaultdict(float)
    for names in sets:
        for n in names:
            weight[n] += 1.0
    total = sum(weight.values())
    if total == 0:
        return {NO_ADAPTER: dict(increase)}
    return {a: {k: v * w / total for k, v in increase.items()} for a, w in weight.items()}


@dataclass
class _Prev:
    ts: float
    counters: dict[str, float]
    started_at: float


def _meter_cursor(conn: Connection, replica_id: str) -> _Prev | None:
    row = conn.execute(select(T.meter_cursor).where(T.meter_cursor.c.replica_id == replica_id)).first()
    if row is None:
        return None
    m = row._mapping
    return _Prev(float(m["ts"]), {c: float(m[c]) for c in COUNTERS}, float(m["started_at"] or 0.0))


def ingest_adapters(conn: Connection, replica_id: str, samples: Sequence[Any]) -> int:
    """Split the intervals ending at ``samples`` (one replica's; call before the meter cursor moves) by adapter into
    adapter_usage_hourly. Nothing is written for a replica whose pages have no vllm:lora_requests_info. Returns the
    number of rows touched."""
    if not any(getattr(s, "lora", None) is not None for s in samples):
        return 0
    c = T.adapter_cursor.c
    row = conn.execute(select(T.adapter_cursor.c.seen).where(c.replica_id == replica_id)).first()
    seen: dict[str, float] | None = json.loads(row[0]) if row else None
    prev = _meter_cursor(conn, replica_id)
    base = prev.counters if prev else dict.fromkeys(COUNTERS, 0.0)
    started = prev.started_at if prev else 0.0
    buckets: dict[tuple[int, str], dict[str, float]] = {}
    for s in sorted((s for s in samples if s.ok), key=lambda s: s.ts):
        inc, _reset = delta(base, s.counters, started, s.started_at)
        base, started = dict(s.counters), s.started_at
        if s.lora is None:
            continue
        shares = split(active_sets(seen, s.lora), {k: inc[k] for k in T.ADAPTER_COUNTERS})
        seen = s.lora
        hour = int(s.ts // 3600 * 3600)
        for adapter, part in shares.items():
            if not any(part.values()):
                continue
            b = buckets.setdefault((hour, adapter), {**dict.fromkeys(T.ADAPTER_COUNTERS, 0.0), "intervals": 0})
            for k, v in part.items():
                b[k] += v
            b["intervals"] += 1
    for (hour, adapter), values in buckets.items():
        key = (T.adapter_usage_hourly.c.replica_id == replica_id) & (T.adapter_usage_hourly.c.hour == hour) & (
            T.adapter_usage_hourly.c.adapter == adapter)
        adds = {k: T.adapter_usage_hourly.c[k] + v for k, v in values.items()}
        if not conn.execute(T.adapter_usage_hourly.update().where(key).values(**adds)).rowcount:
            conn.execute(T.adapter_usage_hourly.insert().values(replica_id=replica_id, hour=hour, adapter=adapter,
                                                                **values))
    if seen is not None:
        text = json.dumps(seen, sort_keys=True)
        if row is None:
            conn.execute(T.adapter_cursor.insert().values(replica_id=replica_id, seen=text))
        else:
            conn.execute(T.adapter_cursor.update().where(c.replica_id == replica_id).values(seen=text))
    return len(buckets)


def usage_by_adapter_day(engine: Any, start: float, end: float) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """(replica id, UTC day) -> adapter -> summed counters, over [start, end) at hour granularity."""
    from sqlalchemy import inspect

    if "adapter_usage_hourly" not in inspect(engine).get_table_names():
        return {}
    h = T.adapter_usage_hourly.c
    q = select(T.adapter_usage_hourly).where(h.hour >= int(start // 3600 * 3600), h.hour < end)
    out: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    with engine.connect() as conn:
        for r in conn.execute(q):
            m = r._mapping
            day = int(m["hour"] - m["hour"] % 86400)
            per = out.setdefault((str(m["replica_id"]), day), {})
            acc = per.setdefault(str(m["adapter"]), dict.fromkeys(T.ADAPTER_COUNTERS, 0.0))
            for k in T.ADAPTER_COUNTERS:
                acc[k] += float(m[k] or 0.0)
    return out
