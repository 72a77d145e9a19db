"""Every plan launches: the chosen candidate of every (model, GPU type, quantization) the registry and the catalog
allow, and every example's plan (chosen groups and fallbacks), rendered to vLLM command lines and checked against
the compatibility table (orchestrator/data/vllm_compat.yaml, gpus.csv, the registry's checkpoints); with vLLM's own
argument parser too when $ORCH_VLLM_PYTHON names a Python with vLLM.

The full product is small enough: one candidate build per (model, quantization) over the whole embedded catalog
(42 models x 5 quantizations, under a second), keeping per GPU type the candidate that serves the demand cheapest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from orchestrator import compat
from orchestrator.catalog.gpus import all_gpus, get_gpu
from orchestrator.model_registry import all_models, lookup_model
from orchestrator.perf.quant import compute_tflops

REPO = Path(__file__).resolve().parent.parent
QUANTS = ("bf16", "fp16", "fp8", "int8", "int4")


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _render(project: str, dep: Any, group: Any) -> Any:
    from containers.vllm import VllmLaunch, build_vllm_container

    return build_vllm_container(project=project, deployment=dep, group=group, replica=f"{dep.name}-0",
                                launch=VllmLaunch(hf_token=None))


@cache
def combos() -> list[tuple[Any, Any, str, Any]]:
    """(model, group, requested quantization, container) for each (model, GPU type, quantization) with a candidate."""
    from orchestrator.catalog.offerings import snapshot_offerings
    from orchestrator.perf import estimate_batch
    from orchestrator.placement.candidates import (
        CandidateContext,
        CandidateRequest,
        build_candidates,
        cover_usd,
    )
    from orchestrator.placement.explain import group_of
    from orchestrator.placement.offerings import OfferingTable
    from orchestrator.plan import DeploymentPlan, Predicted
    from orchestrator.spec.models import Deployment

    gpus = {g.name: g for g in all_gpus()}
    table = OfferingTable(snapshot_offerings(), gpus)
    out = []
    for model in all_models():
        for q in QUANTS:
            d = Deployment(name="combo", model=model.name, quantization=[q],
                           traffic={"requests_per_second": 1, "input_tokens": 1000, "output_tokens": 200},
                           slo={"ttft_p95_ms": 600_000, "tpot_p95_ms": 10_000})
            ctx = CandidateContext(table, gpus, lambda a, b: 0.0, estimate_batch, prune=False, extra_sizes=0)
            dc = build_candidates(CandidateRequest(d, model, [("aws:us-east-1", 1.0)]), ctx)
            best: dict[str, Any] = {}
            for c in dc.candidates:
                if c.gpu not in best or cover_usd(c, 1.0) < cover_usd(best[c.gpu], 1.0):
                    best[c.gpu] = c
            for c in best.values():
                group = group_of(c, 1)
                dep = DeploymentPlan(name="combo", model=model.name, hf_id=model.hf_id, max_model_len=compat.max_model_len(d, model),
                                     replicas=[group], usd_per_hour=0, egress_usd_per_month=0,
                                     predicted=Predicted(ttft_p95_ms=0, tpot_p95_ms=0, capacity_rps=0, usd_per_million_tokens=0))
                out.append((model, group, q, _render("combo", dep, group)))
    return out


@cache
def example_renders() -> list[tuple[Any, Any, str, Any]]:
    """The same for every group of every example's plan (chosen and fallbacks), except the local ones, and of
    every valid deployment file among the test fixtures."""
    from orchestrator.errors import SpecError
    from orchestrator.placement import place
    from orchestrator.spec.loader import load_spec

    out = []
    files = sorted((REPO / "examples").glob("*.yaml")) + sorted((REPO / "tests" / "fixtures" / "spec").glob("*.yaml"))
    for path in files:
        if path.name.startswith("local"):
            continue
        try:
            loaded = load_spec(path)
        except SpecError:  # a fixture of bad input: nothing to plan
            continue
        plan = place(loaded)
        for dep in plan.deployments:
            model = lookup_model(dep.model)
            for group in dep.replicas + [g for fb in dep.fallbacks for g in fb]:
                out.append((model, group, group.quantization, _render(plan.project, dep, group)))
    return out


def launch_problems(model: Any, group: Any, requested: str, spec: Any) -> list[str]:
    """What the table forbids in this rendered container (empty: it may launch)."""
    args, gpu = spec.args, get_gpu(group.gpu)
    q, cc, nvidia = group.quantization, gpu.compute_capability or 0.0, gpu.vendor == "nvidia"
    where = f"{model.name} {requested}->{q} on {group.gpus_per_replica}x{gpu.name}"
    bad = []
    if flag(args, "--dtype") == "bfloat16" and nvidia and cc < 8.0:
        bad.append(f"{where}: bf16 below compute capability 8.0")
    if requested == "bf16" and q != "bf16" and not (nvidia and cc < 8.0 and q == "fp16"):
        bad.append(f"{where}: bf16 planned as {q}")
    if q == "fp8":
        if nvidia and cc < 8.0:
            bad.append(f"{where}: fp8 below 8.0")
        if nvidia and cc < 8.9 and compute_tflops(gpu, "fp8") != gpu.bf16_tflops:
            bad.append(f"{where}: priced with FP8 FLOPs below 8.9")
    if q in ("int8", "int4"):
        published = model.checkpoint(q)
        want = published.hf_id if published else (model.hf_id if model.weight_format == q else None)
        if want is None or args[0] != want:
            bad.append(f"{where}: {q} without its checkpoint (serves {args[0]})")
    if flag(args, "--quantization") == "bitsandbytes":
        bad.append(f"{where}: in-flight bitsandbytes")
    tp, pp = int(flag(args, "--tensor-parallel-size") or 1), int(flag(args, "--pipeline-parallel-size") or 1)
    if (why := compat.parallel_reason(model, tp, pp, group.gpus_per_replica, group.gpus_per_instance or None)) is not None:
        bad.append(f"{where}: {why}")
    if int(flag(args, "--max-model-len") or 0) > model.max_context:
        bad.append(f"{where}: max_model_len beyond the context")
    if (gpu.vendor == "amd") != spec.image.startswith("vllm/vllm-openai-rocm:"):
        bad.append(f"{where}: image {spec.image}")
    return bad


def test_every_model_gpu_quantization_combination_renders_what_the_table_allows() -> None:
    rendered = combos()
    seen = {(m.name, g.gpu, q) for m, g, q, _ in rendered}
    assert len(seen) > 1000 and {g.gpu for _, g, _, _ in rendered} >= {"T4", "A100-80GB", "L4", "H100", "B200", "MI300X"}
    problems = [p for combo in rendered for p in launch_problems(*combo)]
    assert problems == []
    # what the rules removed never shows up, and what they change does
    planned = {(m.name, g.gpu, q): g.quantization for m, g, q, _ in rendered}
    assert planned[("phi-3-mini", "T4", "bf16")] == "fp16"
    assert ("llama-3.1-8b", "T4", "fp8") not in planned and ("llama-3.1-8b", "A100-80GB", "fp8") in planned
    assert ("llama-3.1-8b", "B200", "int8") not in planned and ("llama-3.1-8b", "H100", "int8") in planned
    assert ("gemma-2-9b", "H100", "int4") not in planned and ("llama-3.1-8b", "H100", "int4") in planned
    assert not any(g.gpu == "MI300X" and g.quantization in ("int8", "int4") for _, g, _, _ in rendered)


def test_every_example_plan_passes_the_table() -> None:
    rendered = example_renders()
    assert rendered and [p for r in rendered for p in launch_problems(*r)] == []
    # the runner-up "4xT4 bf16" of hybrid.yaml and multi-region.yaml was the bug: no T4 group is bf16 now
    assert not any(g.gpu == "T4" and g.quantization == "bf16" for _, g, _, _ in rendered)


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_STATE_URL": "", "HF_TOKEN": ""}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


ONE = """\
version: 1
project: {project}
deployments:
  - name: {name}
    model: {model}
    quantization: {quant}
    traffic: {{requests_per_second: 2, input_tokens: 1000, output_tokens: 200}}
    slo: {{ttft_p95_ms: 5000, tpot_p95_ms: 100}}
{extra}providers:
  aws: {{regions: [us-east-1]}}
