"""A ContainerSpec as a VM startup script (cloud-init user-data / GCP startup-script / Azure custom data).

The script assumes a GPU "Deep Learning" image (NVIDIA driver present or installing at first boot);
it installs Docker (the distribution's package, never a piped install script) and the NVIDIA container toolkit
only when missing, then runs the container with the same argv as ``containers.render.docker``.

Secrets: the script never contains a secret value. Before starting the container it sources an env file
(``/etc/orch/secrets.env``, mode 0600) written at boot from the platform's secret store, by the lines
``fetch_secrets`` gives (see ``secret_fetch_lines``: AWS Secrets Manager, GCP Secret Manager, Azure Key
Vault, each read with the VM's own identity). ``docker run -e HF_TOKEN`` then takes the value from that
environment.
"""

from __future__ import annotations

import shlex
from typing import Literal

from containers.render.docker import files_host_path, pod_argvs
from containers.spec import ContainerSpec

SECRETS_ENV_FILE = "/etc/orch/secrets.env"
Platform = Literal["aws", "gcp", "azure"]


def secret_fetch_lines(spec: ContainerSpec, platform: Platform, *, vault: str | None = None) -> list[str]:
    """Shell lines that read each secret of ``spec`` from the platform's secret store into the env file.

    Only secret *names* appear. aws: Secrets Manager secret named after the SecretRef; gcp: Secret Manager
    secret of that name; azure: Key Vault ``vault`` (required) secret of that name.
    """
    lines: list[str] = []
    refs = {env: ref for c in (spec, *spec.sidecars) for env, ref in c.secret_env.items()}
    for env_name, ref in sorted(refs.items()):
        name = shlex.quote(ref.name)
        if platform == "aws":
            cmd = f"aws secretsmanager get-secret-value --secret-id {name} --query SecretString --output text"
        elif platform == "gcp":
            cmd = f"gcloud secrets versions access latest --secret={name}"
        elif platform == "azure":
            if not vault:
                raise ValueError("azure secrets need the Key Vault name")
            cmd = (
                "az login --identity >/dev/null && "
                f"az keyvault secret show --vault-name {shlex.quote(vault)} --name {name} --query value -o tsv"
            )
        else:
            raise ValueError(f"unknown platform {platform!r}")
        missing = (f'echo "orch: required secret {ref.name} unavailable; not starting without it" >&2; exit 1'
                   if ref.required else f'echo "orch: secret {ref.name} unavailable; {env_name} not set" >&2')
        lines.append(
            f'if v="$({cmd})" && [ -n "$v" ]; then printf "%s=%q\\n" {env_name} "$v" >> "$ORCH_SECRETS"; '
            f'else {missing}; fi; unset v'
        )
    return lines


def startup_script(
    spec: ContainerSpec,
    *,
    fetch_secrets: list[str] | None = None,
    engine: str = "docker",
) -> str:
    """A bash script that prepares the engine and runs ``spec`` (with its sidecars); safe to rerun at every boot."""
    argvs = pod_argvs(spec, engine)
    q = shlex.quote
    out = [
        "#!/bin/bash",
        f"# orch: start {spec.name} ({spec.image}). Generated; holds no secret values.",
        "set -euo pipefail",
        'exec > >(tee -a "${ORCH_LOG:-/var/log/orch-startup.log}") 2>&1',
        "",
        f"if ! command -v {q(engine)} >/dev/null 2>&1; then  # GPU images ship it; else the distribution's package",
        f"  if command -v apt-get >/dev/null 2>&1; then apt-get update -q && apt-get install -y -q "
        f"{'docker.io' if engine == 'docker' else q(engine)};",
        f"  elif command -v dnf >/dev/null 2>&1; then dnf install -y {q(engine)}; else yum install -y {q(engine)}; fi",
        f"  systemctl enable --now {q(engine)} 2>/dev/null || true",
        "fi",
    ]
    if spec.gpus > 0 and spec.gpu_vendor == "nvidia":  # ROCm, TPU and Neuron hosts bring their own drivers
        out += [
            "# Deep Learning images may still be installing the driver at first boot: wait for it.",
            "for i in $(seq 1 60); do nvidia-smi >/dev/null 2>&1 && break; sleep 10; done",
            "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader",
            "if ! command -v nvidia-ctk >/dev/null 2>&1; then",
            "  if command -v apt-get >/dev/null 2>&1; then apt-get update -q && apt-get install -y -q nvidia-container-toolkit;",
            "  else dnf install -y nvidia-container-toolkit || yum install -y nvidia-container-toolkit; fi",
            "fi",
            f"nvidia-ctk runtime configure --runtime={q(engine)} >/dev/null && systemctl restart {q(engine)} || true",
        ]
    out += [
        "",
        f'ORCH_SECRETS="${{ORCH_SECRETS:-{SECRETS_ENV_FILE}}}"',
        'install -d -m 0700 "$(dirname "$ORCH_SECRETS")"',
    ]
    if fetch_secrets:
        out += ['( umask 077; : > "$ORCH_SECRETS" )', *fetch_secrets]
    out += ['if [ -f "$ORCH_SECRETS" ]; then set -a; . "$ORCH_SECRETS"; set +a; fi', ""]
    for c in (spec, *spec.sidecars):  # configuration files (never secrets), mounted read-only
        for mount, content in sorted(c.files.items()):
            host = files_host_path(c, mount)
            delim = "ORCH_EOF"
            while delim in content:
                delim += "_"
            out += [f"install -d -m 0755 {q(host.rsplit('/', 1)[0])}", f"cat > {q(host)} <<'{delim}'",
                    content.rstrip("\n"), delim]
    pods = (spec, *spec.sidecars)
    for c in pods:
        out.append(f"for i in 1 2 3 4 5; do {q(engine)} pull {q(c.image)} && break; sleep $((i * 15)); done")
    for c in reversed(pods):
        out.append(f"{q(engine)} rm -f {q(c.name)} >/dev/null 2>&1 || true")
    out += [shlex.join(a) for a in argvs]
    out.append("")
    return "\n".join(out)
