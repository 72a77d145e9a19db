"""Bad serving input: a located error, and nothing changed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_autoscale_and_gateway_settings_are_checked_where_they_stand(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("""version: 1
project: p
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {requests_per_second: 1, input_tokens: 100, output_tokens: 100}
    slo: {ttft_p95_ms: 2000, tpot_p95_ms: 100}
    autoscale:
      min_replicas: 3
      max_replicas: 2
      target_utilization: 0
    gateway: {port: 70000, policy: power_of_two, allow_cidrs: [everyone]}
""")
    r = _run("validate", str(spec), env=dict(os.environ))
    assert r.returncode == 1
    err = r.stderr
    assert f"{spec}:10:21: deployments[0].autoscale.max_replicas: expected max_replicas >= min_replicas (3)" in err
    assert f"{spec}:11:27: deployments[0].autoscale.target_utilization: expected greater than 0" in err
    assert "deployments[0].gateway.port: expected less than 65533, found 70000" in err
    assert "deployments[0].gateway.policy" in err and "cache_aware" in err
    assert "deployments[0].gateway.allow_cidrs" in err and "'everyone' is not one" in err


def test_a_taken_gateway_port_stops_apply_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        text = (REPO / "examples" / "local-serve.yaml").read_text().replace("port: 9000", f"port: {port}")
        text = text.replace("model: tiny-llama/config.json", f"model: {REPO / 'examples/tiny-llama/config.json'}")
        spec = tmp_path / "serve.yaml"
        spec.write_text(text)
        env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_STATE_URL": "",
               "ORCH_VLLM_PYTHON": sys.executable}
        r = _run("apply", str(spec), "--yes", env=env)
    assert r.returncode == 1, r.stderr
    line = next(ln for ln in spec.read_text().splitlines() if f"port: {port}" in ln)
    lineno = spec.read_text().splitlines().index(line) + 1
    assert f"{spec}:{lineno}:" in r.stderr and "deployments[0].gateway.port" in r.stderr
    assert f"port {port}" in r.stderr and "already taken" in r.stderr and "nothing was changed" in r.stderr
    assert not (tmp_path / "state" / "local").exists() or not list((tmp_path / "state" / "local").glob("*.json"))
