"""A ContainerSpec as a `docker run` (or `podman run`) argv.

Secret env vars are passed as ``-e NAME`` without a value: the engine copies them from the caller's
environment, so the value is never part of the argv, a shell history or a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from containers.spec import ContainerSpec

Engine = Literal["docker", "podman"]


def _gpu_flags(spec: ContainerSpec, engine: str, gpu_devices: Sequence[int] | None) -> list[str]:
    if spec.gpus <= 0:
        return []
    if engine == "podman":  # CDI device names from the NVIDIA container toolkit
        devices = [str(d) for d in gpu_devices] if gpu_devices is not None else ["all"]
        return [f"--device=nvidia.com/gpu={d}" for d in devices]
    if gpu_devices is not None:
        # Docker parses the value as CSV, so a list of devices must be quoted inside the value.
        return ["--gpus", '"device=' + ",".join(str(d) for d in gpu_devices) + '"']
    return ["--gpus", "all"]


def docker_run_argv(
    spec: ContainerSpec,
    engine: Engine | str = "docker",
    *,
    gpu_devices: Sequence[int] | None = None,
    host_port: int | None = None,
    host_cache_dir: str | None = None,
    extra_labels: dict[str, str] | None = None,
    restart: str | None = "unless-stopped",
) -> list[str]:
    """``[engine, "run", "-d", ...]`` for ``spec``.

    gpu_devices: GPU indices for this container (default: all GPUs when the spec wants any).
    host_port: host port mapped to the container's first port (default: the same number).
    host_cache_dir: host directory for "cache" volumes (default: a named volume per volume).
    """
    argv = [engine, "run", "-d", "--name", spec.name]
    if restart:
        argv += ["--restart", restart]
    argv += _gpu_flags(spec, engine, gpu_devices)
    if spec.shm_gb:
        argv += [f"--shm-size={int(spec.shm_gb)}g"]
    for i, port in enumerate(spec.ports.values()):
        hp = host_port if (i == 0 and host_port is not None) else port
        argv += ["-p", f"{hp}:{port}"]
    for key, value in sorted(spec.env.items()):
        argv += ["-e", f"{key}={value}"]
    for key in sorted(spec.secret_env):
        argv += ["-e", key]  # value from the caller's environment, never inline
    for vol in spec.volumes:
        if vol.kind == "memory":
            size = f",size={int(vol.size_gb)}g" if vol.size_gb else ""
            argv += ["--mount", f"type=tmpfs,destination={vol.mount_path}{size}"]
        elif vol.kind == "host_path" and vol.host_path:
            argv += ["-v", f"{vol.host_path}:{vol.mount_path}"]
        else:
            source = host_cache_dir or f"orch-{vol.name}"
            argv += ["-v", f"{source}:{vol.mount_path}"]
    labels = {**spec.labels, **(extra_labels or {})}
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    if spec.command:
        argv += ["--entrypoint", spec.command[0]]
    argv.append(spec.image)
    argv += spec.command[1:]
    argv += spec.args
    return argv
