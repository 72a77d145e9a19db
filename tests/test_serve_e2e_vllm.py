"""Serving end to end on this machine, with real parts: vLLM CPU replicas of the tiny model behind a real
vllm-router and its Caddy edge, applied by `orch apply`, scaled by `orch autoscale`.

One run, in order: the endpoint answers with the key and 401s without; `orch bench` pointed at it makes the loop
go from 1 to 2 replicas; a replica killed with SIGKILL under load loses no request and the loop replaces it; when
the load stops, the extra replica is drained and removed after the cool-down; every request sent got an answer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-e2e-endpoint-key-42"
pytestmark = pytest.mark.vllm


def _free_block(n: int = 4) -> int:
    from test_gateway_local import _free_block as free

    return free(n)


def _orch(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Load:
    """Clients sending completions through the endpoint until stopped; every outcome counted."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.results, self.stop = url, Counter(), threading.Event()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as c:
            while not self.stop.is_set():
                try:
                    r = c.post(f"{self.url}/v1/completions",
                               json={"model": "tiny", "prompt": "Hello, how are you today?", "max_tokens": 32})
                    outcome: object = r.status_code
                    if r.status_code != 200:
                        self.errors.append(r.text[:200])
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                    self.errors.append(repr(exc)[:200])
                with self.lock:
                    self.results[outcome] += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(150)


