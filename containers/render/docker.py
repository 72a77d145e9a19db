"""A ContainerSpec as a `docker run` (or `podman run`) argv.

Secret env vars are passed as ``-e NAME`` without a value: the engine copies them from the caller's
environment, so the value is never part of the argv, a shell history or a log.

A pod (a spec with sidecars) is one ``docker run`` per container: the sidecars join the main container's network
namespace (``--network container:<main>``), so they reach each other on 127.0.0.1, and every port of the pod is
published on the main container. A spec's ``files`` are bind-mounted read-only from ``files_dir`` on the host
(the VM script writes them there). ``pip_install`` runs before the command in the container.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from containers.spec import ContainerSpec

Engine = Literal["docker", "podman"]


def _gpu_flags(spec: ContainerSpec, engine: str, gpu_devices: Sequence[int] | None) -> list[str]:
    if spec.gpus <= 0:
        return []
    if spec.gpu_vendor == "google":  # TPU: vLLM's TPU guide runs its image with --privileged --net host
        return ["--privileged", "--net=host"]
    if spec.gpu_vendor == "aws":  # Neuron: one /dev/neuronN per chip (the Neuron DLC quickstart's --device flags)
        devices = list(gpu_devices) if gpu_devices is not None else list(range(spec.gpus))
        return [f"--device=/dev/neuron{d}" for d in devices] + ["--cap-add=SYS_ADMIN", "--cap-add=IPC_LOCK"]
    if spec.gpu_vendor == "amd":  # ROCm: the kernel driver's devices, as vLLM's ROCm guide runs its image
        flags = ["--device=/dev/kfd", "--device=/dev/dri", "--group-add=video", "--ipc=host",
                 "--security-opt=seccomp=unconfined"]
        if gpu_devices is not None:
            flags += ["-e", "HIP_VISIBLE_DEVICES=" + ",".join(str(d) for d in gpu_devices)]
        return flags
    if engine == "podman":  # CDI device names from the NVIDIA container toolkit
        devices = [str(d) for d in gpu_devices] if gpu_devices is not None else ["all"]
        return [f"--device=nvidia.com/gpu={d}" for d in devices]
    if gpu_devices is not None:
        # Docker parses the value as CSV, so a list of devices must be quoted inside the value.
        return ["--gpus", '"device=' + ",".join(str(d) for d in gpu_devices) + '"']
    return ["--gpus", "all"]


@dataclass(frozen=True)
class HostOptions:
    """Where a pod runs on its host: its GPUs, its port, where its cache and files lie.

    gpu_devices: GPU indices for the main container (default: all GPUs when the spec wants any).
    host_port: host port mapped to the main container's first port (default: the same number).
    host_cache_dir: host directory for "cache" volumes (default: a named volume per volume).
    files_dir: host directory holding ``spec.files`` by base name (default /etc/orch/files/<name>).
    """

    gpu_devices: Sequence[int] | None = None
    host_port: int | None = None
    host_cache_dir: str | None = None
    files_dir: str | None = None


def docker_run_argv(
    spec: ContainerSpec,
    engine: Engine | str = "docker",
    host: HostOptions = HostOptions(),
    *,
    extra_labels: dict[str, str] | None = None,
    restart: str | None = "unless-stopped",
    network: str | None = None,
) -> list[str]:
    """``[engine, "run", "-d", ...]`` for ``spec`` (its sidecars: ``pod_argvs``), placed on its host by ``host``.

    network: ``container:<name>`` for a sidecar (then no port is published here).
    """
    argv = [engine, "run", "-d", "--name", spec.name]
    if restart:
        argv += ["--restart", restart]
    if network:
        argv += ["--network", network]
    argv += _gpu_flags(spec, engine, host.gpu_devices)
    if spec.shm_gb:
        argv += [f"--shm-size={int(spec.shm_gb)}g"]
    for i, port in enumerate([] if network else spec.all_ports().values()):
        hp = host.host_port if (i == 0 and host.host_port is not None) else port
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
            source = host.host_cache_dir or f"orch-{vol.name}"
            argv += ["-v", f"{source}:{vol.mount_path}"]
    for mount in sorted(spec.files):
        argv += ["-v", f"{files_host_path(spec, mount, host.files_dir)}:{mount}:ro"]
    labels = {**spec.labels, **(extra_labels or {})}
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    command = list(spec.command)
    if spec.pip_install:  # a plain Python image: install, then run the command with its args
        install = "pip install -q --no-cache-dir " + shlex.join(spec.pip_install)
        command = ["sh", "-c", f'{install} && exec "$@"', "sh", *command]
    if command:
        argv += ["--entrypoint", command[0]]
    argv.append(spec.image)
    argv += command[1:]
    argv += spec.args
    return argv


def files_host_path(spec: ContainerSpec, mount: str, files_dir: str | None = None) -> str:
    """Where a file of ``spec`` lies on the host: ``files_dir`` (default /etc/orch/files/<name>)/<base name>."""
    return str(PurePosixPath(files_dir or f"/etc/orch/files/{spec.name}") / PurePosixPath(mount).name)


POD_LABEL = "orch-pod"  # on a sidecar container: the main container it belongs to


def pod_argvs(spec: ContainerSpec, engine: Engine | str = "docker", host: HostOptions = HostOptions(), *,
              extra_labels: dict[str, str] | None = None) -> list[list[str]]:
    """The main container's ``docker run``, then each sidecar's in its network namespace. Sidecars carry only
    ``orch-pod=<main>``, not the main container's labels: what finds replicas by label finds each pod once."""
    out = [docker_run_argv(spec, engine, host, extra_labels=extra_labels)]
    for side in spec.sidecars:
        out.append(docker_run_argv(side, engine, HostOptions(files_dir=host.files_dir),
                                   network=f"container:{spec.name}", extra_labels={POD_LABEL: spec.name}))
    return out
