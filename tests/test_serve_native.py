"""`orch autoscale --render hpa|keda`: the Kubernetes-native alternative to the loop, validated as manifests."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli.main import app

SPEC = """
version: 1
project: k8s-demo
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {requests_per_second: 5, input_tokens: 500, output_tokens: 200}
    slo: {ttft_p95_ms: 2000, tpot_p95_ms: 60}
    autoscale: {min_replicas: 1, max_replicas: 4, target_utilization: 0.7}
providers:
  onprem:
    kind: kubernetes
    sites:
      - {name: lab, location: aws:us-east-1, gpus: {L40S: 8}, cost: {power_usd_per_kwh: 0.15}, kube_context: lab}
"""


@pytest.mark.parametrize("kind", ["hpa", "keda"])
def test_native_manifests_for_a_kubernetes_group(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    from test_containers_kubernetes import validate

    path = tmp_path / "k8s.yaml"
    path.write_text(SPEC)
    res = CliRunner().invoke(app, ["autoscale", str(path), "--render", kind, "--prometheus-url", "http://prom:9090"])
    assert res.exit_code == 0, res.output
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[-1] == ("HorizontalPodAutoscaler" if kind == "hpa" else "ScaledObject")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    scaler = docs[-1]
    target = scaler["spec"]["scaleTargetRef"]["name"]
    assert target == deployment["metadata"]["name"]
    if kind == "hpa":
        assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (1, 4)
        for d in docs:
            validate(d)
    else:
        assert (scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]) == (1, 4)
        trigger = scaler["spec"]["triggers"][0]
        assert trigger["type"] == "prometheus" and "vllm:num_requests_running" in trigger["metadata"]["query"]
        assert float(trigger["metadata"]["threshold"]) > 0
        for d in docs[:-1]:
            validate(d)


def test_native_path_needs_a_kubernetes_site(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cloud.yaml"
    path.write_text(SPEC.split("providers:")[0] + "providers:\n  aws: {regions: [us-east-1]}\n")
    res = CliRunner().invoke(app, ["autoscale", str(path), "--render", "hpa"])
    assert res.exit_code == 1 and "Kubernetes site" in res.output