def _status(env: dict[str, str], spec: Path) -> dict:
    r = _orch(env, "status", str(spec), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["deployments"][0]


def _serving(state: Path) -> int:
    """Replicas of this machine answering /health (the local provider's records; light enough to poll)."""
    n = 0
    for path in (state / "local").glob("*.json"):
        try:
            rec = json.loads(path.read_text())
            if rec.get("role") != "gateway":
                n += httpx.get(f"http://{rec['host']}:{rec['port']}/health", timeout=2).status_code == 200
        except (ValueError, OSError, httpx.HTTPError):
            continue
    return n


def _routed(state: Path, base: str) -> int:
    """Workers the gateway routes to (its control port, with the admin key apply generated)."""
    from orchestrator.serve.admin import GatewayAdmin

    try:
        with GatewayAdmin(base, (state / "secrets" / "orch-admin-key").read_text().strip()) as admin:
            return len(admin.workers())
    except Exception:  # noqa: BLE001 - not up yet
        return -1


def _wait_for(state: Path, base: str, healthy: int, timeout: float) -> float:
    """Until ``healthy`` replicas answer /health, no other replica exists, and the gateway routes to them all."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        records = len(list((state / "local").glob("*.json")))
        if _serving(state) == healthy and records == healthy + 1 and _routed(state, base) == healthy:
            return time.monotonic() - t0
        time.sleep(2)
    raise AssertionError(f"not {healthy} healthy replica(s) within {timeout:.0f} s: {_serving(state)} serving, "
                         f"{_routed(state, base)} routed")


def test_serve_scale_out_survive_a_kill_and_scale_in(tmp_path: Path) -> None:
    from conftest import vllm_python

    python = vllm_python()
    port = _free_block(4)
    text = (REPO / "examples" / "local-serve.yaml").read_text()
    text = text.replace("model: tiny-llama/config.json", f"model: {REPO / 'examples' / 'tiny-llama' / 'config.json'}")
    text = re.sub(r"port: 9000", f"port: {port}", text)
    text = re.sub(r"scale_out_after_s: \d+", "scale_out_after_s: 6", text)
    text = re.sub(r"scale_in_after_s: \d+", "scale_in_after_s: 20", text)
    text = re.sub(r"cooldown_s: \d+", "cooldown_s: 10", text)
    spec = tmp_path / "serve.yaml"
    spec.write_text(text)
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_PROFILE_DIR": str(tmp_path / "profiles"),
           "ORCH_VLLM_PYTHON": python, "ORCH_API_KEY": KEY, "ORCH_STATE_URL": ""}
    env.pop("ORCH_ADMIN_KEY", None)  # generated into the local secret store, never printed
    base = f"http://127.0.0.1:{port}"
    scaler = None
    try:
        r = _orch(env, "apply", str(spec), "--yes", "--timeout", "300")
        assert r.returncode == 0, r.stderr
        assert f"endpoint {base}/v1" in r.stderr and KEY not in r.stdout + r.stderr

        # the endpoint: the key or 401; a stream streams
        body = {"model": "tiny", "prompt": "Hi", "max_tokens": 8}
        assert httpx.post(f"{base}/v1/completions", json=body).status_code == 401
        ok = httpx.post(f"{base}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 8
        with httpx.stream("POST", f"{base}/v1/completions", timeout=60, headers={"Authorization": f"Bearer {KEY}"},
                          json={**body, "stream": True}) as s:  # the tiny model has no chat template
            chunks = [ln for ln in s.iter_lines() if ln.startswith("data:")]
        assert s.status_code == 200 and chunks[-1] == "data: [DONE]" and len(chunks) > 2
        assert httpx.post(f"{base}/list_workers", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
        dep = _status(env, spec)
        assert dep["endpoint"] == f"{base}/v1" and dep["healthy"] == 1

        # a measured profile of one replica at the deployment's request shape: the autoscaler's capacity at the SLO
        r = _orch(env, "bench", "tiny", "--concurrency", "1,4", "--input-tokens", "64", "--output-tokens", "32",
                  "--duration", "4", timeout=300)
        assert r.returncode == 0, r.stderr
        assert "wrote measured profile" in r.stderr

        log = (tmp_path / "autoscale.log").open("w")
        scaler = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "autoscale", str(spec),
                                   "--interval", "2", "--timeout", "300"], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        # the ramp: orch bench pointed at the endpoint, 8 streams for 30 s; the loop decides to add a replica
        t0 = time.monotonic()
        r = _orch(env, "bench", base, "--concurrency", "8", "--input-tokens", "64", "--output-tokens", "32",
                  "--duration", "30", "--max-requests", "100000", "--no-profile", "--json", timeout=300)
        assert r.returncode == 0, r.stderr
        (level,) = json.loads(r.stdout)["levels"]
        assert level["requests"] > 100 and level["errors"] == 0
        assert "1 -> 2 replica(s): load" in (tmp_path / "autoscale.log").read_text()
        with Load(base, clients=8) as load:  # the load goes on while the new replica starts, and then some
            _wait_for(tmp_path / "state", base, healthy=2, timeout=300)
            took = time.monotonic() - t0
            print(f"scaled 1 -> 2 in {took:.0f} s from the start of the ramp")
            assert "measured)" in (tmp_path / "autoscale.log").read_text()  # sized by the profile, not the model
            # SIGKILL one replica's whole process group while the load runs
            records = [json.loads(p.read_text()) for p in (tmp_path / "state" / "local").glob("*.json")]
            victim = next(r for r in records if r.get("role") != "gateway" and r["name"].endswith("-0"))
            before = sum(load.results.values())
            os.killpg(victim["pid"], signal.SIGKILL)
            time.sleep(15)
            assert sum(load.results.values()) > before  # the other replica kept serving
            took = _wait_for(tmp_path / "state", base, healthy=2, timeout=300)
            print(f"replaced the killed replica in {took:.0f} s")
        sent = sum(load.results.values())
        assert sent > 50 and load.results == Counter({200: sent}), (load.results, load.errors[:3])

        took = _wait_for(tmp_path / "state", base, healthy=1, timeout=300)
        print(f"back to 1 replica {took:.0f} s after the load stopped")
        assert _status(env, spec)["healthy"] == 1
        out = (tmp_path / "autoscale.log").read_text()
        assert "no longer routing to" in out and "mending" in out
        assert KEY not in out
    finally:
        if scaler is not None:
            scaler.send_signal(signal.SIGINT)
            try:
                scaler.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(scaler.pid, signal.SIGKILL)
        r = _orch(env, "destroy", str(spec), "--yes", timeout=300)
        assert r.returncode == 0, r.stderr
        assert not list((tmp_path / "state" / "local").glob("*.json"))  # every process gone with its record
