"""A test provider whose replicas are real processes: tiny HTTP servers answering /health.

Not idempotent on purpose (every launch makes a new resource), like a naive cloud API: apply itself
must prevent duplicates (journal + adopt by labels). Faults by environment, so a subprocess sees them:
FAKE_NO_CAPACITY / FAKE_QUOTA / FAKE_DOWN = comma-separated regions (fake:zone-a) that answer
CapacityError / QuotaError / TransientError. Resources live in $FAKE_STATE_DIR (one JSON per resource).
Also holds the helpers the apply/status/destroy tests share (spec and plan files, the CLI runner).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from containers.spec import ContainerSpec
from orchestrator.errors import CapacityError, NotFoundError, QuotaError, TransientError
from providers.base import Handle, Placement

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MARKER = "orch-fake-replica"
SERVER = r"""
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
port_file = sys.argv[1]
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.replace(port_file + ".tmp", port_file)
s.serve_forever()
"""


def alive(pid: int) -> bool:
    """Running and not a zombie (a killed apply's children may never be reaped in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and MARKER.encode() in cmdline


def _env_regions(var: str) -> set[str]:
    return {r.strip() for r in os.environ.get(var, "").split(",") if r.strip()}


class FakeProvider:
    name = "fake"

    def __init__(self, state_dir: Path, region: str) -> None:
        self.state_dir = state_dir
        self.region = region

    def _check(self, what: str) -> None:
        if self.region in _env_regions("FAKE_DOWN"):
            raise TransientError(f"fake: {self.region} unreachable during {what}")

    def records(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.state_dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def _handle(self, rec: dict[str, Any]) -> Handle:
        return Handle(provider="fake", id=rec["id"], region=rec["region"], state="running",
                      labels=dict(rec["labels"]), endpoint=f"http://127.0.0.1:{rec['port']}",
                      launched_at=datetime.fromisoformat(rec["started_at"]), details={"pid": rec["pid"]})

    def offerings(self, regions: list[str] | None = None) -> list:
        return []

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        return [{"call": "spawn", "region": placement.region, "labels": placement.labels(), "args": container.args}]

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        self._check("launch")
        if self.region in _env_regions("FAKE_NO_CAPACITY"):
            raise CapacityError(f"fake: no capacity for {placement.instance_type} in {self.region}")
        if self.region in _env_regions("FAKE_QUOTA"):
            raise QuotaError(f"fake: GPU quota exceeded in {self.region}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        rid = "fk-" + uuid.uuid4().hex[:10]
        port_file = self.state_dir / f"{rid}.port"
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port_file), MARKER], start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if time.monotonic() > deadline:
                proc.kill()
                raise TransientError("fake: server did not start")
            time.sleep(0.02)
        rec = {"id": rid, "pid": proc.pid, "port": int(port_file.read_text()), "region": self.region,
               "labels": placement.labels(), "started_at": datetime.now(timezone.utc).isoformat()}
        (self.state_dir / f"{rid}.json").write_text(json.dumps(rec))
        return self._handle(rec)

    def describe(self, handle_id: str, region: str) -> Handle:
        self._check("describe")
        for rec in self.records():
            if rec["id"] == handle_id and alive(rec["pid"]):
                return self._handle(rec)
        raise NotFoundError(f"fake: {handle_id} not found")

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        self._check("list")
        return [self._handle(r) for r in self.records()
                if r["region"] == self.region and alive(r["pid"])
                and all(r["labels"].get(k) == v for k, v in labels.items())]

    def terminate(self, handle: Handle) -> None:
        self._check("terminate")
        for rec in self.records():
            if rec["id"] == handle.id:
                kill(rec["pid"])
                (self.state_dir / f"{rec['id']}.json").unlink(missing_ok=True)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)  # our child when launched in-process
    except ChildProcessError:
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def register() -> None:
    from orchestrator.apply.targets import Target, register_target

    def factory(name: str, region: str, settings: Any, *, lenient: bool = False) -> Target:
        return Target(region, "fake", FakeProvider(Path(os.environ["FAKE_STATE_DIR"]), region))

    register_target("fake", factory)


