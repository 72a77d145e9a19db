"""Bare-metal provider: the GPU hosts of an on-prem site, reached over SSH (paramiko), running vLLM with
docker or podman.

- Inventory per host: ``nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader`` when it runs,
  else the inventory declared in the deployment file (``gpus_per_host``).
- GPUs in use: the ``orch-gpu-devices`` label of orch's containers on the host (``docker ps`` + ``docker inspect``).
- Host keys are checked (system known_hosts, plus ``known_hosts`` if given): an unknown host is refused.
- Secrets: ``docker run -e HF_TOKEN`` takes the value from the remote shell's environment, which reads it
  from the SSH channel's stdin (``IFS= read -r HF_TOKEN``): it never appears in a command line or a log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

from pydantic import Field

from containers.render.docker import POD_LABEL, HostOptions, files_host_path, pod_argvs
from containers.spec import ContainerSpec
from orchestrator.errors import AuthError, CapacityError, NotFoundError, ProviderError, TransientError, UserError
from providers.base import Handle, Placement
from providers.registry import ProviderSettings, create as build, register
from providers.retry import with_retries

log = logging.getLogger(__name__)

LABEL_DEVICES = "orch-gpu-devices"  # "0-1-2": GPU indices the container holds (no commas: docker ps prints labels CSV)
LABEL_HOST_PORT = "orch-host-port"
NVIDIA_SMI = "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader"


@dataclass(frozen=True)
class HostSpec:
    user: str | None
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        m = re.fullmatch(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?", text.strip())
        if not m:
            raise UserError(f"baremetal host {text!r}: expected user@host[:port]")
        return cls(m.group(1), m.group(2).strip("[]"), int(m.group(3) or 22))

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class GpuSlot:
    index: int
    name: str | None  # canonical GPU name, None when unknown
    memory_mib: int | None = None


def canonical_from_smi(name: str) -> str | None:
    """'NVIDIA H100 80GB HBM3' -> 'H100'; tries ever shorter dash-joined prefixes against the GPU table's aliases."""
    from orchestrator.catalog.gpus import canonical_gpu_name

    words = name.replace("NVIDIA", "").split()
    for n in range(len(words), 0, -1):
        hit = canonical_gpu_name("-".join(words[:n]))
        if hit:
            return hit
    return None


def parse_nvidia_smi(text: str) -> list[GpuSlot]:
    slots = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        mem = re.match(r"(\d+)", parts[2]) if len(parts) > 2 else None
        slots.append(GpuSlot(int(parts[0]), canonical_from_smi(parts[1]), int(mem.group(1)) if mem else None))
    return slots


class BaremetalSettings(ProviderSettings):
    """A site's GPU hosts over SSH."""

    hosts: list[str] = Field(min_length=1, description="ssh targets, user@host[:port] (onprem.sites[].hosts)")
    engine: Literal["docker", "podman"] = "docker"
    key_filename: str | None = None
    gpus_per_host: dict[str, Any] = Field(default_factory=dict, description='{"user@host:port" or "host": count or '
                                          '{GPU type: count}}, used when nvidia-smi is not available on a host')
    known_hosts: str | None = None
    region: str = "onprem:baremetal"
    base_port: int = 8000


