"""orch bench against a streaming OpenAI-compatible server on loopback (pytest-httpserver)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from orchestrator.bench.loadgen import LoadSettings, run_bench

OUT = 8  # tokens per request
GAP = 0.01  # seconds between streamed tokens
FIRST = 0.03  # seconds before the first token


def completions(request: Request) -> Response:
    body = request.get_json()
    assert body["stream"] is True and body["ignore_eos"] is True and body["max_tokens"] == OUT

    def stream():  # type: ignore[no-untyped-def]
        time.sleep(FIRST)
        for i in range(body["max_tokens"]):
            if i:
                time.sleep(GAP)
            yield f"data: {json.dumps({'choices': [{'index': 0, 'text': ' t'}]})}\n\n"
        usage = {"prompt_tokens": 40, "completion_tokens": body["max_tokens"], "total_tokens": 40 + body["max_tokens"]}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return Response(stream(), mimetype="text/event-stream")


@pytest.fixture()
def server(httpserver):  # type: ignore[no-untyped-def]
    httpserver.expect_request("/v1/models").respond_with_json({"data": [{"id": "fake-model"}]})
    httpserver.expect_request("/tokenize", method="POST").respond_with_json({"count": 200})  # 2 tokens per " hello"
    httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(completions)
    return httpserver


def test_levels_measure_ttft_tpot_and_are_bounded_by_requests(server) -> None:  # type: ignore[no-untyped-def]
    base = server.url_for("/").rstrip("/")
    model, results = asyncio.run(run_bench(base, [1, 2], LoadSettings(40, OUT, duration_s=30, max_requests=4)))
    assert model == "fake-model"
    for r in results:
        assert r.requests == 4 and r.errors == 0  # the request budget ended the level, not the 30 s
        assert r.output_tokens == 4 * OUT and r.input_tokens_mean == 40
        assert FIRST * 1000 <= r.ttft_p50_ms < FIRST * 1000 + 200
        assert GAP * 1000 * 0.8 <= r.tpot_p50_ms < GAP * 1000 + 30
        assert r.ttft_p50_ms <= r.ttft_p95_ms <= r.ttft_p99_ms
        assert r.output_tokens_per_s == pytest.approx(r.output_tokens / r.duration_s)
    sent = [json.loads(req.data) for req, _ in server.log if req.path == "/v1/completions"]
    assert len(sent) == 8 and all(p["prompt"].count("hello") == 20 for p in sent)  # calibrated to ~40 tokens


def test_duration_bounds_a_level(server) -> None:  # type: ignore[no-untyped-def]
    base = server.url_for("/").rstrip("/")
    t0 = time.perf_counter()
    _, (r,) = asyncio.run(run_bench(base, [1], LoadSettings(40, OUT, duration_s=0.5, max_requests=10_000)))
    assert time.perf_counter() - t0 < 3 and 1 <= r.requests < 20


def test_errors_are_counted(httpserver) -> None:  # type: ignore[no-untyped-def]
    httpserver.expect_request("/v1/completions", method="POST").respond_with_data("overloaded", status=503)
    base = httpserver.url_for("/").rstrip("/")
    _, (r,) = asyncio.run(run_bench(base, [2], LoadSettings(10, OUT, duration_s=5, max_requests=3), model="m"))
    assert r.requests == 0 and r.errors == 3 and "HTTP 503" in r.error_examples[0] and r.ttft_p50_ms is None


def test_cli_writes_a_profile_the_perf_model_reads(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from orchestrator.cli.main import app
    from orchestrator.perf.profiles import load_profiles

    res = CliRunner().invoke(app, [
        "bench", server.url_for("/").rstrip("/"), "--concurrency", "1,2", "--input-tokens", "40", "--output-tokens",
        str(OUT), "--duration", "10", "--max-requests", "3", "--gpu", "L4", "--profile-model", "llama-3.1-8b",
        "--profile-out", str(tmp_path), "--json",
    ])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [lvl["concurrency"] for lvl in doc["levels"]] == [1, 2] and doc["model"] == "fake-model"
    (prof,) = load_profiles(tmp_path)
    assert (prof.model, prof.gpu, prof.gpus, prof.quantization) == ("llama-3.1-8b", "L4", 1, "bf16")
    assert [p.concurrency for p in prof.points] == [1, 2] and prof.points[0].output_tokens == OUT


def test_cli_fails_cleanly_when_nothing_succeeds(httpserver) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    httpserver.expect_request("/v1/completions", method="POST").respond_with_data("no", status=500)
    res = CliRunner().invoke(app, ["bench", httpserver.url_for("/").rstrip("/"), "--model", "m", "--concurrency", "1",
                                   "--max-requests", "2", "--duration", "2"])
    assert res.exit_code == 1 and "no request" in res.output


def test_cli_unknown_deployment(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    res = CliRunner().invoke(app, ["bench", "chat", "--state", str(tmp_path / "s.db")])
    assert res.exit_code == 1 and "no running replica of deployment 'chat'" in res.output


def test_api_key_from_env_is_sent_not_printed(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    monkeypatch.setenv("VLLM_KEY", "sk-secret-123")
    res = CliRunner().invoke(app, ["bench", server.url_for("/").rstrip("/"), "--concurrency", "1", "--max-requests", "1",
                                   "--output-tokens", str(OUT), "--api-key-env", "VLLM_KEY", "--no-profile"])
    assert res.exit_code == 0, res.output
    assert "sk-secret-123" not in res.output
    auth = {req.headers.get("Authorization") for req, _ in server.log if req.path == "/v1/completions"}
    assert auth == {"Bearer sk-secret-123"}
