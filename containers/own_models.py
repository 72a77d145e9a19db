"""vLLM flags, environment, mounts and start step for the user's own models (the plan's checkpoint and lora).

Checked against vLLM 0.32's source (.venv-vllm: vllm/engine/arg_utils.py, vllm/config/lora.py,
vllm/entrypoints/launchers/cli_args.py, vllm/transformers_utils/runai_utils.py, vllm/config/vllm.py):

- A checkpoint in object storage is the model argument itself, ``s3://``, ``gs://`` or ``az://CONTAINER/path``
  (SUPPORTED_SCHEMES), with ``--load-format runai_streamer``: vLLM pulls the config and tokenizer files into a local
  cache and streams the safetensors straight from the bucket into GPU memory (no copy on disk first, no step before
  vLLM starts: why this and not a download step). Azure needs AZURE_STORAGE_ACCOUNT_NAME in the environment. The
  image needs the runai-model-streamer package (vLLM's ``runai`` extra); a directory is served as it is, mounted at
  the same path on VMs and Kubernetes (host_path).
- ``--tokenizer``: only when the deployment file asks (``tokenizer: base`` or a path/id): by default vLLM reads the
  tokenizer from the checkpoint, as a fine-tune with added tokens needs.
- LoRA: ``--enable-lora --max-loras N --max-lora-rank R --lora-modules name=path ...``. R is one of vLLM 0.32's ranks
  (1, 8, 16, 32, 64, 128, 256, 320, 512), rounded up from the largest adapter's. ``--lora-modules`` takes every
  adapter after one flag (LoRAParserAction replaces the list each time the flag appears). ``--max-cpu-loras`` keeps
  every adapter in CPU memory when there are more adapters than ``max_loras``. A client calls an adapter by its name
  as the request's ``model``.
- vLLM 0.32 loads adapters from local directories (or the Hugging Face hub) only (vllm/lora/utils.py
  ``get_adapter_absolute_path``), so adapters in object storage are copied first: the container's command becomes
  ``sh -c 'python3 /etc/orch/lora/fetch.py && exec vllm serve "$@"'`` (the args unchanged), and fetch.py pulls each
  adapter with the Run:ai streamer's ``pull_files`` (the same package as above) into the model cache volume
  (``$HF_HOME/orch-lora/NAME``; kept across restarts). A replica that spans nodes (LeaderWorkerSet) and the local
  provider run ``vllm serve`` / the module directly: there, adapters must be directories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from containers.spec import Volume

FETCH_PATH = "/etc/orch/lora/fetch.py"
LORA_DIR = "orch-lora"  # under the model cache ($HF_HOME)
RUNAI_LOAD_FORMAT = "runai_streamer"

FETCH_SCRIPT = '''"""orch: copy LoRA adapters from object storage before vLLM starts (vLLM 0.32 loads adapters from
local directories only). Generated; holds no secret: credentials come from the environment (instance role, ...)."""
import json
import os

from runai_model_streamer import pull_files  # the Run:ai streamer vLLM uses for object storage

ADAPTERS = json.loads({adapters!r})
for a in ADAPTERS:
    if os.path.isfile(os.path.join(a["dst"], "adapter_config.json")):
        continue  # copied at an earlier start (the model cache volume persists)
    os.environ.update(a["env"])
    os.makedirs(a["dst"], exist_ok=True)
    print(f"orch: fetching LoRA adapter {{a['name']}} from {{a['uri']}}", flush=True)
    pull_files(a["uri"].rstrip("/") + "/", a["dst"])
'''


@dataclass
class OwnModelParts:
    """What a deployment's checkpoint and adapters add to its vLLM container."""

    model: str | None = None  # replaces the model argument
    load_format: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[Volume] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def _mount(path: str, name: str) -> Volume:
    return Volume(name, path, kind="host_path", host_path=path)


def own_model_parts(deployment: object, cache_dir: str) -> OwnModelParts:
    """The parts for a DeploymentPlan (empty when it has no checkpoint and no lora)."""
    out = OwnModelParts()
    ck = getattr(deployment, "checkpoint", None)
    if ck is not None:
        out.model = ck.uri
        out.env.update(ck.env)
        if ck.kind == "path":
            out.volumes.append(_mount(ck.uri, "checkpoint"))
        else:
            out.load_format = RUNAI_LOAD_FORMAT
        if ck.tokenizer:
            out.args += ["--tokenizer", ck.tokenizer]
    lora = getattr(deployment, "lora", None)
    if lora is None:
        return out
    modules, fetch = [], []
    for i, a in enumerate(lora.adapters):
        if a.kind == "path":
            path = a.uri
            out.volumes.append(_mount(path, f"lora-{i}"))
        else:
            path = str(PurePosixPath(cache_dir) / LORA_DIR / a.name)
            fetch.append({"name": a.name, "uri": a.uri, "dst": path, "env": a.env})
        modules.append(f"{a.name}={path}")
    out.args += ["--enable-lora", "--max-loras", str(lora.max_loras), "--max-lora-rank", str(lora.max_rank)]
    if len(lora.adapters) > lora.max_loras:
        out.args += ["--max-cpu-loras", str(len(lora.adapters))]
    out.args += ["--lora-modules", *modules]
    if fetch:
        out.files[FETCH_PATH] = FETCH_SCRIPT.format(adapters=json.dumps(fetch))
        out.command = ["/bin/sh", "-c", f'python3 {FETCH_PATH} && exec vllm serve "$@"', "sh"]
    return out
