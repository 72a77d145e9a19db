"""Three LoRA adapters on the tiny model, placed as one deployment and served for real by vLLM's CPU backend behind
the gateway: each adapter answers by name, and after metering `orch report --by adapter` splits the tokens.

The adapters are made here (PEFT format: adapter_config.json + adapter_model.safetensors with lora_A / lora_B of
shapes matching examples/tiny-llama: hidden 128, MLP 256, 2 heads and 1 KV head of 64), with torch and safetensors
from the vLLM python. Each adapter's requests run between two scrapes, so the split is exact and checked against the
token counts the responses report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-lora-e2e-key-7"
ADAPTERS = {"support": 8, "legal": 16, "sales": 4}  # name -> rank; 4 is no vLLM rank: max_lora_rank rounds up to 16
pytestmark = pytest.mark.vllm

MAKE_ADAPTER = r'''
import json, os, sys, torch
from safetensors.torch import save_file
out, r, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = json.load(open(sys.argv[4]))
h, inter, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
H, K, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
mods = {"self_attn.q_proj": (h, H * d), "self_attn.k_proj": (h, K * d), "self_attn.v_proj": (h, K * d),
        "self_attn.o_proj": (H * d, h), "mlp.gate_proj": (h, inter), "mlp.up_proj": (h, inter),
        "mlp.down_proj": (inter, h)}
torch.manual_seed(seed)
t = {}
for layer in range(L):
    for m, (i, o) in mods.items():
        p = f"base_model.model.model.layers.{layer}.{m}"
        t[p + ".lora_A.weight"] = (torch.randn(r, i) * 0.02).to(torch.bfloat16).contiguous()
        t[p + ".lora_B.weight"] = (torch.randn(o, r) * 0.02).to(torch.bfloat16).contiguous()
os.makedirs(out, exist_ok=True)
save_file(t, os.path.join(out, "adapter_model.safetensors"))
json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
           "bias": "none", "target_modules": [m.split(".")[1] for m in mods], "fan_in_fan_out": False,
           "base_model_name_or_path": "tiny-llama", "modules_to_save": None, "use_rslora": False, "use_dora": False},
          open(os.path.join(out, "adapter_config.json"), "w"))
'''


def _orch(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _spec(tmp_path: Path, port: int) -> Path:
    adapters = "".join(f"        - {{name: {n}, uri: adapters/{n}}}\n" for n in ADAPTERS)
    spec = tmp_path / "lora.yaml"
    spec.write_text(f"""\
version: 1
project: lora-e2e
deployments:
  - name: tiny
    model: {REPO / "examples" / "tiny-llama" / "config.json"}
    quantization: bf16
    max_model_len: 256
    traffic: {{requests_per_second: 0.5, input_tokens: 32, output_tokens: 16}}
    slo: {{ttft_p95_ms: 60000, tpot_p95_ms: 5000}}
    gateway: {{port: {port}}}
    lora:
      max_loras: 2
      adapters:
{adapters}providers:
  local:
    usd_per_hour: 0.36
""")
    return spec


def test_three_adapters_served_by_name_and_split_in_the_report(tmp_path: Path) -> None:
    from conftest import vllm_python

    python = vllm_python()
    config = REPO / "examples" / "tiny-llama" / "config.json"
    for seed, (name, rank) in enumerate(ADAPTERS.items()):
        made = subprocess.run([python, "-c", MAKE_ADAPTER, str(tmp_path / "adapters" / name), str(rank), str(seed),
                               str(config)], capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
    from test_gateway_local import _free_block

    port = _free_block(4)
    spec = _spec(tmp_path, port)
    env = {**os.environ, "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_PROFILE_DIR": str(tmp_path / "profiles"),
           "ORCH_VLLM_PYTHON": python, "ORCH_API_KEY": KEY, "ORCH_STATE_URL": ""}
    env.pop("ORCH_ADMIN_KEY", None)

    placed = _orch(env, "place", str(spec), "--json", timeout=120)
    assert placed.returncode == 0, placed.stderr
    (dep,) = json.loads(placed.stdout)["deployments"]  # one deployment serves all three
    assert [a["name"] for a in dep["lora"]["adapters"]] == list(ADAPTERS)
    assert (dep["lora"]["max_loras"], dep["lora"]["max_rank"]) == (2, 16)

    base = f"http://127.0.0.1:{port}"
    sent: dict[str, list[int]] = {}
    try:
        r = _orch(env, "apply", str(spec), "--yes", "--timeout", "500", timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()
        assert {m["id"] for m in models["data"]} >= {"tiny", *ADAPTERS}
        assert _orch(env, "meter", "--once", timeout=120).returncode == 0  # baseline
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as c:
            for name in [*ADAPTERS, "tiny"]:  # each adapter by name, then the base model, a scrape after each
                for i in range(3):
                    resp = c.post(f"{base}/v1/completions",
                                  json={"model": name, "prompt": f"Ticket {i}: my invoice is wrong", "max_tokens": 12})
                    assert resp.status_code == 200, resp.text[:500]
                    body = resp.json()
                    assert body["model"] == name
                    got = sent.setdefault(name, [0, 0])
                    got[0] += body["usage"]["prompt_tokens"]
                    got[1] += body["usage"]["completion_tokens"]
                m = _orch(env, "meter", "--once", timeout=120)
                assert m.returncode == 0, m.stderr
        rep = _orch(env, "report", "--by", "adapter", "--format", "json", "--no-sample", timeout=120)
        assert rep.returncode == 0, rep.stderr
        rows = {row["key"]: row for row in json.loads(rep.stdout)["rows"]}
        for name in ADAPTERS:
            row = rows[f"tiny/{name}"]
            assert (row["input_tokens"], row["output_tokens"]) == pytest.approx(tuple(sent[name])), (name, rows)
            assert row["cost_usd"] > 0
        base_row = rows["tiny/(no adapter)"]
        assert (base_row["input_tokens"], base_row["output_tokens"]) == pytest.approx(tuple(sent["tiny"]))
        assert "tokens by adapter are an estimate" in rep.stderr
        table = _orch(env, "report", "--by", "adapter", "--no-sample", timeout=120)
        assert table.returncode == 0 and "tiny/support" in table.stdout
    finally:
        d = _orch(env, "destroy", str(spec), "--yes", timeout=300)
    assert d.returncode == 0, d.stderr[-2000:]
