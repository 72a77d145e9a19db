"""The pod of a ContainerSpec on Kubernetes (a V1PodSpec of the official client): its container, one more per
sidecar (sharing its network namespace), resources, probes, volumes, the files of its ConfigMap and where it may
be scheduled (containers.render.kubernetes_nodes). Secrets come from Secrets through ``secretKeyRef``.
"""

from __future__ import annotations

import shlex
from typing import Any

from containers.names import dns_label
from containers.render.kubernetes_extra import (
    FILES_VOLUME,
    config_map_name,
    containers_of,
    file_keys,
)
from containers.render.kubernetes_nodes import DEVICE_RESOURCE, Convention, scheduling
from containers.spec import ContainerSpec, Probe

CONTAINER_NAMES = {"gateway": "router", "edge": "edge"}


def _probe(p: Probe | None) -> Any:
    from kubernetes import client

    if p is None:
        return None
    return client.V1Probe(
        http_get=client.V1HTTPGetAction(path=p.path, port=p.port),
        initial_delay_seconds=p.initial_delay_s or None,
        period_seconds=p.period_s,
        timeout_seconds=p.timeout_s,
        failure_threshold=p.failure_threshold,
    )


def _memory(gb: float) -> str:
    return f"{int(gb)}Gi" if float(gb).is_integer() else f"{round(gb * 1024)}Mi"


def _command(spec: ContainerSpec) -> list[str] | None:
    """The container's command; with ``pip_install``, wrapped to install the packages first (as the docker
    renderer does): ``sh -c 'pip install ... && exec "$@"' sh <command...>``, the args following."""
    command = list(spec.command)
    if spec.pip_install:
        install = "pip install -q --no-cache-dir " + shlex.join(spec.pip_install)
        command = ["sh", "-c", f'{install} && exec "$@"', "sh", *command]
    return command or None


def _container_name(spec: ContainerSpec, main: bool) -> str:
    """vllm for a replica (as always), router and edge for a gateway's two; a sidecar's own name otherwise."""
    if spec.role in CONTAINER_NAMES:
        return CONTAINER_NAMES[spec.role]
    return "vllm" if main else dns_label(spec.name)


def _container(
    spec: ContainerSpec,
    name: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    probes: bool = True,
    extra_env: list[Any] | None = None,
    mounts: list[Any],
) -> Any:
    from kubernetes import client

    env = [client.V1EnvVar(name=k, value=v) for k, v in sorted(spec.env.items())]
    for key, ref in sorted(spec.secret_env.items()):
        env.append(
            client.V1EnvVar(
                name=key,
                value_from=client.V1EnvVarSource(
                    # optional unless required: public models need no token (gated ones fail loudly at download);
                    # an API key is required: the pod does not start without it
                    secret_key_ref=client.V1SecretKeySelector(name=ref.name, key=ref.key, optional=not ref.required)
                ),
            )
        )
    env += extra_env or []

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if spec.gpus > 0:
        resource = DEVICE_RESOURCE.get(spec.gpu_vendor, "nvidia.com/gpu")  # each vendor's device plugin
        limits[resource] = str(spec.gpus)
        requests[resource] = str(spec.gpus)
    if spec.cpu:
        requests["cpu"] = f"{spec.cpu:g}"
    if spec.memory_gb:
        requests["memory"] = _memory(spec.memory_gb)
        limits["memory"] = _memory(spec.memory_gb)

    return client.V1Container(
        name=name,
        image=spec.image,
        command=command if command is not None else _command(spec),
        args=args if args is not None else (spec.args or None),
        env=env or None,
        ports=[client.V1ContainerPort(name=n[:15], container_port=p) for n, p in spec.ports.items()] or None,
        resources=client.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        volume_mounts=mounts or None,
        startup_probe=_probe(spec.startup) if probes else None,
        readiness_probe=_probe(spec.readiness) if probes else None,
        liveness_probe=_probe(spec.liveness) if probes else None,
    )


def _volumes(spec: ContainerSpec) -> tuple[list[Any], list[Any]]:
    """(pod volumes, this container's mounts) for one container's shm and volumes."""
    from kubernetes import client

    mounts = []
    volumes = []
    if spec.shm_gb:
        volumes.append(
            client.V1Volume(name="dshm", empty_dir=client.V1EmptyDirVolumeSource(medium="Memory", size_limit=f"{int(spec.shm_gb)}Gi"))
        )
        mounts.append(client.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    for vol in spec.volumes:
        if vol.kind == "memory":
            size = f"{int(vol.size_gb)}Gi" if vol.size_gb else None
            src = client.V1Volume(name=vol.name, empty_dir=client.V1EmptyDirVolumeSource(medium="Memory", size_limit=size))
        elif vol.kind == "host_path" and vol.host_path:
            src = client.V1Volume(name=vol.name, host_path=client.V1HostPathVolumeSource(path=vol.host_path))
        else:  # model cache: node-local scratch sized for the weights (a PVC can replace it)
            size = f"{int(vol.size_gb)}Gi" if vol.size_gb else None
            src = client.V1Volume(name=vol.name, empty_dir=client.V1EmptyDirVolumeSource(size_limit=size))
        volumes.append(src)
        mounts.append(client.V1VolumeMount(name=vol.name, mount_path=vol.mount_path))
    return volumes, mounts


def pod_spec(
    spec: ContainerSpec,
    convention: Convention,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    probes: bool = True,
    extra_env: list[Any] | None = None,
) -> Any:
    """The pod: the spec's container, then one per sidecar (sharing its network namespace, as pods do), the
    files of all of them from one ConfigMap, mounted read-only at each file's path."""
    from kubernetes import client

    pod = containers_of(spec)
    volumes: list[Any] = []
    mounts: list[list[Any]] = []
    for c in pod:
        vols, ms = _volumes(c)
        volumes += [v for v in vols if v.name not in {u.name for u in volumes}]
        mounts.append(ms)
    keys = file_keys(spec)
    if keys:
        volumes.append(client.V1Volume(name=FILES_VOLUME, config_map=client.V1ConfigMapVolumeSource(name=config_map_name(spec.name))))
        for i, path, key in keys:
            mounts[i].append(client.V1VolumeMount(name=FILES_VOLUME, mount_path=path, sub_path=key, read_only=True))

    names = [_container_name(c, i == 0) for i, c in enumerate(pod)]
    if len(set(names)) < len(names):
        names = [dns_label(c.name) for c in pod]
    containers = [_container(spec, names[0], command=command, args=args, probes=probes, extra_env=extra_env, mounts=mounts[0])]
    containers += [_container(c, n, mounts=m) for c, n, m in zip(pod[1:], names[1:], mounts[1:])]
    selector, tolerations = scheduling(spec, convention)
    return client.V1PodSpec(
        containers=containers,
        volumes=volumes or None,
        node_selector=selector or None,
        tolerations=[client.V1Toleration(**t) for t in tolerations] or None,
        termination_grace_period_seconds=60,
    )
