"""Closed-loop load generator for an OpenAI-compatible server (vLLM): streaming /v1/completions.

Per concurrency level, ``concurrency`` workers each send one request at a time until the level's
duration or request budget is spent. Each request asks for exactly ``output_tokens`` tokens
(``max_tokens`` + ``ignore_eos``) and streams them, so TTFT is the time to the first text chunk and
TPOT the mean gap between the following tokens. Only the given endpoint is contacted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np


@dataclass(frozen=True)
class LoadSettings:
    """The load of every concurrency level: the request shape (prompt tokens approximate, output tokens exact) and
    what ends a level (its duration or its request budget, whichever comes first)."""

    input_tokens: int
    output_tokens: int
    duration_s: float
    max_requests: int = 1000
    request_timeout: float = 120.0


@dataclass
class RequestResult:
    ok: bool
    start: float
    end: float
    ttft_s: float | None = None
    tpot_s: float | None = None  # None when fewer than 2 tokens came back
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None


@dataclass
class LevelResult:
    """Figures of one concurrency level."""

    concurrency: int
    duration_s: float
    requests: int
    errors: int
    input_tokens_mean: float
    output_tokens: int
    output_tokens_per_s: float
    requests_per_s: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p95_ms: float | None
    tpot_p99_ms: float | None
    error_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else None


def summarize(concurrency: int, results: list[RequestResult], wall_s: float) -> LevelResult:
    good = [r for r in results if r.ok]
    ttft = [r.ttft_s for r in good if r.ttft_s is not None]
    tpot = [r.tpot_s for r in good if r.tpot_s is not None]
    out_tokens = sum(r.output_tokens for r in good)
    errors = [r.error or "error" for r in results if not r.ok]
    wall_s = max(wall_s, 1e-9)
    return LevelResult(
        concurrency=concurrency,
        duration_s=wall_s,
        requests=len(good),
        errors=len(errors),
        input_tokens_mean=float(np.mean([r.prompt_tokens for r in good])) if good else 0.0,
        output_tokens=out_tokens,
        output_tokens_per_s=out_tokens / wall_s,
        requests_per_s=len(good) / wall_s,
        ttft_p50_ms=_pct(ttft, 50),
        ttft_p95_ms=_pct(ttft, 95),
        ttft_p99_ms=_pct(ttft, 99),
        tpot_p50_ms=_pct(tpot, 50),
        tpot_p95_ms=_pct(tpot, 95),
        tpot_p99_ms=_pct(tpot, 99),
        error_examples=sorted(set(errors))[:3],
    )


async def one_request(
    client: httpx.AsyncClient, base: str, model: str, prompt: str | list[int], output_tokens: int, timeout: float
) -> RequestResult:
    """One streamed completion. Any failure is returned as ok=False, never raised."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": output_tokens,
        "min_tokens": output_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    usage: dict = {}
    try:
        async with client.stream("POST", f"{base}/v1/completions", json=body, timeout=timeout) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:200]
                return RequestResult(False, start, time.perf_counter(), error=f"HTTP {resp.status_code}: {text}")
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                msg = json.loads(data)
                if msg.get("usage"):
                    usage = msg["usage"]
                for choice in msg.get("choices") or []:
                    # A token can decode to "" (part of a multi-byte character): it still arrived.
                    if choice.get("text") is not None and choice.get("finish_reason") is None:
                        now = time.perf_counter()
                        first = now if first is None else first
                        chunks += 1
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        return RequestResult(False, start, time.perf_counter(), error=f"{type(exc).__name__}: {exc}"[:200])
    end = time.perf_counter()
    n_out = int(usage.get("completion_tokens") or chunks)
    if first is None:
        return RequestResult(False, start, end, error="stream ended without tokens")
    # vLLM's benchmark_serving definition: (latency - TTFT) / (output tokens - 1). Chunk arrival times
    # would undercount: under load the server may flush several tokens in one chunk.
    tpot = (end - first) / (n_out - 1) if n_out > 1 else None
    return RequestResult(
        True, start, end, ttft_s=first - start, tpot_s=tpot,
        prompt_tokens=int(usage.get("prompt_tokens") or 0), output_tokens=n_out,
    )


async def run_level(
    client: httpx.AsyncClient,
    base: str,
    model: str,
    prompt: str | list[int],
    concurrency: int,
    load: LoadSettings,
    on_result: Callable[[RequestResult], None] | None = None,
) -> LevelResult:
    """Closed loop: ``concurrency`` workers until ``load.duration_s`` passes or ``load.max_requests`` were sent."""
    results: list[RequestResult] = []
    issued = 0
    t0 = time.perf_counter()
    deadline = t0 + load.duration_s
    timeout = load.request_timeout

    async def worker() -> None:
        nonlocal issued
        while issued < load.max_requests and time.perf_counter() < deadline:
            issued += 1
            remaining = max(1.0, deadline - time.perf_counter() + timeout)
            r = await one_request(client, base, model, prompt, load.output_tokens, min(timeout, remaining))
            results.append(r)
            if on_result:
                on_result(r)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(concurrency, results, time.perf_counter() - t0)


async def served_model(client: httpx.AsyncClient, base: str) -> str:
    """The first model id the server lists at /v1/models."""
    resp = await client.get(f"{base}/v1/models", timeout=10.0)
    resp.raise_for_status()
    data = resp.json().get("data") or []
    if not data:
        raise ValueError(f"{base}/v1/models lists no model")
    return str(data[0]["id"])


async def build_prompt(client: httpx.AsyncClient, base: str, model: str, input_tokens: int) -> str:
    """A prompt of about ``input_tokens`` tokens: calibrated with vLLM's /tokenize when it answers."""
    word = " hello"
    n = max(1, input_tokens)
    try:
        resp = await client.post(f"{base}/tokenize", json={"model": model, "prompt": word * 100}, timeout=10.0)
        if resp.status_code == 200:
            per_word = (resp.json().get("count") or 100) / 100.0
            n = max(1, round(input_tokens / max(per_word, 1e-6)))
    except httpx.HTTPError:
        pass
    return (word * n).strip()


async def run_bench(
    base: str,
    concurrency: list[int],
    load: LoadSettings,
    *,
    model: str | None = None,
    headers: dict[str, str] | None = None,
    on_level_start: Callable[[int, str], None] | None = None,
    on_result: Callable[[RequestResult], None] | None = None,
) -> tuple[str, list[LevelResult]]:
    """Every concurrency level in turn against ``base`` (http://host:port). Returns (model, results)."""
    base = base.rstrip("/")
    limits = httpx.Limits(max_connections=max(concurrency) + 4, max_keepalive_connections=max(concurrency) + 4)
    async with httpx.AsyncClient(limits=limits, headers=headers or {}, trust_env=False) as client:
        model = model or await served_model(client, base)
        prompt = await build_prompt(client, base, model, load.input_tokens)
        out = []
        for c in concurrency:
            if on_level_start:
                on_level_start(c, model)
            out.append(await run_level(client, base, model, prompt, c, load, on_result))
        return model, out
