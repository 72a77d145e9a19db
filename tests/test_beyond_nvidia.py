"""Beyond NVIDIA (issue 21, items 3-4): a TPU, a Trainium and an MI300X plan, rendered to the containers orch would
run (image, devices, Kubernetes resources), with vLLM's own argument parser accepting their command lines when
$ORCH_VLLM_PYTHON names a Python with vLLM; and files written for GPUs see no TPU and no GPU cloud."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from containers.render.docker import docker_run_argv
from containers.render.kubernetes_nodes import scheduling
from containers.vllm import VllmLaunch, build_vllm_container
from orchestrator.placement import place
from orchestrator.spec.loader import load_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "beyond-nvidia.yaml"


def _plan(tmp_path: Path, gpus: list[str]):  # noqa: ANN202
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["policies"]["any-accelerator"]["gpus"] = gpus
    path = tmp_path / f"only-{'-'.join(gpus)}.yaml"
    path.write_text(yaml.safe_dump(doc))
    plan = place(load_spec(path))
    dep = plan.deployments[0]
    return plan, dep, dep.replicas[0]


def _container(plan, dep, group):  # noqa: ANN001, ANN202
    return build_vllm_container(project=plan.project, deployment=dep, group=group, replica=f"{dep.name}-0",
                                launch=VllmLaunch(hf_token=None))


@pytest.mark.parametrize(("gpu", "image", "resource"), [
    ("TPU-v6e", "vllm/vllm-tpu:", "google.com/tpu"),
    ("Trainium2", "public.ecr.aws/neuron/", "aws.amazon.com/neuron"),
    ("MI300X", "vllm/vllm-openai-rocm:", "amd.com/gpu"),
])
def test_a_plan_on_each_accelerator_renders_its_image_and_devices(tmp_path: Path, gpu: str, image: str, resource: str) -> None:
    plan, dep, group = _plan(tmp_path, [gpu])
    assert group.gpu == gpu and dep.predicted.usd_per_million_tokens > 0
    spec = _container(plan, dep, group)
    assert spec.image.startswith(image) and spec.gpus == group.gpus_per_replica
    argv = docker_run_argv(spec)
    if gpu.startswith("TPU"):
        assert "--privileged" in argv and "--net=host" in argv and spec.command[:2] == ["vllm", "serve"]
        selector, tolerations = scheduling(spec, "gke")
        assert selector["cloud.google.com/gke-tpu-accelerator"] == "tpu-v6e-slice"
        assert selector["cloud.google.com/gke-tpu-topology"] in ("1x1", "2x2", "2x4")
        assert group.quantization == "bf16" and "--quantization" not in spec.args
    elif gpu == "Trainium2":
        assert [a for a in argv if a.startswith("--device=/dev/neuron")] == [f"--device=/dev/neuron{i}" for i in range(spec.gpus)]
    else:
        assert "--device=/dev/kfd" in argv
    _, tolerations = scheduling(spec, "nfd")
    assert tolerations[0]["key"] == resource


def test_the_example_compares_tpu_trainium_and_mi300x_per_1m_tokens(tmp_path: Path) -> None:
    """Each accelerator the file allows, planned alone, has a $ per 1M tokens at the same SLO: the equal terms the
    placement compares them on (the chosen one is the cheapest of them)."""
    costs = {g: _plan(tmp_path, [g])[1].predicted.usd_per_million_tokens for g in ("TPU-v6e", "Trainium2", "MI300X", "H100")}
    plan = place(load_spec(EXAMPLE))
    assert plan.deployments[0].predicted.usd_per_million_tokens <= min(costs.values()) * 1.001
    # the plan's comparison shows each accelerator's own best, in $ per 1M tokens, cheapest first; an accelerator
    # planned alone never beats its own line (routing and egress are on top of it)
    accs = plan.deployments[0].explanation["accelerators"]
    assert {"TPU-v6e", "Trainium2", "MI300X", "H100"} <= set(accs)
    per_m = [a["usd_per_million_tokens"] for a in accs.values()]
    assert per_m == sorted(per_m)
    for g, alone in costs.items():
        assert accs[g]["usd_per_million_tokens"] <= alone * 1.001
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    out = CliRunner().invoke(app, ["place", str(EXAMPLE)], env={"COLUMNS": "400"}).stdout
    line = next(ln for ln in out.splitlines() if "by accelerator" in ln)
    assert all(f"{g} $" in line for g in ("TPU-v6e", "Trainium2", "MI300X"))


def test_files_written_for_gpus_see_no_tpu_and_no_gpu_cloud() -> None:
    plan = place(load_spec(REPO / "examples" / "quickstart.yaml"))
    text = json.dumps(plan.to_dict() if hasattr(plan, "to_dict") else str(plan))
    for word in ("TPU", "Trainium", "lambdalabs", "runpod", "nebius", "coreweave", "vultr"):
        assert word not in text


@pytest.mark.vllm
def test_vllm_parses_the_tpu_trainium_and_mi300x_command_lines(tmp_path: Path) -> None:
    from conftest import vllm_python
    from test_compat_launch import PARSE

    python = vllm_python()
    lines = []
    for gpu in ("TPU-v6e", "TPU-v5e", "Trainium2", "MI300X"):
        plan, dep, group = _plan(tmp_path, [gpu])
        spec = _container(plan, dep, group)
        lines.append({"args": spec.args, "rocm": spec.image.startswith("vllm/vllm-openai-rocm:")})
    data = tmp_path / "args.json"
    data.write_text(json.dumps(lines))
    r = subprocess.run([python, "-c", PARSE, str(data)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["checked"] == 4 and out["problems"] == []