"""


def test_place_on_t4_only_plans_fp16_and_says_so(tmp_path: Path) -> None:
    f = tmp_path / "t4.yaml"
    f.write_text(ONE.format(project="t4demo", name="mini", model="phi-3-mini", quant="[bf16]",
                            extra="    policies: [t4-only]\npolicies:\n  t4-only: {kind: hardware, gpus: [T4]}\n"))
    r = _cli("place", str(f), "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    (dep,) = json.loads(r.stdout)["deployments"]
    assert dep["replicas"] and {(g["gpu"], g["quantization"]) for g in dep["replicas"]} == {("T4", "fp16")}
    expl = dep["explanation"]
    assert expl["candidates"]["rejected"]["aws"]["dtype"] > 0
    assert any("planned and launched as fp16" in line and "T4 has compute capability 7.5" in line for line in expl["filtered"])
    r = _cli("apply", str(f), "--dry-run", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--dtype float16" in r.stdout and "bfloat16" not in r.stdout


def test_int4_plans_the_published_awq_checkpoint_and_the_dry_run_names_it(tmp_path: Path) -> None:
    f = tmp_path / "awq.yaml"
    f.write_text(ONE.format(project="awqdemo", name="claims", model="llama-3.1-70b", quant="[int4]", extra=""))
    r = _cli("place", str(f), "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    (dep,) = json.loads(r.stdout)["deployments"]
    assert dep["replicas"] and all(g["quantization"] == "int4" for g in dep["replicas"])
    r = _cli("apply", str(f), "--dry-run", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4 --served-model-name claims" in r.stdout
    assert "--quantization awq_marlin" in r.stdout and "bitsandbytes" not in r.stdout


def test_int8_without_checkpoint_is_a_located_validate_error(tmp_path: Path) -> None:
    f = tmp_path / "int8.yaml"
    f.write_text(ONE.format(project="int8demo", name="chat", model="mistral-7b", quant="[int8]", extra=""))
    r = _cli("validate", str(f), tmp_path=tmp_path)
    assert r.returncode == 1
    assert f"{f}:6:20: deployments[0].quantization[0]: int8 needs a pre-quantized W8A8 INT8" in r.stderr + r.stdout
    assert "RedHatAI/Mistral-7B-Instruct-v0.3-FP8" in r.stderr + r.stdout  # what exists


# --- vLLM's own parser ---------------------------------------------------------------------------------------------

PARSE = textwrap.dedent("""
    import ast, contextlib, importlib.util, io, json, sys
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    # RocmPlatform.supported_quantization, read from the source (importing vllm.platforms.rocm needs a ROCm torch)
    tree = ast.parse(open(importlib.util.find_spec("vllm.platforms.rocm").origin).read())
    rocm = next(ast.literal_eval(n.value) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == "RocmPlatform"
                for n in c.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "supported_quantization")
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    problems = []
    for item in json.load(open(sys.argv[1])):
        args, rocm_image = item["args"], item["rocm"]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns = parser.parse_args(args)
            validate_parsed_serve_args(ns)
        except (SystemExit, Exception) as exc:
            problems.append(f"{args}: {exc!r} {err.getvalue().strip()[-300:]}")
            continue
        if ns.model_tag != args[0] or ns.dtype not in ("bfloat16", "float16"):
            problems.append(f"{args}: model {ns.model_tag!r}, dtype {ns.dtype!r}")
        if ns.quantization is not None and ns.quantization not in QUANTIZATION_METHODS:
            problems.append(f"{args}: --quantization {ns.quantization} is not a vLLM quantization method")
        if rocm_image and ns.quantization is not None and ns.quantization not in rocm:
            problems.append(f"{args}: --quantization {ns.quantization} is not supported on ROCm")
    print(json.dumps({"checked": len(json.load(open(sys.argv[1]))), "problems": problems, "rocm": rocm}))
""")


@pytest.mark.vllm
def test_vllm_parses_every_rendered_command_line(tmp_path: Path) -> None:
    from conftest import vllm_python

    python = vllm_python()
    lines = {(tuple(spec.args), spec.image.startswith("vllm/vllm-openai-rocm:")) for *_, spec in combos() + example_renders()}
    data = tmp_path / "args.json"
    data.write_text(json.dumps([{"args": list(a), "rocm": rocm} for a, rocm in sorted(lines)]))
    r = subprocess.run([python, "-c", PARSE, str(data)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["checked"] == len(lines) and len(lines) > 200
    assert "awq" in out["rocm"] and "bitsandbytes" not in out["rocm"]
    assert out["problems"] == []
