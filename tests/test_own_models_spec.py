"""Bad checkpoint: and lora: input gets located validate errors (file:line:col, field path, what is wrong)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_spec_checks import at
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec

HEAD = """\
version: 1
project: acme
deployments:
"""


def dep(name: str, body: str, model: str | None = "llama-3.1-8b") -> str:
    line = f"    model: {model}\n" if model else ""
    return (f"  - name: {name}\n{line}"
            "    traffic: {requests_per_second: 2, input_tokens: 500, output_tokens: 200}\n"
            "    slo: {ttft_p95_ms: 3000, tpot_p95_ms: 80}\n" + body)


def problems(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "deploy.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(p)
    return [str(x).removeprefix(f"{p}:") for x in info.value.problems]


def test_bad_checkpoints_are_located(tmp_path: Path) -> None:
    text = HEAD + "".join([
        dep("a", '    checkpoint: {uri: "hdfs://acme/ft", region: aws:us-east-1}\n'),
        dep("b", '    checkpoint: {uri: "s3://acme-models/ft", region: aws:us-east-9}\n'),
        dep("c", '    checkpoint: {uri: "gs://acme-models/ft"}\n'),
        dep("d", '    checkpoint: {uri: "s3://acme-models/x", region: aws:us-east-1}\n', model=None),
        dep("e", '    checkpoint: {uri: "s3://acme-models/y", region: gcp:us-central1}\n'),
        dep("f", '    quantization: [bf16, int4]\n    checkpoint: {uri: "./no-such-dir", region: local:this-machine}\n'),
        dep("g", '    checkpoint: {uri: "az://models/ft", region: azure:eastus}\n'),
    ]) + "providers:\n  aws: {}\n  gcp: {}\n  azure: {}\n  local: {}\n"
    got = problems(tmp_path, text)
    q = '"'
    gs, s3x = '{uri: "gs://', '{uri: "s3://acme-models/x'
    want = [
        (f'{at(text, q + "hdfs://")}: deployments[0].checkpoint.uri: unknown scheme hdfs://; expected s3://BUCKET/path, '
         "gs://BUCKET/path, https://ACCOUNT.blob.core.windows.net/CONTAINER/path, or a directory"),
        f'{at(text, "aws:us-east-9")}: deployments[1].checkpoint.region: unknown region "aws:us-east-9"',
        f'{at(text, gs)}: deployments[2].checkpoint: a checkpoint in object storage needs region:',
        f'{at(text, s3x)}: deployments[3].checkpoint: a checkpoint needs its base model',
        (f'{at(text, "gcp:us-central1")}: deployments[4].checkpoint.region: an s3:// bucket lives in a region of aws '
         "or onprem, not gcp"),
        f'{at(text, "int4")}: deployments[5].quantization[1]: int4 cannot be applied to a checkpoint by location',
        f'{at(text, q + "./no-such-dir")}: deployments[5].checkpoint.uri: checkpoint directory not found on this machine',
        (f'{at(text, q + "az://")}: deployments[6].checkpoint.uri: cannot read \'az://models/ft\': expected '
         "https://ACCOUNT.blob.core.windows.net/CONTAINER/path (az:// does not say the storage account)"),
    ]
    for w in want:
        assert any(g.startswith(w) for g in got), f"missing {w!r} in:\n" + "\n".join(got)
    # the missing model is also a structural problem, at the deployment
    assert any(": deployments[3].model: missing required field" in g for g in got)


def test_bad_lora_input_is_located(tmp_path: Path) -> None:
    ok = tmp_path / "ok-adapter"
    ok.mkdir()
    (ok / "adapter_config.json").write_text(json.dumps({"r": 32}))
    body = f"""\
    lora:
      max_rank: 16
      adapters:
        - {{name: billing, uri: "s3://acme-lora/billing", region: aws:us-east-1}}
        - {{name: billing, uri: "s3://acme-lora/b2", region: aws:us-east-1, rank: 8}}
        - {{name: chat, uri: "ftp://host/adapter", rank: 8}}
        - {{name: big, uri: "s3://acme-lora/big", region: aws:us-east-1, rank: 600}}
        - {{name: nowhere, uri: "s3://acme-lora/n", rank: 8}}
        - {{name: mine, uri: "{ok}", rank: 8}}
        - {{name: "bad name!", uri: "{ok}"}}
"""
    text = HEAD + dep("chat", body) + "providers:\n  aws: {}\n"
    got = problems(tmp_path, text)
    q = '"'
    mine_rank = "8}\n        - {name: " + q + "bad"
    want = [
        f'{at(text, "{name: billing")}: deployments[0].lora.adapters[0]: rank: needed (orch cannot read object storage)',
        f'{at(text, "billing, uri: " + q + "s3://acme-lora/b2")}: deployments[0].lora.adapters[1].name: duplicate adapter name "billing" (also adapters[0])',
        f'{at(text, "chat, uri")}: deployments[0].lora.adapters[2].name: adapter name "chat" is the deployment\'s own name',
        f'{at(text, q + "ftp://")}: deployments[0].lora.adapters[2].uri: unknown scheme ftp://',
        f'{at(text, "600")}: deployments[0].lora.adapters[3].rank: expected less than or equal to 512, found 600',
        f'{at(text, "{name: nowhere")}: deployments[0].lora.adapters[4]: an adapter in object storage needs region:',
        f'{at(text, mine_rank)}: deployments[0].lora.adapters[5].rank: rank 8 differs from r = 32 in {ok}/adapter_config.json',
        f'{at(text, q + "bad name!")}: deployments[0].lora.adapters[6].name:',
        f'{at(text, "16")}: deployments[0].lora.max_rank: max_rank 16 is below the largest adapter rank, 32',
    ]
    for w in want:
        assert any(g.startswith(w) for g in got), f"missing {w!r} in:\n" + "\n".join(got)


def test_orch_validate_prints_them_one_line_each(tmp_path: Path) -> None:
    p = tmp_path / "deploy.yaml"
    p.write_text(HEAD + dep("a", '    checkpoint: {uri: "http://example.com/ft", region: aws:us-east-1}\n'))
    res = CliRunner().invoke(app, ["validate", str(p)])
    assert res.exit_code == 1
    assert f"{p}:8:23: deployments[0].checkpoint.uri: unknown scheme http://" in res.output
    assert "Traceback" not in res.output


def test_good_own_models_validate(tmp_path: Path) -> None:
    adapter = tmp_path / "adapters" / "support"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))
    body = """\
    checkpoint: {uri: "https://acmeft.blob.core.windows.net/models/support-v3", region: azure:eastus, size_gb: 16}
    lora:
      adapters:
        - {name: support, uri: adapters/support}
        - {name: legal, uri: "gs://acme-lora/legal", region: gcp:europe-west4, rank: 64}
"""
    p = tmp_path / "deploy.yaml"
    p.write_text(HEAD + dep("chat", body))
    loaded = load_spec(p)
    d = loaded.spec.deployments[0]
    assert d.checkpoint.region == "azure:eastus" and [a.name for a in d.lora.adapters] == ["support", "legal"]
