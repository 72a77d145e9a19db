"""Read one vLLM replica's Prometheus ``/metrics`` into a flat snapshot.

vLLM renamed several metrics across versions (facts/vllm.md); both spellings are accepted. Every
label set of a metric (``finished_reason``, ``engine``, ...) is summed per ``model_name``. An
endpoint that is down or answers with something that is not vLLM metrics yields ``ok=False`` with
the error: a gap, never zero usage.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # httpx is imported only when a scrape runs
    import httpx

# Old name -> current name (without the "vllm:" prefix).
RENAMES = {
    "gpu_cache_usage_perc": "kv_cache_usage_perc",
    "gpu_prefix_cache_queries_total": "prefix_cache_queries_total",
    "gpu_prefix_cache_hits_total": "prefix_cache_hits_total",
    "gpu_prefix_cache_queries": "prefix_cache_queries_total",
    "gpu_prefix_cache_hits": "prefix_cache_hits_total",
    "time_per_output_token_seconds_sum": "inter_token_latency_seconds_sum",
    "time_per_output_token_seconds_count": "inter_token_latency_seconds_count",
}

# Cumulative values (counters and histogram sums/counts): field -> metric sample name.
COUNTER_SOURCES: dict[str, str] = {
    "prompt_tokens": "prompt_tokens_total",
    "generation_tokens": "generation_tokens_total",
    "requests": "request_success_total",
    "preemptions": "num_preemptions_total",
    "prefix_cache_queries": "prefix_cache_queries_total",
    "prefix_cache_hits": "prefix_cache_hits_total",
    "ttft_sum": "time_to_first_token_seconds_sum",
    "ttft_count": "time_to_first_token_seconds_count",
    "itl_sum": "inter_token_latency_seconds_sum",
    "itl_count": "inter_token_latency_seconds_count",
    "prefill_time_sum": "request_prefill_time_seconds_sum",
    "decode_time_sum": "request_decode_time_seconds_sum",
    "e2e_sum": "e2e_request_latency_seconds_sum",
    "e2e_count": "e2e_request_latency_seconds_count",
}
COUNTERS: tuple[str, ...] = tuple(COUNTER_SOURCES)

# Point-in-time values: field -> metric sample name. running/waiting are summed, KV usage averaged.
GAUGE_SOURCES: dict[str, str] = {
    "running": "num_requests_running",
    "waiting": "num_requests_waiting",
    "kv_cache_usage": "kv_cache_usage_perc",
}
GAUGES: tuple[str, ...] = tuple(GAUGE_SOURCES)
_AVERAGED = {"kv_cache_usage"}

_BY_SOURCE = {src: f for f, src in COUNTER_SOURCES.items()} | {src: f for f, src in GAUGE_SOURCES.items()}
# The two counters that prove the text came from vLLM.
_REQUIRED = ("prompt_tokens", "generation_tokens")


class MetricsParseError(ValueError):
    """The text is not vLLM Prometheus metrics."""


@dataclass
class Snapshot:
    """Totals of one served model at one instant (counters cumulative since the server started)."""

    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))
    gauges: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAUGES, 0.0))
    started_at: float = 0.0  # latest creation time of the token counters: changes on restart


@dataclass
class Sample:
    """One scrape of one replica. ``ok=False`` marks a gap; its values are meaningless."""

    replica_id: str
    ts: float  # unix seconds, UTC
    ok: bool
    error: str | None = None
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))
    gauges: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAUGES, 0.0))
    models: list[str] = field(default_factory=list)
    started_at: float = 0.0  # when the counters started (vllm:prompt_tokens_created); 0 if unknown
    # vllm:lora_requests_info: adapter set -> when vLLM last showed it (None: LoRA off); orchestrator.metering.adapters
    lora: dict[str, float] | None = None


def normalize(name: str) -> str:
    """``vllm:gpu_cache_usage_perc`` -> ``kv_cache_usage_perc``; non-vLLM names are returned as is."""
    if not name.startswith("vllm:"):
        return name
    base = name[len("vllm:") :]
    return RENAMES.get(base, base)


def _wanted(text: str) -> str:
    """Only the samples read below: a vLLM /metrics page is ~50 KB, mostly histogram buckets and families orch
    does not read; handing the parser just the rest makes it 4-5x faster (200 replicas a round: autoscale).
    Comment lines go too: the samples are read by name, not by family type."""
    keep = []
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        end = len(line)
        for stop in ("{", " "):
            i = line.find(stop)
            if 0 <= i < end:
                end = i
        name = line[:end]
        if name == "vllm:prompt_tokens_created" or normalize(name) in _BY_SOURCE:
            keep.append(line)
    return "\n".join(keep) + "\n"


def parse_metrics(text: str) -> dict[str, Snapshot]:
    """Snapshots keyed by ``model_name`` label. Raises MetricsParseError on anything but vLLM metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = _wanted(text)
    if not wanted.strip():  # nothing of vLLM's: say what the page is (not Prometheus text, or not vLLM's)
        try:
            for _ in text_string_to_metric_families(text):
                pass
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise MetricsParseError(f"not Prometheus text: {exc}") from None
    text = wanted
    per_model: dict[str, Snapshot] = {}
    kv_n: dict[str, int] = {}
    seen: set[str] = set()
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "vllm:prompt_tokens_created":
                    snap = per_model.setdefault(s.labels.get("model_name", ""), Snapshot())
                    snap.started_at = max(snap.started_at, float(s.value))
                    continue
                fld = _BY_SOURCE.get(normalize(s.name))
                if fld is None or not s.name.startswith("vllm:"):
                    continue
                value = float(s.value)
                if math.isnan(value):
                    continue
                model = s.labels.get("model_name", "")
                snap = per_model.setdefault(model, Snapshot())
                seen.add(fld)
                if fld in snap.counters:
                    snap.counters[fld] += value
                elif fld in _AVERAGED:
                    n = kv_n.get(model, 0)
                    snap.gauges[fld] = (snap.gauges[fld] * n + value) / (n + 1)
                    kv_n[model] = n + 1
                else:
                    snap.gauges[fld] += value
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricsParseError(f"not Prometheus text: {exc}") from None
    missing = [f for f in _REQUIRED if f not in seen]
    if missing:
        raise MetricsParseError("no vLLM token counters (vllm:prompt_tokens_total, vllm:generation_tokens_total)")
    return per_model


