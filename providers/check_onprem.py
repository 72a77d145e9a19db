"""`orch check` for the providers without quotas: on-prem sites (bare metal: each host's SSH port answers with an
SSH banner; Kubernetes: a kubeconfig is found and the API server answers /version) and this machine (the python
that runs vLLM exists and has vLLM). Short timeouts: a check must not hang on a host that is down."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import Any

from providers.check_common import CheckResult, Probe, one_line

TIMEOUT_S = 3.0


def ssh_banner(host: str, port: int, timeout_s: float = TIMEOUT_S) -> str:
    """The SSH server's identification line (RFC 4253 4.2), read without authenticating."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        data = b""
        while b"\n" not in data and len(data) < 1024:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    line = next((ln for ln in data.decode("ascii", "replace").splitlines() if ln.startswith("SSH-")), None)
    if line is None:
        raise ConnectionError(f"port {port} answers, but not with an SSH banner")
    return line.strip()


def check_baremetal(site: Any, timeout_s: float = TIMEOUT_S) -> CheckResult:
    from providers.baremetal import HostSpec

    result = CheckResult(f"onprem:{site.name}", "ssh keys and agent of this user (not read here)", True,
                         account="baremetal")
    if not site.hosts:
        result.problems.append(f"site {site.name}: no hosts declared (providers.onprem.sites[].hosts)")
        result.blocking = True
        return result
    for text in site.hosts:
        try:
            h = HostSpec.parse(text)
            banner = ssh_banner(h.host, h.port, timeout_s)
            result.probes.append(Probe(f"ssh {h}", "ok", banner))
        except Exception as exc:  # noqa: BLE001 - refused, timed out, unresolvable, not SSH
            result.probes.append(Probe(f"ssh {text}", "error", one_line(exc) or type(exc).__name__))
    return result


def check_kubernetes(site: Any, *, kubeconfig: str | None = None, timeout_s: float = TIMEOUT_S) -> CheckResult:
    from kubernetes import client, config

    name = f"onprem:{site.name}"
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=site.kube_context)
    except (config.ConfigException, OSError, TypeError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return CheckResult(name, f"no usable kubeconfig at {where}" + (f" (context {site.kube_context})"
                           if site.kube_context else "") + f": {one_line(exc)}", False)
    host = api.configuration.host
    result = CheckResult(name, f"kubeconfig found (context {site.kube_context or 'current'})", True, account=host)
    try:
        v = client.VersionApi(api).get_code(_request_timeout=timeout_s)
        result.probes.append(Probe("API server", "ok", f"{host}: Kubernetes {v.git_version}"))
    except Exception as exc:  # noqa: BLE001 - unreachable, TLS, 401/403
        status = getattr(exc, "status", None)
        result.probes.append(Probe("API server", "denied" if status in (401, 403) else "error",
                                   f"{host}: {one_line(exc)}"))
    finally:
        api.close()
    return result


def check_local(local: Any = None, timeout_s: float = 10.0) -> CheckResult:
    """This machine: no credentials; the python that runs vLLM (providers.local.python, $ORCH_VLLM_PYTHON,
    python3) must exist and find the vllm package (found, not imported: importing vLLM takes seconds)."""
    python = (getattr(local, "python", None) if local is not None else None) or os.environ.get("ORCH_VLLM_PYTHON") \
        or "python3"
    result = CheckResult("local", "none needed", True, account=python)
    exe = python if os.path.sep in python else shutil.which(python)
    if not exe or not os.path.exists(exe):
        result.probes.append(Probe("vLLM", "error", f"{python} not found (set providers.local.python or "
                                   "ORCH_VLLM_PYTHON)"))
        return result
    code = "import importlib.util, sys; s = importlib.util.find_spec('vllm'); print(s.origin if s else '')"
    try:
        out = subprocess.run([exe, "-c", code], check=False, capture_output=True, text=True, timeout=timeout_s)
        where = out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        where = ""
        result.problems.append(one_line(exc))
    if where:
        result.probes.append(Probe("vLLM", "ok", f"{exe}: vllm at {os.path.dirname(where)}"))
    else:
        result.probes.append(Probe("vLLM", "error", f"{exe} has no vllm package (scripts/setup-vllm-cpu.sh makes one)"))
    return result
