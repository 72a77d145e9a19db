"""Shared fixtures. ``vllm_server``: a real vLLM CPU server on the tiny model, started through the local provider."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / "examples" / "tiny-llama"


def _tiny_plan_parts():  # type: ignore[no-untyped-def]
    from orchestrator.plan import DeploymentPlan, Predicted, ReplicaGroup

    group = ReplicaGroup(
        provider="local", region="local:this-machine", instance_type="this-machine", gpu="CPU",
        gpus_per_replica=1, tensor_parallel=1, quantization="bf16", market="on_demand", count=1, usd_per_hour=0.0,
    )
    dep = DeploymentPlan(
        name="tiny", model="tiny-llama", hf_id=str(TINY_MODEL / "config.json"), max_model_len=256,
        replicas=[group], predicted=Predicted(ttft_p95_ms=0, tpot_p95_ms=0, capacity_rps=0, usd_per_million_tokens=0),
        usd_per_hour=0.0, egress_usd_per_month=0.0,
    )
    return dep, group


def vllm_python() -> str:
    """The python with vLLM the `vllm` tests use ($ORCH_VLLM_PYTHON); the test skips, saying how to get one."""
    python = os.environ.get("ORCH_VLLM_PYTHON")
    if not python or not Path(python).exists():
        reason = f"ORCH_VLLM_PYTHON={python!r} is not set or missing; run scripts/setup-vllm-cpu.sh and export the path it prints"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return python


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A running vLLM server (providers.base.Handle with ``endpoint``; served model name "tiny").

    Needs $ORCH_VLLM_PYTHON: a python with vLLM (scripts/setup-vllm-cpu.sh prints one). Ready in ~1-2 min.
    """
    python = vllm_python()
    import httpx

    from containers.vllm import VllmLaunch, build_vllm_container
    from providers.base import Placement
    from providers.local import create

    dep, group = _tiny_plan_parts()
    import socket

    with socket.socket() as sock:  # a port of its own: other test sessions on this machine may hold 8000
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = build_vllm_container(project="test", deployment=dep, group=group, replica="tiny-0",
                                launch=VllmLaunch(hf_token=None, port=port))
    placement = Placement(project="test", deployment="tiny", plan_id="p-test", replica="tiny-0",
                          region="local:this-machine", instance_type="this-machine", gpu="CPU", gpu_count=1)
    provider = create(python=python, state_dir=tmp_path_factory.mktemp("vllm-state"))
    handle = provider.launch(spec, placement)
    try:
        deadline = time.monotonic() + 300
        while True:
            state = provider.describe(handle.id, handle.region)
            if state.state == "running":
                break
            if state.state == "terminated" or time.monotonic() > deadline:
                pytest.fail(f"vLLM did not become healthy ({state.state}); log tail:\n{state.details.get('log_tail', '')}")
            time.sleep(2)
        assert httpx.get(f"{state.endpoint}/health", timeout=5).status_code == 200
        state.details["provider"] = provider
        yield state
    finally:
        provider.terminate(handle)
        # terminate reaches the whole process group (API server, engine core); exited children are reaped by init
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(handle.details["pid"], 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"vLLM process group {handle.details['pid']} survived terminate")
            time.sleep(0.2)
