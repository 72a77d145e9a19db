"""Local provider: vLLM (and a deployment's gateway) as processes on this machine (CPU backend, or local GPUs).

Each container is a detached process group (``start_new_session``) logging to ``<state_dir>/<name>.log``; a
pod's sidecars are groups of their own, started after it and stopped with it. ``<state_dir>/<name>.json``
describes the pod (pids, process start times, port, labels, argv, started_at; never a secret).

Secrets: the local platform's secret store is orch's own environment, then ``LocalSecrets``' files (mode 0600,
beside the state, never in it). An optional secret (an HF token) that is in neither is simply not set; a
required one (the endpoint's API key) is generated there once, so every replica and gateway shares it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field

from containers.render.local import MissingProgram, command_process, local_process
from containers.spec import ContainerSpec
from orchestrator.catalog.types import Offering
from orchestrator.errors import NotFoundError, ProviderError, UserError
from providers.abilities import WithGatewayPreflight, WithOfferingsRefresh, WithSecretStore
from providers.base import Handle, Placement
from providers.registry import ProviderSettings, create as build, register
from providers.secrets import LocalSecrets

REGION = "local:this-machine"
TERMINATE_GRACE_S = 15.0


def _default_state_dir() -> Path:
    env = os.environ.get("ORCH_STATE_DIR")
    return Path(env) / "local" if env else Path.home() / ".local" / "state" / "orch" / "local"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): tells a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: exited, not yet reaped
        return None
    return fields[19]


def _alive(pid: int, start_time: str | None) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    except ChildProcessError:
        pass
    if not Path("/proc").is_dir():  # no procfs: signal 0 is the best we have
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    now = _start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in process group ``pgid`` (vLLM's engine/worker children)."""
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _group_listens(pgid: int, port: int) -> bool:
    """Whether a process of group ``pgid`` holds the listening socket on ``port``: the /health that answers is
    ours, not another server's that took the port while vLLM was still loading. True when /proc is unavailable."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f[9])
    if not inodes:
        return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if text[text.rindex(")") + 2 :].split()[2] != str(pgid):
                continue
            for fd in (stat.parent / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
        except OSError:
            continue
    return False


def _procs(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's processes, main first (records from before sidecars have only the main one)."""
    main = {"name": rec["name"], "pid": rec["pid"], "start_time": rec.get("start_time"), "log": rec.get("log", "")}
    return [main, *rec.get("sidecars", [])]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalSettings(ProviderSettings):
    """This machine (providers.local in the deployment file)."""

    python: str = Field(default_factory=lambda: os.environ.get("ORCH_VLLM_PYTHON") or "python3")  # with vLLM
    state_dir: Path = Field(default_factory=_default_state_dir)  # $ORCH_STATE_DIR/local, else ~/.local/state/orch/local
    host: str = "127.0.0.1"


