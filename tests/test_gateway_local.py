"""The gateway pod for real: vllm-router behind its Caddy edge, launched by the local provider, in front of two
small OpenAI-shaped workers that check the key as vLLM does (the vLLM-backed run is in test_serve_e2e_vllm.py).

What is checked is behaviour, not flags: who gets a 401, which routes a user can reach at all, that the control
port wants the admin key, that a stream streams, and that a worker killed under load loses no request."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from containers.gateway import GatewayNetwork, build_gateway_container
from orchestrator.errors import ProviderError
from orchestrator.serve.admin import GatewayAdmin
from providers.base import Placement
from providers.local import create

API_KEY, ADMIN_KEY = "sk-user-key-0123456789", "admin-key-9876543210"

# A stand-in for a vLLM replica: /health and /metrics open, the OpenAI routes only with VLLM_API_KEY.
WORKER = r'''
import http.server, json, os, sys, time
KEY = os.environ["VLLM_API_KEY"]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as a real server's do
    def _send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path == "/health": return self._send(200, "")
        if self.path == "/metrics": return self._send(200, "# metrics\n", "text/plain")
        if self.headers.get("Authorization") != "Bearer " + KEY: return self._send(401, '{"error":"Unauthorized"}')
        if self.path == "/v1/models": return self._send(200, json.dumps({"object": "list", "data": [{"id": "tiny"}]}))
        self._send(404, "{}")
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.headers.get("Authorization") != "Bearer " + KEY: return self._send(401, '{"error":"Unauthorized"}')
        time.sleep(0.05)
        if body.get("stream"):
            self.send_response(200); self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            for i in range(3):
                chunk = f'data: {{"choices": [{{"text": "t{i}"}}]}}\n\n'.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk)); self.wfile.flush(); time.sleep(0.05)
            end = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(end), end)); self.wfile.flush()
            return
        self._send(200, json.dumps({"choices": [{"text": "ok"}], "served_by": sys.argv[1],
                                    "usage": {"prompt_tokens": 2, "completion_tokens": 1}}))
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def _free_block(n: int = 4) -> int:
    """A base port with n free ports from it."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free block of ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture()
