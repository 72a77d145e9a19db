"""Local provider: process lifecycle against a stand-in server module, and against real vLLM (marked vllm)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from containers.vllm import VllmLaunch, build_vllm_container
from orchestrator.errors import NotFoundError
from providers.base import Placement, Provider
from providers.local import create

# Stands in for vllm.entrypoints.openai.api_server: a plain HTTP server answering /health on --host/--port.
FAKE_SERVER = '''
import http.server, os, signal, sys, time
args = sys.argv[1:]
port = int(args[args.index("--port") + 1]); host = args[args.index("--host") + 1]
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("FAKE_CHILD_OUT"):  # an engine process in the server's group, as vLLM starts one
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.environ["FAKE_CHILD_OUT"], "w").write(str(child.pid))
with open(os.environ["FAKE_ENV_OUT"], "w") as f:
    f.write(repr({"HF_TOKEN": os.environ.get("HF_TOKEN"), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"), "argv": args}))
time.sleep(0.3)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((host, port), H).serve_forever()
'''

TOKEN = "hf_local_SECRET_42"


@pytest.fixture()
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(FAKE_SERVER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    monkeypatch.setenv("FAKE_ENV_OUT", str(tmp_path / "env.txt"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return tmp_path / "env.txt"


def _spec_and_placement(replica: str = "tiny-0", port: int | None = None):  # type: ignore[no-untyped-def]
    from conftest import _tiny_plan_parts

    dep, group = _tiny_plan_parts()
    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    spec = build_vllm_container(project="t", deployment=dep, group=group, replica=replica,
                                launch=VllmLaunch(port=port))
    placement = Placement(project="t", deployment="tiny", plan_id="p1", replica=replica,
                          region="local:this-machine", instance_type="this-machine", gpu="CPU", gpu_count=1)
    return spec, placement


def _wait_state(provider, handle_id: str, want: str, timeout: float = 20) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        h = provider.describe(handle_id, "local:this-machine")
        if h.state == want or time.monotonic() > deadline:
            return h
        time.sleep(0.2)


def test_lifecycle_with_busy_port(fake_vllm: Path, tmp_path: Path) -> None:
    provider = create(python=sys.executable, state_dir=tmp_path / "state")
    assert isinstance(provider, Provider)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    spec, placement = _spec_and_placement(port=busy.getsockname()[1])
    try:
        handle = provider.launch(spec, placement)
        assert handle.state == "pending" and handle.endpoint != f"http://127.0.0.1:{busy.getsockname()[1]}"
        running = _wait_state(provider, handle.id, "running")
        assert running.state == "running"
        assert httpx.get(f"{running.endpoint}/health").status_code == 200
        # the process got the token from orch's environment; the record never holds it
        seen = eval(fake_vllm.read_text())  # noqa: S307 - written by our stand-in above
        assert seen["HF_TOKEN"] == TOKEN and seen["HF_HUB_OFFLINE"] == "1"
        assert "--model" in seen["argv"] and "--gpu-memory-utilization" not in seen["argv"]
        record = (tmp_path / "state" / f"{handle.id}.json").read_text()
        assert TOKEN not in record and json.loads(record)["pid"] == handle.details["pid"]
        # relaunch adopts the live process
        again = provider.launch(spec, placement)
        assert again.details["pid"] == handle.details["pid"]
        assert [h.id for h in provider.list({"orch-project": "t", "orch-plan": "p1"})] == [handle.id]
        assert provider.list({"orch-project": "other"}) == []
    finally:
        provider.terminate(handle)
        busy.close()
    assert not (tmp_path / "state" / f"{handle.id}.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(handle.details["pid"], 0)
    assert provider.list({"orch-project": "t"}) == []
    with pytest.raises(NotFoundError):
        provider.describe(handle.id, "local:this-machine")
    provider.terminate(handle)  # idempotent


def test_sigkill_after_grace_and_dead_process_reported(fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    provider = create(python=sys.executable, state_dir=tmp_path / "state")
    provider.grace_s = 1.0
    spec, placement = _spec_and_placement(replica="stubborn-0")
    handle = provider.launch(spec, placement)
    assert _wait_state(provider, handle.id, "running").state == "running"
    t0 = time.monotonic()
    provider.terminate(handle)
    assert time.monotonic() - t0 < 8
    with pytest.raises(ProcessLookupError):
        os.kill(handle.details["pid"], 0)

    bad = create(python=sys.executable, state_dir=tmp_path / "state2")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nowhere"))  # no vllm module: the process exits at once
    h = bad.launch(*_spec_and_placement(replica="broken-0"))
    dead = _wait_state(bad, h.id, "terminated")
    assert dead.state == "terminated" and "No module named" in dead.details["log_tail"]
    bad.terminate(h)


def test_a_relaunch_after_kill_9_stops_what_the_dead_server_left(fake_vllm: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the server leaves its engine running in its process group: apply's relaunch stops it first."""
    import signal

    monkeypatch.setenv("FAKE_CHILD_OUT", str(tmp_path / "child.pid"))
    provider = create(python=sys.executable, state_dir=tmp_path / "state")
    spec, placement = _spec_and_placement(replica="killed-0")
    handle = provider.launch(spec, placement)
    assert _wait_state(provider, handle.id, "running").state == "running"
    child = int((tmp_path / "child.pid").read_text())
    os.kill(handle.details["pid"], signal.SIGKILL)
    assert _wait_state(provider, handle.id, "terminated").state == "terminated"
    os.kill(child, 0)  # the engine lives on without its server

    again = provider.launch(spec, placement)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]
    provider.terminate(again)


def test_offerings_and_planned_calls(tmp_path: Path) -> None:
    provider = create(python="/opt/vllm/bin/python", state_dir=tmp_path)
    [off] = provider.offerings()
    assert off.region == "local:this-machine" and off.gpu == "CPU" and off.usd_per_hour == 0.0
    [call] = provider.planned_calls(*_spec_and_placement())
    assert call["argv"][:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert call["secret_env"] == ["HF_TOKEN"] and "HF_TOKEN" not in call["env"]


@pytest.mark.vllm
def test_real_vllm_serves_tokens_and_metrics(vllm_server) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.post(f"{vllm_server.endpoint}/v1/completions",
                   json={"model": "tiny", "prompt": "Hello world", "max_tokens": 16}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["completion_tokens"] == 16 and body["choices"][0]["text"]
    metrics = httpx.get(f"{vllm_server.endpoint}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    gen = families["vllm:generation_tokens"]  # the parser drops the _total suffix of counters
    assert sum(s.value for s in gen.samples if s.name.endswith("_total") and s.labels.get("model_name") == "tiny") >= 16
    provider = vllm_server.details["provider"]
    assert [h.id for h in provider.list({"orch-project": "test"})] == [vllm_server.id]


def test_missing_python_is_a_provider_error(tmp_path: Path) -> None:
    from orchestrator.errors import ProviderError

    provider = create(python=str(tmp_path / "no-such-python"), state_dir=tmp_path)
    with pytest.raises(ProviderError, match="ORCH_VLLM_PYTHON"):
        provider.launch(*_spec_and_placement())
    assert provider.list({}) == []
