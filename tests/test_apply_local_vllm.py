"""End to end on this machine: `orch apply examples/local.yaml --yes` starts a real vLLM CPU server and its
gateway, `orch status` shows it running and healthy with its endpoint, `orch destroy --yes` stops both (the
processes are gone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "local.yaml"


def _orch(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.vllm
def test_apply_status_destroy_a_real_vllm_server(tmp_path: Path) -> None:
    from conftest import vllm_python

    vllm_python()  # skips, saying how, without one
    from test_gateway_local import _free_block

    port = _free_block(4)  # the example's gateway port may be taken on this machine
    example = tmp_path / "local.yaml"
    example.write_text(EXAMPLE.read_text().replace("model: tiny-llama/config.json",
                                                   f"model: {REPO / 'examples/tiny-llama/config.json'}")
                       .replace("    slo:\n", f"    gateway: {{port: {port}}}\n    slo:\n", 1))
    env = {"ORCH_STATE_DIR": str(tmp_path / "orch"), "ORCH_STATE_URL": ""}
    state = ["--state", str(tmp_path / "state.db")]
    applied = _orch(["apply", str(example), "--yes", "--timeout", "600", *state], env)
    pids: list[int] = []
    try:
        assert applied.returncode == 0, applied.stderr[-3000:]
        assert "2 to create" in applied.stdout and "healthy: local-demo-tiny-" in applied.stderr  # replica, gateway
        assert f"tiny: endpoint http://127.0.0.1:{port}/v1" in applied.stderr

        status = _orch(["status", str(example), "--json", *state], env, timeout=60)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        (dep,) = doc["deployments"]
        assert (dep["name"], dep["desired"], dep["actual"], dep["healthy"]) == ("tiny", 1, 1, 1)
        assert dep["endpoint"] == f"http://127.0.0.1:{port}/v1"
        replica = next(r for r in dep["replicas"] if r["role"] == "replica")
        assert replica["status"] == "running" and replica["health"] == "healthy"
        records = [json.loads(p.read_text()) for p in (tmp_path / "orch" / "local").glob("*.json")]
        pids = [r["pid"] for r in records] + [s["pid"] for r in records for s in r.get("sidecars", [])]
        assert len(pids) == 3 and all(_alive(p) for p in pids)  # vLLM, the router, its edge

        again = _orch(["apply", str(example), "--yes", *state], env, timeout=120)
        assert again.returncode == 0 and "0 to create, 2 to keep" in again.stdout  # idempotent
    finally:
        destroyed = _orch(["destroy", str(example), "--yes", *state], env, timeout=120)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "destroyed local-demo-tiny-" in destroyed.stderr
    assert pids and not any(_alive(p) for p in pids)
    after = json.loads(_orch(["status", str(example), "--json", *state], env, timeout=60).stdout)
    assert after["deployments"][0]["actual"] == 0