@register
class BaremetalProvider:
    name = kind = "baremetal"
    Settings = BaremetalSettings

    def __init__(self, settings: BaremetalSettings, *, connect_timeout_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.hosts = [HostSpec.parse(h) for h in settings.hosts]
        self.engine = settings.engine
        self.key_filename = settings.key_filename
        self.gpus_per_host = dict(settings.gpus_per_host)
        self.known_hosts = settings.known_hosts
        self.region = settings.region
        self.base_port = settings.base_port
        self.connect_timeout_s = connect_timeout_s
        self._sleep = sleep
        self._clients: dict[HostSpec, Any] = {}

    # -- SSH -------------------------------------------------------------------------------------------
    def _client(self, host: HostSpec) -> Any:
        import paramiko

        cached = self._clients.get(host)
        if cached is not None and cached.get_transport() is not None and cached.get_transport().is_active():
            return cached

        def connect() -> Any:
            client = paramiko.SSHClient()
            client.load_system_host_keys()
            if self.known_hosts:
                client.load_host_keys(self.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(
                    host.host,
                    port=host.port,
                    username=host.user,
                    key_filename=self.key_filename,
                    timeout=self.connect_timeout_s,
                    banner_timeout=self.connect_timeout_s,
                    auth_timeout=self.connect_timeout_s,
                    look_for_keys=self.key_filename is None,
                    allow_agent=self.key_filename is None,
                )
            except paramiko.AuthenticationException as exc:
                raise AuthError(f"baremetal {host}: SSH authentication failed ({exc}); check the user and key") from None
            except paramiko.BadHostKeyException as exc:
                raise AuthError(f"baremetal {host}: host key mismatch ({exc}); refusing to connect") from None
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):
                    raise AuthError(
                        f"baremetal {host}: unknown host key; add it to ~/.ssh/known_hosts (ssh-keyscan -p {host.port} {host.host})"
                    ) from None
                raise TransientError(f"baremetal {host}: SSH error: {exc}") from None
            except (OSError, socket.timeout) as exc:
                raise TransientError(f"baremetal {host}: cannot connect: {exc}") from None
            return client

        client = with_retries(connect, attempts=3, sleep=self._sleep)
        self._clients[host] = client
        return client

    def _run(self, host: HostSpec, command: str, stdin: str | None = None) -> tuple[int, str, str]:
        client = self._client(host)
        try:
            chan_in, out, err = client.exec_command(command, timeout=120)
            try:
                if stdin is not None:
                    chan_in.write(stdin)
                    chan_in.flush()
                    chan_in.channel.shutdown_write()
                stdout = out.read().decode(errors="replace")
                stderr = err.read().decode(errors="replace")
                return out.channel.recv_exit_status(), stdout, stderr
            finally:
                # close the session now: sshd allows 10 per connection (MaxSessions), and a channel left to the
                # garbage collector may still count when the next command opens one
                out.channel.close()
        except (OSError, EOFError) as exc:
            self._clients.pop(host, None)
            raise TransientError(f"baremetal {host}: command failed in transit: {exc}") from None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # -- inventory -------------------------------------------------------------------------------------
    def _declared(self, host: HostSpec) -> list[GpuSlot]:
        decl = self.gpus_per_host.get(str(host), self.gpus_per_host.get(host.host))
        if decl is None:
            return []
        if isinstance(decl, int):
            return [GpuSlot(i, None) for i in range(decl)]
        slots: list[GpuSlot] = []
        for gpu, count in dict(decl).items():
            from orchestrator.catalog.gpus import canonical_gpu_name

            slots += [GpuSlot(len(slots) + i, canonical_gpu_name(gpu) or gpu) for i in range(int(count))]
        return slots

    def inventory(self, host: HostSpec) -> list[GpuSlot]:
        rc, out, _ = self._run(host, NVIDIA_SMI)
        slots = parse_nvidia_smi(out) if rc == 0 else []
        return slots or self._declared(host)

    def _containers(self, host: HostSpec, filters: dict[str, str | None]) -> list[dict[str, Any]]:
        """``docker inspect`` records of the containers matching label filters (value None: key present)."""
        flt = " ".join(f"--filter {shlex.quote('label=' + (k if v is None else f'{k}={v}'))}" for k, v in sorted(filters.items()))
        e = shlex.quote(self.engine)
        # one round trip: list matching ids, then inspect them (or print an empty list)
        rc, out, err = self._run(host, f'ids=$({e} ps -a -q {flt}) || exit $?; if [ -n "$ids" ]; then {e} inspect $ids; else echo "[]"; fi')
        if rc != 0:
            raise ProviderError(f"baremetal {host}: {self.engine} ps/inspect failed: {err.strip()[:300]}")
        return json.loads(out or "[]")

    # -- protocol --------------------------------------------------------------------------------------
    def _run_command(self, container: ContainerSpec, placement: Placement, devices: list[int], port: int) -> tuple[str, str]:
        """The shell command that (re)starts the pod on its host, and what goes on its stdin: the secret values,
        read into the environment there (``docker run -e NAME`` passes them on), never in the command."""
        gateway = container.role == "gateway"  # its ports are the endpoint's: published as they are
        extra = {**placement.labels(), LABEL_DEVICES: "-".join(map(str, devices)) or "none",
                 LABEL_HOST_PORT: str(next(iter(container.all_ports().values())) if gateway else port)}
        files_dir = f"/var/tmp/orch/{container.name}"  # the ssh user may not write /etc; /var/tmp outlives reboots
        host = HostOptions(gpu_devices=devices if container.gpus else None, host_port=None if gateway else port,
                           files_dir=files_dir)
        argvs = pod_argvs(container, self.engine, host, extra_labels=extra)
        pod = (container, *container.sidecars)
        secrets = sorted({v for c in pod for v in c.secret_env if v in os.environ})
        prefix = "".join(f"IFS= read -r {v} && export {v} && " for v in secrets)
        names = " ".join(shlex.quote(c.name) for c in reversed(pod))
        cleanup = f"{self.engine} rm -f {names} >/dev/null 2>&1; "
        files = "".join(_write_file(files_host_path(c, mount, files_dir), content)
                        for c in pod for mount, content in sorted(c.files.items()))
        stdin = "".join(os.environ[v] + "\n" for v in secrets)
        return cleanup + files + prefix + " && ".join(shlex.join(a) for a in argvs), stdin

    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        devices = list(range(container.gpus))
        command, _ = self._run_command(container, placement, devices, self.base_port)
        return [
            {"call": "ssh", "hosts": [str(h) for h in self.hosts], "command": NVIDIA_SMI},
            {"call": "ssh", "host": "<first host with free GPUs>", "command": command, "note": "GPU indices and port chosen at launch"},
        ]

    def _handle(self, host: HostSpec, rec: dict[str, Any]) -> Handle:
        labels = dict((rec.get("Config") or {}).get("Labels") or {})
        state_raw = (rec.get("State") or {}).get("Status", "unknown")
        port = labels.get(LABEL_HOST_PORT)
        endpoint = f"http://{host.host}:{port}" if port else None
        started = (rec.get("State") or {}).get("StartedAt")
        launched_at = None
        if isinstance(started, str) and not started.startswith("0001"):
            try:
                launched_at = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started).replace("Z", "+00:00"))
            except ValueError:
                pass
        state = {"running": "pending", "created": "pending", "restarting": "pending", "exited": "stopped", "paused": "stopped", "dead": "terminated"}.get(state_raw, "unknown")
        health = ((rec.get("State") or {}).get("Health") or {}).get("Status")
        if state_raw == "running" and (health == "healthy" or (endpoint and self._healthy(endpoint))):
            state = "running"
        name = (rec.get("Name") or "").lstrip("/")
        return Handle(
            provider=self.name,
            id=f"{host}/{name}",
            region=self.region,
            state=state,  # type: ignore[arg-type]
            labels=labels,
            endpoint=endpoint,
            launched_at=launched_at,
            details={"host": str(host), "container_state": state_raw, "gpu_devices": labels.get(LABEL_DEVICES, "")},
        )

    @staticmethod
    def _healthy(endpoint: str) -> bool:
        import httpx

        try:
            return httpx.get(f"{endpoint}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        unreachable: list[str] = []
        want_gpu = container.gpu_type
        for host in self.hosts:
            try:
                mine = self._containers(host, {"orch-replica": None})
            except TransientError as exc:
                unreachable.append(f"{host} ({exc})")
                continue
            for rec in mine:  # an earlier run already started this replica here: adopt it
                if (rec.get("Name") or "").lstrip("/") == container.name and (rec.get("State") or {}).get("Status") == "running":
                    return self._handle(host, rec)
            used: set[int] = set()
            ports: set[int] = set()
            for rec in mine:
                if (rec.get("Name") or "").lstrip("/") == container.name:
                    continue  # a dead copy of this replica: replaced below
                labels = (rec.get("Config") or {}).get("Labels") or {}
                used |= {int(d) for d in labels.get(LABEL_DEVICES, "").split("-") if d.isdigit()}
                if labels.get(LABEL_HOST_PORT, "").isdigit():
                    ports.add(int(labels[LABEL_HOST_PORT]))
            slots = self.inventory(host) if container.gpus else []
            free = [s.index for s in slots if s.index not in used and (want_gpu is None or s.name in (None, want_gpu))]
            if len(free) < container.gpus:
                continue
            devices = free[: container.gpus]
            port = next(p for p in range(self.base_port, self.base_port + 1000) if p not in ports)
            command, stdin = self._run_command(container, placement, devices, port)
            rc, _, err = self._run(host, command, stdin=stdin or None)
            if rc != 0:
                raise ProviderError(f"baremetal {host}: {self.engine} run failed: {err.strip()[:500]}")
            return self.describe(f"{host}/{container.name}")
        detail = f"; unreachable: {', '.join(unreachable)}" if unreachable else ""
        raise CapacityError(f"baremetal: no host has {container.gpus} free {want_gpu or 'GPU'}(s){detail}")

    def _split(self, handle_id: str) -> tuple[HostSpec, str]:
        host_text, _, name = handle_id.partition("/")
        if not name:
            raise NotFoundError(f"baremetal: malformed handle id {handle_id!r} (want user@host:port/container)")
        return HostSpec.parse(host_text), name

    def describe(self, handle_id: str, region: str | None = None) -> Handle:
        host, name = self._split(handle_id)
        rc, out, err = self._run(host, f"{self.engine} inspect {shlex.quote(name)}")
        if rc != 0:
            if "no such" in (err + out).lower():
                raise NotFoundError(f"baremetal {host}: no container {name}")
            raise ProviderError(f"baremetal {host}: {self.engine} inspect failed: {err.strip()[:300]}")
        return self._handle(host, json.loads(out)[0])

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        out: list[Handle] = []
        for host in self.hosts:
            try:
                recs = self._containers(host, dict(labels))
            except TransientError as exc:
                log.warning("baremetal: skipping unreachable host %s: %s", host, exc)
                continue
            out += [self._handle(host, r) for r in recs]
        return out

    def terminate(self, handle: Handle) -> None:
        host, name = self._split(handle.id)
        e = shlex.quote(self.engine)
        sidecars = f"{e} ps -a -q --filter {shlex.quote(f'label={POD_LABEL}={name}')}"
        rc, out, err = self._run(host, f"ids=$({sidecars}); [ -z \"$ids\" ] || {e} rm -f $ids >/dev/null; "
                                       f"{e} rm -f {shlex.quote(name)}")
        if rc != 0 and "no such" not in (err + out).lower():
            raise ProviderError(f"baremetal {host}: {self.engine} rm failed: {err.strip()[:300]}")


def _write_file(path: str, content: str) -> str:
    """Shell text that writes a (non-secret) file the pod mounts."""
    delim = "ORCH_EOF"
    while delim in content:
        delim += "_"
    q = shlex.quote
    return f"mkdir -p {q(path.rsplit('/', 1)[0])} && cat > {q(path)} <<'{delim}'\n{content.rstrip(chr(10))}\n{delim}\n"



create = partial(build, "baremetal")  # settings (BaremetalSettings) and wiring (connect_timeout_s, sleep)
