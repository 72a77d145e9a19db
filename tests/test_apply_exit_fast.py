"""A replica that exits before it is healthy (not installed, a bad flag) stops the wait at once, with its log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_apply_notices_a_replica_that_died_and_shows_why(tmp_path: Path) -> None:
    pkg = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(
        "import sys\nprint('error: unrecognized arguments: --bogus-flag', file=sys.stderr)\nsys.exit(2)\n")
    from test_gateway_local import _free_block

    spec = tmp_path / "local.yaml"
    text = (REPO / "examples" / "local.yaml").read_text().replace(
        "model: tiny-llama/config.json", f"model: {REPO / 'examples/tiny-llama/config.json'}")
    spec.write_text(text.replace("    slo:\n", f"    gateway: {{port: {_free_block(4)}}}\n    slo:\n", 1))
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_STATE_URL": "",
           "ORCH_VLLM_PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "fake")}
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "apply", str(spec), "--yes", "--timeout",
                            "600"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
    finally:  # the gateway started beside the replica: stop it
        subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "destroy", str(spec), "--yes"], cwd=REPO,
                       env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stderr
    assert took < 60, took  # not the 600 s timeout
    assert "exited before it was healthy" in r.stderr and "unrecognized arguments: --bogus-flag" in r.stderr
