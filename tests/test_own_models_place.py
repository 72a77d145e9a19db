"""The user's own models through place and the vLLM container: a fine-tuned checkpoint in S3 (its copy to the serving
region priced as egress, the flags in the dry run), LoRA adapters (vLLM flags, ranks, fetch step), LoRA's cost in the
performance model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.placement import place
from orchestrator.spec.loader import load_spec_text

REPO = Path(__file__).resolve().parent.parent

CHECKPOINT = """\
version: 1
project: acme
deployments:
  - name: support
    model: llama-3.1-8b
    traffic:
      requests_per_second: 2
      input_tokens: 500
      output_tokens: 200
      sources: [{region: aws:eu-west-1, share: 1.0}]
    slo: {ttft_p95_ms: 3000, tpot_p95_ms: 80}
    checkpoint: {uri: "s3://acme-models/ft/support-v3", region: %(region)s%(extra)s}
providers:
  aws: {regions: [eu-west-1]}
"""


def _plan(region: str, extra: str = "") -> object:
    return place(load_spec_text(CHECKPOINT % {"region": region, "extra": extra}, "ft.yaml"), with_fallbacks=False)


def _tariff(src: str, dst: str) -> float:
    from orchestrator.catalog.load import load_catalog
    from orchestrator.catalog.regions import all_regions

    regions = all_regions()
    return load_catalog().egress.transfer_usd_per_gb(regions[src], regions[dst])


def test_checkpoint_far_from_the_serving_region_costs_its_egress_and_in_the_same_region_none() -> None:
    near, far = _plan("aws:eu-west-1"), _plan("aws:us-east-1")
    assert near.status == far.status == "optimal"
    (dn,), (df,) = near.deployments, far.deployments
    assert {g.region for g in dn.replicas} == {g.region for g in df.replicas} == {"aws:eu-west-1"}
    assert dn.egress_usd_per_month == 0.0  # users, serving and weights all in eu-west-1: nothing moves
    size = 8.03 * 2  # default: the base model's weights at bf16 (llama-3.1-8b, 8.03 B parameters)
    assert df.checkpoint.size_gb == pytest.approx(size)
    tariff = _tariff("aws:us-east-1", "aws:eu-west-1")
    assert tariff > 0
    assert df.egress_usd_per_month == pytest.approx(size * tariff, abs=0.01)  # one copy per serving region a month
    assert far.total.usd_per_month - near.total.usd_per_month == pytest.approx(size * tariff, abs=0.02)
    # a size given in the file is what moves
    sized = _plan("aws:us-east-1", ", size_gb: 140").deployments[0]
    assert sized.egress_usd_per_month == pytest.approx(140 * tariff, abs=0.01)


def test_checkpoint_in_another_cloud_is_priced_at_that_clouds_internet_egress() -> None:
    text = (CHECKPOINT % {"region": "gcp:us-central1", "extra": ""}).replace("s3://acme-models", "gs://acme-models")
    d = place(load_spec_text(text, "ft.yaml"), with_fallbacks=False).deployments[0]
    assert d.checkpoint.kind == "gs" and d.checkpoint.uri == "gs://acme-models/ft/support-v3"
    assert d.egress_usd_per_month == pytest.approx(8.03 * 2 * _tariff("gcp:us-central1", "aws:eu-west-1"), abs=0.01)


def test_dry_run_shows_the_checkpoint_flags(tmp_path: Path) -> None:
    spec = tmp_path / "ft.yaml"
    spec.write_text(CHECKPOINT % {"region": "aws:us-east-1", "extra": ", tokenizer: base"})
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "orch"), "ORCH_STATE_URL": ""}
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "apply", str(spec), "--dry-run"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    run = next(line for line in json.loads(_first_json(r.stdout))[-1]["params"]["UserData"].splitlines()
               if line.startswith("docker run") and "vllm/vllm-openai" in line)
    argv = run.split(" vllm/vllm-openai:v0.32.0 ", 1)[1].split()
    assert argv[0] == "s3://acme-models/ft/support-v3"  # the model argument is the checkpoint itself
    assert argv[argv.index("--load-format") + 1] == "runai_streamer"
    assert argv[argv.index("--tokenizer") + 1] == "meta-llama/Llama-3.1-8B-Instruct"  # tokenizer: base
    assert argv[argv.index("--served-model-name") + 1] == "support"


def _first_json(text: str) -> str:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("["))
    end = next(i for i in range(start, len(lines)) if lines[i] == "]")
    return "\n".join(lines[start:end + 1])


LORA = """\
version: 1
project: acme
deployments:
  - name: support
    model: llama-3.1-8b
    traffic: {requests_per_second: 2, input_tokens: 500, output_tokens: 200}
    slo: {ttft_p95_ms: 3000, tpot_p95_ms: 80}
    lora:
      max_loras: 2
      adapters:
        - {name: billing, uri: "s3://acme-lora/billing", region: aws:us-east-1, rank: 8}
        - {name: refunds, uri: "https://acmelora.blob.core.windows.net/adapters/refunds", region: azure:eastus, rank: 12}
        - {name: local, uri: "%(local)s"}