def workers(tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = {}
    for _ in range(2):
        port = _free_block(1)
        procs[port] = subprocess.Popen([sys.executable, str(script), str(port)], env={**os.environ, "VLLM_API_KEY": API_KEY},
                                       start_new_session=True)
        _wait(f"http://127.0.0.1:{port}/health")
    yield procs
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture()
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ORCH_API_KEY", API_KEY)
    monkeypatch.setenv("ORCH_ADMIN_KEY", ADMIN_KEY)
    port = _free_block(4)
    spec = build_gateway_container(project="t", deployment="chat", gateway="t-chat-gw1-0", port=port,
                                   policy="round_robin", network=GatewayNetwork(bind="127.0.0.1", control_bind="127.0.0.1"))
    placement = Placement(project="t", deployment="chat", plan_id="p1", replica="t-chat-gw1-0",
                          region="local:this-machine", instance_type="this-machine", gpu="CPU", gpu_count=0)
    provider = create(state_dir=tmp_path / "local")
    handle = provider.launch(spec, placement)
    try:
        _wait(f"http://127.0.0.1:{port}/health", 60)
        yield provider, handle, port
    finally:
        provider.terminate(handle)


def test_the_endpoint_wants_the_key_and_serves_only_user_routes(gateway, workers) -> None:  # type: ignore[no-untyped-def]
    provider, handle, port = gateway
    base = f"http://127.0.0.1:{port}"
    with GatewayAdmin(base, ADMIN_KEY) as admin:
        assert admin.workers() == []
        for w in workers:
            admin.add(f"http://127.0.0.1:{w}")
        assert sorted(admin.workers()) == sorted(f"http://127.0.0.1:{w}" for w in workers)
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 1}
    user = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{base}/health").status_code == 200  # health needs no key
    assert httpx.post(f"{base}/v1/completions", json=body).status_code == 401
    assert httpx.post(f"{base}/v1/completions", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{base}/v1/completions", json=body, headers={"Authorization": "Bearer"}).status_code == 401
    assert httpx.post(f"{base}/v1/completions", json=body, headers={"Authorization": API_KEY}).status_code == 401
    r = httpx.post(f"{base}/v1/completions", json=body, headers=user)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "ok"
    assert httpx.get(f"{base}/v1/models", headers=user).json()["data"][0]["id"] == "tiny"
    # the router's admin routes and anything else: not there for users, with or without the key
    for path in ("/list_workers", "/add_worker?url=http://evil:1", "/remove_worker?url=x", "/metrics", "/get_loads",
                 "/", "/v1/../list_workers", "/workers"):
        for headers in ({}, user):
            assert httpx.post(f"{base}{path}", headers=headers).status_code == 404, path
            assert httpx.get(f"{base}{path}", headers=headers).status_code == 404, path
    # the control port: the admin key only (the user's key is not it)
    control = f"http://127.0.0.1:{port + 1}"
    assert httpx.get(f"{control}/list_workers").status_code == 401
    assert httpx.get(f"{control}/list_workers", headers=user).status_code == 401
    assert httpx.post(f"{control}/add_worker?url=http://evil:1", headers=user).status_code == 401
    assert httpx.get(f"{control}/list_workers", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    assert httpx.get(f"{control}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    # a stream streams: the chunks arrive one by one through the edge and the router
    with httpx.stream("POST", f"{base}/v1/completions", json={**body, "stream": True}, headers=user) as s:
        assert s.status_code == 200
        events = [line for line in s.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]" and len(events) == 4
    # no key reaches the pod's record or logs
    record = (provider.state_dir / f"{handle.id}.json").read_text()
    logs = "".join(p.read_text(errors="replace") for p in provider.state_dir.glob("*.log"))
    files = "".join(p.read_text() for p in provider.state_dir.rglob("Caddyfile"))
    for secret in (API_KEY, ADMIN_KEY):
        assert secret not in record + logs + files


def test_a_worker_killed_under_load_loses_no_request(gateway, workers) -> None:  # type: ignore[no-untyped-def]
    _, _, port = gateway
    base = f"http://127.0.0.1:{port}"
    with GatewayAdmin(base, ADMIN_KEY) as admin:
        for w in workers:
            admin.add(f"http://127.0.0.1:{w}")
    victim = next(iter(workers.values()))

    async def load(n: int, concurrency: int) -> Counter:
        results: Counter = Counter()
        queue = list(range(n))
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            async def one() -> None:
                while queue:
                    i = queue.pop()
                    if i == n // 3:  # a third of the way in, with requests in flight on both workers
                        os.killpg(victim.pid, signal.SIGKILL)
                    try:
                        r = await client.post(f"{base}/v1/completions", json={"model": "tiny", "prompt": "x"})
                        results[r.status_code] += 1
                    except httpx.HTTPError as exc:
                        results[type(exc).__name__] += 1
            await asyncio.gather(*(one() for _ in range(concurrency)))
        return results

    results = asyncio.run(load(300, 8))
    assert victim.wait(5) is not None
    assert results == Counter({200: 300}), results


def test_the_gateway_answers_health_while_a_worker_is_dead(gateway, workers) -> None:  # type: ignore[no-untyped-def]
    """The router's own /health is 503 while any worker is down; the gateway's /health (its liveness) stays 200, so
    apply still counts the gateway healthy and tells it of the replacement (a dead worker once blocked that)."""
    from containers.gateway import router_port
    from orchestrator.apply.readiness import check_health

    _, _, port = gateway
    base = f"http://127.0.0.1:{port}"
    with GatewayAdmin(base, ADMIN_KEY) as admin:
        for w in workers:
            admin.add(f"http://127.0.0.1:{w}")
    victim = next(iter(workers.values()))
    os.killpg(victim.pid, signal.SIGKILL)
    router = f"http://127.0.0.1:{router_port(port)}/health"
    deadline = time.monotonic() + 40
    while httpx.get(router).status_code == 200 and time.monotonic() < deadline:  # the router's checks notice
        time.sleep(0.5)
    assert httpx.get(router).status_code == 503
    assert httpx.get(f"{base}/health").status_code == 200 and check_health(base)


def test_a_missing_router_is_an_error_that_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import containers.render.local as local_render

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(local_render, "program_dirs", lambda python: [str(tmp_path)])
    spec = build_gateway_container(project="t", deployment="chat", gateway="t-chat-gw1-0", port=_free_block(4))
    placement = Placement(project="t", deployment="chat", plan_id="p1", replica="t-chat-gw1-0",
                          region="local:this-machine", instance_type="this-machine", gpu="CPU", gpu_count=0)
    provider = create(state_dir=tmp_path / "local")
    with pytest.raises(ProviderError, match=r"vllm-router.*pip install 'orch\[serve\]'"):
        provider.launch(spec, placement)
    assert not list((tmp_path / "local").glob("*.json"))  # nothing half-started, nothing recorded