@register
class LocalProvider(WithOfferingsRefresh, WithGatewayPreflight, WithSecretStore):
    name = kind = "local"
    Settings = LocalSettings

    def __init__(self, settings: LocalSettings | None = None, *, grace_s: float = TERMINATE_GRACE_S,
                 secrets: LocalSecrets | None = None) -> None:
        s = settings or LocalSettings()
        self.python, self.state_dir, self.host = s.python, s.state_dir, s.host
        self.grace_s = grace_s
        self.secrets = secrets or LocalSecrets(s.state_dir.parent / "secrets")

    # -- records ----------------------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._record_path(name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _records(self) -> list[dict[str, Any]]:
        if not self.state_dir.is_dir():
            return []
        out = []
        for path in sorted(self.state_dir.glob("*.json")):
            rec = self._read(path.stem)
            if rec:
                out.append(rec)
        return out

    def _handle(self, rec: dict[str, Any], state: str) -> Handle:
        return Handle(
            provider=self.name,
            id=rec["name"],
            region=REGION,
            state=state,  # type: ignore[arg-type]
            labels=dict(rec.get("labels", {})),
            endpoint=f"http://{rec['host']}:{rec['port']}",
            launched_at=datetime.fromisoformat(rec["started_at"]),
            details={"pid": rec["pid"], "log": rec["log"]},
        )

    # -- protocol ---------------------------------------------------------------------------------------
    def offerings(self, regions: list[str] | None = None) -> list[Offering]:
        today = datetime.now(timezone.utc).date().isoformat()
        cpus = os.cpu_count() or 1
        mem_gb = 0.0
        try:
            mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
        except (ValueError, OSError):
            pass
        return [
            Offering(
                provider="local",
                region=REGION,
                instance_type="this-machine",
                gpu="CPU",
                gpu_count=1,
                vcpus=cpus,
                memory_gb=round(mem_gb, 1),
                usd_per_hour=0.0,
                spot_usd_per_hour=None,
                source="this machine (os.cpu_count, sysconf); already paid for, priced at 0",
                as_of=today,
            )
        ]

    def _argv(self, container: ContainerSpec, port: int) -> tuple[list[str], dict[str, str]]:
        if container.command:
            return command_process(container, self.python, self.state_dir / f"{container.name}.files")
        return local_process(container, self.python, host=self.host, port=port)

    def _processes(self, container: ContainerSpec, port: int) -> list[tuple[ContainerSpec, list[str], dict[str, str]]]:
        """The pod's processes, main first: (container, argv, env without secrets)."""
        try:
            return [(c, *self._argv(c, port)) for c in (container, *container.sidecars)]
        except MissingProgram as exc:
            hint = " (pip install 'orch[serve]' installs vllm-router and caddy)" if container.role == "gateway" else ""
            raise ProviderError(f"local: cannot start {container.name}: {exc}{hint}") from None

    @staticmethod
    def _port(container: ContainerSpec) -> int:
        return next(iter(container.all_ports().values()), 8000)

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        port = self._port(container)
        calls = []
        for c in (container, *container.sidecars):
            argv, env = (c.command + c.args, dict(c.env)) if c.command else self._argv(c, port)
            calls.append({"call": "spawn", "argv": argv, "env": env, "secret_env": sorted(c.secret_env),
                          "files": sorted(c.files), "state_dir": str(self.state_dir)})
        return calls

    def check_ports(self, container: ContainerSpec) -> int:
        """The port the pod answers on. A replica moves to a free port when its own is taken; a gateway's ports
        are the endpoint users were given, so a taken one is an error that names it."""
        port = self._port(container)
        if container.role != "gateway":
            return port if _port_free(self.host, port) else _free_port(self.host)
        from containers.gateway import control_port, router_metrics_port, router_port

        for what, p in (("endpoint", port), ("control", control_port(port)), ("router", router_port(port)),
                        ("router metrics", router_metrics_port(port))):
            if not _port_free(self.host if what != "router" else "127.0.0.1", p):
                raise UserError(f"local: the gateway's {what} port {p} on {self.host} is already taken by another "
                                f"program; choose another gateway.port for deployment "
                                f"{container.labels.get('orch-deployment', '?')} (a gateway uses its port and the "
                                "three after it)")
        return port

    def _env(self, container: ContainerSpec) -> dict[str, str]:
        """The process environment: orch's, plus the container's secrets from the local secret store."""
        env = dict(os.environ)
        for var, ref in container.secret_env.items():
            env.pop(var, None)
            value = self.secrets.get(ref, var)
            if value:
                env[var] = value
        return env

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        name = container.name
        existing = self._read(name)
        if existing and _alive(existing["pid"], existing.get("start_time")):
            return self._handle(existing, "pending")  # already launched by an earlier run: adopt it
        if existing:  # it died (kill -9 of its server): what its process groups left (vLLM's engine) goes first
            self.terminate(self._handle(existing, "terminated"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = self.check_ports(container)
        procs = []
        for c, argv, env in self._processes(container, port):
            log_path = self.state_dir / f"{c.name}.log"
            full_env = {**self._env(c), **env}
            try:
                with open(log_path, "ab") as log:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=full_env, start_new_session=True, close_fds=True)
            except OSError as exc:
                for p in procs:  # nothing half-started stays behind
                    self._stop_group(p["pid"], p.get("start_time"))
                raise ProviderError(f"local: cannot start {argv[0]}: {exc}; set ORCH_VLLM_PYTHON to a python with vLLM") from None
            procs.append({"name": c.name, "pid": proc.pid, "start_time": _start_time(proc.pid), "argv": argv,
                          "env": env, "log": str(log_path)})
        main = procs[0]
        rec = {
            "name": name,
            "pid": main["pid"],
            "start_time": main["start_time"],
            "host": self.host,
            "port": port,
            "role": container.role,
            "labels": {**container.labels, **placement.labels()},
            "argv": main["argv"],
            "env": main["env"],
            "log": main["log"],
            "sidecars": procs[1:],
            "started_at": datetime.now(timezone.utc).isoformat(),
        }
        tmp = self._record_path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=2))
        tmp.replace(self._record_path(name))
        return self._handle(rec, "pending")

    def describe(self, handle_id: str, region: str = REGION) -> Handle:
        rec = self._read(handle_id)
        if rec is None:
            raise NotFoundError(f"local: no replica {handle_id!r} in {self.state_dir}")
        dead = [p for p in _procs(rec) if not _alive(p["pid"], p.get("start_time"))]
        if dead:  # a pod lives and dies whole: one exited process is the pod exited (its log says why)
            handle = self._handle(rec, "terminated")
            handle.details["log_tail"] = self._log_tail(dead[0])
            return handle
        import httpx

        try:
            ok = httpx.get(f"http://{rec['host']}:{rec['port']}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        ok = ok and _group_listens(rec["pid"], rec["port"])
        return self._handle(rec, "running" if ok else "pending")

    @staticmethod
    def _log_tail(rec: dict[str, Any], lines: int = 20) -> str:
        try:
            return "\n".join(Path(rec["log"]).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        out = []
        for rec in self._records():
            have = rec.get("labels", {})
            if all(have.get(k) == v for k, v in labels.items()) and _alive(rec["pid"], rec.get("start_time")):
                alive = all(_alive(p["pid"], p.get("start_time")) for p in _procs(rec))
                out.append(self._handle(rec, "running" if alive else "terminated"))
        return out

    def terminate(self, handle: Handle) -> None:
        rec = self._read(handle.id)
        if rec is None:
            return
        for p in reversed(_procs(rec)):  # sidecars first: the gateway's edge stops taking requests before the router
            self._stop_group(p["pid"], p.get("start_time"))
        self._record_path(handle.id).unlink(missing_ok=True)

    def _stop_group(self, pid: int, start: str | None) -> None:
        """SIGTERM the process group led by ``pid``, SIGKILL after the grace period; wait until it is gone.
        Only signals while the leader is ours (its start time matches), then waits for the whole group: vLLM's
        engine and workers exit after the API server."""
        if _alive(pid, start):
            self._signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.2)
            if _group_alive(pid):
                self._signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _group_alive(pid):
                    time.sleep(0.1)
            try:
                os.waitpid(pid, os.WNOHANG)  # reap our own child so its pid is really gone
            except ChildProcessError:
                pass
        elif not _group_alive(pid):
            return
        else:  # the leader exited but some of its group lives on (an orphaned engine core): stop it too
            self._signal_group(pid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the process leads its own session/group: this reaches vLLM's workers too
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise ProviderError(f"local: cannot signal process group {pid}: {exc}") from None



create = partial(build, "local")  # settings (LocalSettings) and wiring (grace_s, secrets)
