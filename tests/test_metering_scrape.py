"""Parsing real vLLM /metrics texts: names old and new, label sets, garbage, counter resets."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.metering.scrape import (
    COUNTERS,
    MetricsParseError,
    delta,
    normalize,
    parse_metrics,
    sample_from_text,
)

FIX = Path(__file__).parent / "fixtures" / "metrics"
AFTER5 = (FIX / "vllm-0.32-cpu-after-5-requests.txt").read_text()


def test_real_capture_counters_and_histograms() -> None:
    snaps = parse_metrics(AFTER5)
    assert list(snaps) == ["tiny"]
    c = snaps["tiny"].counters
    # 5 requests x 32 generated tokens, 12 prompt tokens each (captured with curl, 2026-11-23)
    assert c["generation_tokens"] == 160
    assert c["prompt_tokens"] == 60
    assert c["requests"] == 5  # summed over finished_reason label sets (stop=0, length=5, ...)
    assert c["ttft_count"] == 5
    assert c["itl_count"] == 155  # 31 gaps per 32-token request
    assert 0 < c["prefill_time_sum"] < c["decode_time_sum"]


def test_idle_capture_is_ok_with_zero_usage() -> None:
    s = sample_from_text("r1", (FIX / "vllm-0.32-cpu-idle.txt").read_text(), ts=1.0)
    assert s.ok and s.error is None
    assert s.counters["generation_tokens"] == 0 and s.models == ["tiny"]


def test_legacy_names_give_the_same_figures() -> None:
    legacy = (FIX / "vllm-legacy-names-derived.txt").read_text()
    assert "vllm:gpu_cache_usage_perc" in legacy and "vllm:time_per_output_token_seconds_sum" in legacy
    new, old = parse_metrics(AFTER5)["tiny"], parse_metrics(legacy)["tiny"]
    assert old.counters == new.counters
    assert old.gauges == new.gauges


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("vllm:gpu_cache_usage_perc", "kv_cache_usage_perc"),
        ("vllm:gpu_prefix_cache_hits_total", "prefix_cache_hits_total"),
        ("vllm:time_per_output_token_seconds_sum", "inter_token_latency_seconds_sum"),
        ("vllm:kv_cache_usage_perc", "kv_cache_usage_perc"),
        ("process_cpu_seconds_total", "process_cpu_seconds_total"),
    ],
)
def test_normalize(old: str, new: str) -> None:
    assert normalize(old) == new


def _engine1(text: str) -> str:
    """The same metrics as a second engine (data parallel) of the same model."""
    out = []
    for line in text.splitlines():
        if line.startswith("vllm:") and 'engine="0"' in line:
            out.append(line.replace('engine="0"', 'engine="1"'))
    return "\n".join(out)


def test_label_sets_are_summed_per_model() -> None:
    two_engines = AFTER5 + "\n" + _engine1(AFTER5) + "\n"
    snaps = parse_metrics(two_engines)
    assert snaps["tiny"].counters["generation_tokens"] == 320
    assert snaps["tiny"].counters["requests"] == 10


def test_two_models_are_kept_apart_then_combined() -> None:
    other = "\n".join(
        ln.replace('model_name="tiny"', 'model_name="other"') for ln in AFTER5.splitlines() if ln.startswith("vllm:")
    )
    snaps = parse_metrics(AFTER5 + "\n" + other + "\n")
    assert set(snaps) == {"tiny", "other"}
    s = sample_from_text("r", AFTER5 + "\n" + other + "\n")
    assert s.counters["generation_tokens"] == 320 and s.models == ["other", "tiny"]


@pytest.mark.parametrize(
    "text",
    [
        (FIX / "garbage-502.html").read_text(),
        "",
        "# HELP up whether up\n# TYPE up gauge\nup 1\n",  # Prometheus, but not vLLM
        "vllm:prompt_tokens_total{model_name=\"tiny\"} notanumber\n",
    ],
)
def test_garbage_is_a_gap_not_zero(text: str) -> None:
    with pytest.raises(MetricsParseError):
        parse_metrics(text)
    s = sample_from_text("r", text, ts=5.0)
    assert not s.ok and s.error


def test_delta_normal_and_reset() -> None:
    prev = dict.fromkeys(COUNTERS, 0.0) | {"generation_tokens": 1000.0, "prompt_tokens": 4000.0}
    cur = dict(prev) | {"generation_tokens": 1500.0, "prompt_tokens": 6000.0}
    d, reset = delta(prev, cur)
    assert not reset and d["generation_tokens"] == 500 and d["prompt_tokens"] == 2000
    restarted = dict.fromkeys(COUNTERS, 0.0) | {"generation_tokens": 70.0, "prompt_tokens": 300.0}
    d, reset = delta(cur, restarted)
    assert reset and d["generation_tokens"] == 70 and d["prompt_tokens"] == 300
    assert all(v >= 0 for v in d.values())


def test_scrape_error_never_stores_credentials() -> None:
    import asyncio

    import httpx

    from orchestrator.metering.scrape import scrape_async

    async def go():  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(trust_env=False) as client:
            return await scrape_async(client, "r", "http://admin:hunter2@127.0.0.1:9", timeout=1.0)

    s = asyncio.run(go())
    assert not s.ok and "hunter2" not in (s.error or "")


def test_redact_strips_userinfo() -> None:
    from orchestrator.metering.scrape import _redact

    assert _redact("ReadTimeout: GET http://admin:hunter2@10.0.0.5:8000/metrics") == (
        "ReadTimeout: GET http://10.0.0.5:8000/metrics"
    )