def live(state_dir: Path, project: str | None = None) -> list[dict[str, Any]]:
    """Every live fake resource (optionally of one project)."""
    recs = FakeProvider(state_dir, "").records()
    return [r for r in recs if alive(r["pid"]) and (project is None or r["labels"]["orch-project"] == project)]


def kill_all(state_dir: Path) -> None:
    for r in FakeProvider(state_dir, "").records():
        kill(r["pid"])


# -- spec and plan files ---------------------------------------------------------------------------------

SPEC = """\
version: 1
project: {project}
deployments:
{deployments}
"""
DEPLOYMENT = """\
  - name: {name}
    model: llama-3.1-8b
    traffic: {{requests_per_second: 1, input_tokens: 500, output_tokens: 100}}
    slo: {{ttft_p95_ms: 5000, tpot_p95_ms: 200}}
"""


def write_spec(path: Path, project: str, deployments: list[str]) -> str:
    text = SPEC.format(project=project, deployments="".join(DEPLOYMENT.format(name=n) for n in deployments))
    path.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def group(region: str, count: int, instance: str = "fake-1x", usd: float = 1.0) -> dict[str, Any]:
    return {"provider": "fake", "region": region, "instance_type": instance, "gpu": "L4", "gpus_per_replica": 1,
            "tensor_parallel": 1, "quantization": "bf16", "market": "on_demand", "count": count,
            "usd_per_hour": usd * count}


def write_plan(path: Path, project: str, sha: str, deployments: dict[str, list[list[dict[str, Any]]]]) -> None:
    """deployments: name -> [chosen groups, fallback 1 groups, ...]."""
    deps = []
    for name, opts in deployments.items():
        deps.append({
            "name": name, "model": "llama-3.1-8b", "hf_id": "meta-llama/Llama-3.1-8B-Instruct", "team": "t",
            "max_model_len": 2048, "replicas": opts[0], "fallbacks": opts[1:],
            "predicted": {"ttft_p95_ms": 1, "tpot_p95_ms": 1, "capacity_rps": 1, "usd_per_million_tokens": 1},
            "usd_per_hour": sum(g["usd_per_hour"] for g in opts[0]), "egress_usd_per_month": 0,
        })
    plan = {"project": project, "status": "optimal", "objective": "cost", "solve_seconds": 0.01,
            "deployments": deps, "spec_sha256": sha}
    path.write_text(json.dumps(plan))


RUNNER = (
    "import sys; sys.path.insert(0, {tests!r}); import test_apply_fakeprovider as f; f.register(); "
    "from orchestrator.cli.main import main; sys.argv = ['orch'] + sys.argv[1:]; main()"
)


def run_orch(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in a subprocess that knows the fake provider (so it can really be SIGKILLed)."""
    return subprocess.run([sys.executable, "-c", RUNNER.format(tests=str(TESTS)), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)


def apply_demo(tmp_path: Path, monkeypatch: Any, chat_usd: float = 1.0) -> tuple[Path, Path, Path]:
    """Apply a two-deployment demo project (chat ×2 in zone-a, batch ×1 in zone-b) with the fake provider:
    the common start of the status and destroy tests. Returns (tmp_path, spec, state db)."""
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path / "fake"))
    monkeypatch.setenv("ORCH_STATE_DIR", str(tmp_path / "orch"))
    for var in ("FAKE_NO_CAPACITY", "FAKE_QUOTA", "FAKE_DOWN", "ORCH_STATE_URL"):
        monkeypatch.delenv(var, raising=False)
    spec = tmp_path / "deploy.yaml"
    sha = write_spec(spec, "demo", ["chat", "batch"])
    write_plan(tmp_path / "plan.json", "demo", sha,
               {"chat": [[group("fake:zone-a", 2, usd=chat_usd)]], "batch": [[group("fake:zone-b", 1)]]})
    db = tmp_path / "state.db"
    r = CliRunner().invoke(app, ["apply", str(spec), "--plan", str(tmp_path / "plan.json"), "--yes", "--state", str(db)])
    assert r.exit_code == 0, r.stderr
    return tmp_path, spec, db
