"""Acceptance: `orch apply examples/quickstart.yaml --dry-run` prints every replica group's provider calls,
with no credentials, and reads or writes no state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_quickstart_dry_run_prints_calls_for_every_group_without_credentials(tmp_path: Path) -> None:
    from orchestrator.placement import place
    from orchestrator.spec.loader import load_spec

    plan = place(load_spec(REPO / "examples" / "quickstart.yaml"))
    groups = [(d.name, g) for d in plan.deployments for g in d.replicas]
    gateways = [(d.name, g) for d in plan.deployments for g in d.gateways]
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "orch"), "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID1234",
           "AWS_SECRET_ACCESS_KEY": "s3cr3t-do-not-print", "HF_TOKEN": "hf_do_not_print", "ORCH_STATE_URL": "",
           "ORCH_API_KEY": "sk-endpoint-do-not-print", "ORCH_ADMIN_KEY": "admin-do-not-print"}
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "apply", "examples/quickstart.yaml", "--dry-run"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    headers = [line for line in r.stdout.splitlines() if line.startswith("# ")]
    assert len(headers) == len(groups) + len(gateways) and gateways
    for (name, g), header in zip(groups, headers):
        assert header.startswith(f"# {name}: {g.count} x {g.provider} {g.region} {g.instance_type}")
    for (name, g), header in zip(gateways, headers[len(groups):]):
        assert header.startswith(f"# {name}: gateway on {g.provider} {g.region} {g.instance_type}, port {g.port}")
    bodies = [json.loads(chunk) for chunk in _json_chunks(r.stdout)]
    assert len(bodies) == len(headers) and all(isinstance(b, list) and b for b in bodies)
    # the replicas take the endpoint's key from the secret store, by reference only
    assert "VLLM_API_KEY" in r.stdout and "orch-api-key" in r.stdout
    for secret in ("AKIAEXAMPLEKEYID1234", "s3cr3t-do-not-print", "hf_do_not_print", "sk-endpoint-do-not-print",
                   "admin-do-not-print"):
        assert secret not in r.stdout + r.stderr
    assert "orch-project" in r.stdout  # every resource is labelled with its project
    assert not (tmp_path / "orch").exists()  # no state database was created


def _json_chunks(text: str) -> list[str]:
    chunks, cur = [], []
    for line in text.splitlines():
        if line.startswith("# "):
            if cur:
                chunks.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    if cur:
        chunks.append("\n".join(cur))
    return chunks


def test_dry_run_redacts_values_not_security_settings() -> None:
    from orchestrator.state.store import scrub_calls

    out = scrub_calls({"MetadataOptions": {"HttpTokens": "required"}, "ClientToken": "abc",
                       "env": {"HF_TOKEN": "hf_x", "ORCH_API_KEY": "sk", "db_password": "p"}})
    assert out["MetadataOptions"]["HttpTokens"] == "required" and out["ClientToken"] == "abc"
    assert set(out["env"].values()) == {"<redacted>"}


ONPREM = """version: 1
project: site-demo
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {requests_per_second: 5, input_tokens: 500, output_tokens: 200}
    slo: {ttft_p95_ms: 2000, tpot_p95_ms: 60}
providers:
"""


@pytest.mark.parametrize("providers, needed", [
    ("  onprem:\n    kind: kubernetes\n    sites:\n      - {name: lab, location: aws:us-east-1, gpus: {L40S: 8},"
     " cost: {power_usd_per_kwh: 0.15}, kube_context: lab}\n", "LeaderWorkerSet|Deployment"),
    ("  onprem:\n    kind: baremetal\n    sites:\n      - {name: lab, location: aws:us-east-1, gpus: {L40S: 8},"
     " cost: {power_usd_per_kwh: 0.15}}\n", "set-the-sites-hosts"),
    ("  azure: {regions: [eastus]}\n", "<set providers.azure.options.key_vault>"),
])
def test_dry_runs_need_no_credentials_on_any_provider(tmp_path: Path, providers: str, needed: str) -> None:
    """Issue 20, item 15: Kubernetes exited 3 without a kubeconfig, bare metal printed nothing, Azure wanted a vault."""
    import re

    spec = tmp_path / "spec.yaml"
    spec.write_text(ONPREM + providers)
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "ORCH_STATE_DIR": str(tmp_path / "orch"),
           "AZURE_CLIENT_ID": "", "AWS_ACCESS_KEY_ID": ""}
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "apply", str(spec), "--dry-run"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert re.search(needed, r.stdout) and "gateway on" in r.stdout
    assert not (tmp_path / "orch").exists()