providers:
  aws: {regions: [us-east-1]}
"""


def _adapter(path: Path, rank: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    return path


def test_lora_plan_and_vllm_flags(tmp_path: Path) -> None:
    from containers.vllm import build_vllm_container

    local = _adapter(tmp_path / "local-adapter", 40)
    plan = place(load_spec_text(LORA % {"local": local}, str(tmp_path / "l.yaml")), with_fallbacks=False)
    (d,) = plan.deployments
    assert [(a.name, a.kind, a.rank) for a in d.lora.adapters] == [("billing", "s3", 8), ("refunds", "azure", 12),
                                                                   ("local", "path", 40)]  # 40: its adapter_config.json
    assert (d.lora.max_loras, d.lora.max_rank) == (2, 64)  # 40 rounds up to vLLM's next rank
    spec = build_vllm_container(project="acme", deployment=d, group=d.replicas[0], replica="r-0")
    args = spec.args
    assert "--enable-lora" in args
    assert args[args.index("--max-loras") + 1] == "2" and args[args.index("--max-lora-rank") + 1] == "64"
    assert args[args.index("--max-cpu-loras") + 1] == "3"  # more adapters than slots: all stay in CPU memory
    i = args.index("--lora-modules")
    assert args[i + 1:i + 4] == ["billing=/root/.cache/huggingface/orch-lora/billing",
                                 "refunds=/root/.cache/huggingface/orch-lora/refunds", f"local={local}"]
    assert args.count("--lora-modules") == 1  # vLLM keeps only the last occurrence's list
    # object storage: fetched by a step before `vllm serve`; the local adapter is mounted where it is
    assert spec.command == ["/bin/sh", "-c", 'python3 /etc/orch/lora/fetch.py && exec vllm serve "$@"', "sh"]
    fetch = spec.files["/etc/orch/lora/fetch.py"]
    assert "az://adapters/refunds" in fetch and '"AZURE_STORAGE_ACCOUNT_NAME": "acmelora"' in fetch
    assert any(v.kind == "host_path" and v.host_path == str(local) for v in spec.volumes)


def test_fetch_step_pulls_each_adapter_once(tmp_path: Path) -> None:
    """The generated fetch.py, run against a stand-in runai_model_streamer that records its calls."""
    from containers.own_models import FETCH_PATH, own_model_parts
    from orchestrator.own_models import AdapterPlan, LoraPlan

    class Dep:
        checkpoint = None
        lora = LoraPlan(max_loras=1, max_rank=8, adapters=[
            AdapterPlan(name="a", uri="s3://b/a", kind="s3", rank=8),
            AdapterPlan(name="z", uri="az://c/z", kind="azure", rank=8, env={"AZURE_STORAGE_ACCOUNT_NAME": "acct"})])

    parts = own_model_parts(Dep(), str(tmp_path / "cache"))
    script = tmp_path / "fetch.py"
    script.write_text(parts.files[FETCH_PATH])
    stub = tmp_path / "stub" / "runai_model_streamer"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(textwrap.dedent(f"""\
        import json, os
        def pull_files(uri, dst, allow_pattern=None, ignore_pattern=None):
            with open({str(tmp_path / 'calls.jsonl')!r}, "a") as f:
                f.write(json.dumps([uri, dst, os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")]) + "\\n")
            open(os.path.join(dst, "adapter_config.json"), "w").write("{{}}")
        """))
    env = {**os.environ, "PYTHONPATH": str(stub.parent)}
    for _ in range(2):  # the second start finds both in the cache
        r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    calls = [json.loads(ln) for ln in (tmp_path / "calls.jsonl").read_text().splitlines()]
    cache = tmp_path / "cache" / "orch-lora"
    assert calls == [["s3://b/a/", str(cache / "a"), None], ["az://c/z/", str(cache / "z"), "acct"]]


def test_lora_memory_formula_matches_vllm_buffers_for_llama_8b() -> None:
    """By hand from vLLM 0.32's create_lora_weights for Llama-3.1-8B (h 4096, 32 heads, 8 KV heads, d 128, MLP 14336,
    vocab 128256, untied): per adapter slot at rank 16, linear layers 32 x 16 x (7h + 80d + 3 x 14336) plus embedding
    and lm_head 2 x 16 x (vocab + h); the model derives the MLP width from the parameter count, which holds both."""
    from orchestrator.model_registry import lookup_model
    from orchestrator.perf import lora

    m = lookup_model("llama-3.1-8b")
    h, vocab = 4096, 128256
    by_hand = 32 * 16 * (7 * h + 80 * 128 + 3 * 14336) + 2 * 16 * (vocab + h)
    model = lora.reserved_bytes_per_gpu(m, lora.LoraLoad(max_loras=4, max_rank=16)) / 4 / 2
    assert model == pytest.approx(by_hand, rel=0.01)
    # tensor parallelism splits the B of column-parallel and the A of row-parallel layers
    assert lora.reserved_bytes_per_gpu(m, lora.LoraLoad(4, 16), 2) < lora.reserved_bytes_per_gpu(m, lora.LoraLoad(4, 16))
    assert [lora.vllm_rank(r) for r in (1, 2, 8, 9, 100, 300, 320, 321, 512)] == [1, 8, 8, 16, 128, 320, 320, 512, 512]
    with pytest.raises(ValueError):
        lora.vllm_rank(513)


def test_lora_costs_memory_and_step_time_in_the_performance_model() -> None:
    from orchestrator.catalog.gpus import get_gpu
    from orchestrator.model_registry import lookup_model
    from orchestrator.perf import Workload, estimate, lora

    m = lookup_model("llama-3.1-8b")
    load = lora.LoraLoad(max_loras=8, max_rank=64, adapters=8)
    lm = lora.with_lora(m, load)
    assert lm.name == m.name and lm != m
    g = get_gpu("H100")
    base, with_l = (estimate(x, g, 1, "bf16", Workload(1000, 250), tpot_slo_ms=50) for x in (m, lm))
    reserved = lora.reserved_bytes_per_gpu(m, load) / 1e9
    assert with_l.memory_needed_gb - base.memory_needed_gb == pytest.approx(reserved, rel=1e-6)
    assert with_l.kv_capacity_tokens < base.kv_capacity_tokens
    # Punica's +2 ms per step for 32 layers, on every decode step
    assert with_l.tpot_ms_batch1 - base.tpot_ms_batch1 == pytest.approx(2.0, rel=1e-6)
    assert with_l.requests_per_s < base.requests_per_s


def test_a_lora_deployment_is_placed_with_the_lora_cost(tmp_path: Path) -> None:
    local = _adapter(tmp_path / "a", 16)
    spec = load_spec_text((LORA % {"local": local}), str(tmp_path / "l.yaml"))
    from orchestrator.catalog.load import load_catalog
    from orchestrator.placement.inputs import build_inputs

    inp = build_inputs(spec, load_catalog(spec.spec))
    assert getattr(inp.models["support"], "lora", None) is not None
    assert inp.models["support"].lora.max_rank == 16 and inp.models["support"].lora.max_loras == 2