def combine(snaps: dict[str, Snapshot]) -> Snapshot:
    """One replica's totals over every model it serves (normally exactly one)."""
    out = Snapshot()
    for snap in snaps.values():
        out.started_at = max(out.started_at, snap.started_at)
        for k, v in snap.counters.items():
            out.counters[k] += v
        for k, v in snap.gauges.items():
            out.gauges[k] += v / len(snaps) if k in _AVERAGED else v
    return out


def sample_from_text(replica_id: str, text: str, ts: float | None = None) -> Sample:
    """A Sample from /metrics text; garbage becomes a gap."""
    ts = time.time() if ts is None else ts
    try:
        snaps = parse_metrics(text)
    except MetricsParseError as exc:
        return Sample(replica_id, ts, ok=False, error=str(exc)[:500])
    snap = combine(snaps)
    from orchestrator.metering.adapters import parse_lora_info

    return Sample(
        replica_id, ts, ok=True, counters=snap.counters, gauges=snap.gauges, models=sorted(snaps),
        started_at=snap.started_at, lora=parse_lora_info(text),
    )


def _redact(message: str) -> str:
    """Errors are stored in state: drop any user:password@ an endpoint URL might carry."""
    return re.sub(r"//[^/@\s]+@", "//", message)[:500]


def metrics_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + "/metrics"


async def scrape_async(client: httpx.AsyncClient, replica_id: str, endpoint: str, timeout: float = 5.0) -> Sample:
    """GET <endpoint>/metrics. Connection errors, timeouts and non-200 answers are gaps."""
    import httpx

    ts = time.time()
    try:
        resp = await client.get(metrics_url(endpoint), timeout=timeout)
    except httpx.HTTPError as exc:
        return Sample(replica_id, ts, ok=False, error=_redact(f"{type(exc).__name__}: {exc}"))
    if resp.status_code != 200:
        return Sample(replica_id, ts, ok=False, error=f"HTTP {resp.status_code} from /metrics")
    return sample_from_text(replica_id, resp.text, ts)


def delta(
    prev: dict[str, float], cur: dict[str, float], prev_started: float = 0.0, cur_started: float = 0.0
) -> tuple[dict[str, float], bool]:
    """Increase of every counter from prev to cur, and whether the server restarted in between.

    A restart resets every counter to zero, so any counter below its previous value means a reset:
    the increase since then is the new value itself, never a negative number. A changed counter
    creation time (``*_created``) also means a restart, even when the counters climbed back above
    their old values before the next scrape.
    """
    reset = any(cur[k] < prev[k] for k in COUNTERS) or (prev_started > 0 and cur_started > 0 and cur_started != prev_started)
    if reset:
        return {k: cur[k] for k in COUNTERS}, True
    return {k: cur[k] - prev[k] for k in COUNTERS}, False
