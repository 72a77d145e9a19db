"""Tokens and cost per LoRA adapter, from vllm:lora_requests_info (orchestrator/metering/adapters.py,
orchestrator/reports/adapters.py): the gauge parsed from /metrics text, the split rule, storage, `orch report --by
adapter`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_aggregate import add_replica, ts
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.metering.adapters import (
    NO_ADAPTER,
    active_sets,
    parse_lora_info,
    split,
    usage_by_adapter_day,
)
from orchestrator.metering.scrape import sample_from_text
from orchestrator.metering.store import open_engine, record_samples


def page(prompt: float, gen: float, lora: dict[str, float] | None, requests: float = 0.0) -> str:
    """A /metrics page as vLLM 0.32 writes it (the families orch reads, and the LoRA gauge when given)."""
    out = [
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f'vllm:prompt_tokens_total{{engine="0",model_name="chat"}} {prompt}',
        "# TYPE vllm:generation_tokens_total counter",
        f'vllm:generation_tokens_total{{engine="0",model_name="chat"}} {gen}',
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="chat"}} {requests}',
    ]
    if lora is not None:
        out += ["# HELP vllm:lora_requests_info Running stats on lora requests.", "# TYPE vllm:lora_requests_info gauge"]
        for names, when in lora.items():
            out.append(f'vllm:lora_requests_info{{max_lora="2",running_lora_adapters="{names}",'
                       f'waiting_lora_adapters="{names}"}} {when}')
    return "\n".join(out) + "\n"


def test_gauge_is_read_per_adapter_set() -> None:
    text = page(10, 20, {"support": 1e9 + 5, "": 1e9 + 9, "legal,support": 1e9 + 7})
    assert parse_lora_info(text) == {"support": 1e9 + 5, "": 1e9 + 9, "legal,support": 1e9 + 7}
    assert parse_lora_info(page(10, 20, None)) is None  # LoRA off: no gauge, nothing per adapter
    s = sample_from_text("r", text)
    assert s.ok and s.lora == {"support": 1e9 + 5, "": 1e9 + 9, "legal,support": 1e9 + 7}
    assert s.counters["prompt_tokens"] == 10  # the counters are read as before
    # waiting-only adapters count too, and the order of names does not matter
    waiting = ('vllm:lora_requests_info{max_lora="2",running_lora_adapters="b",waiting_lora_adapters="c,a"} 5.0\n')
    assert parse_lora_info(waiting) == {"a,b,c": 5.0}


def test_split_rule() -> None:
    prev = {"support": 100.0, "legal": 90.0, "": 101.0}
    cur = {"support": 100.0, "legal": 120.0, "legal,support": 115.0, "": 130.0}
    assert active_sets(prev, cur) == [["legal"], ["legal", "support"]]  # moved or new; '' is no adapter
    inc = {"prompt_tokens": 300.0, "generation_tokens": 90.0}
    # legal in two sets, support in one: 2/3 and 1/3
    assert split(active_sets(prev, cur), inc) == {"legal": {"prompt_tokens": 200.0, "generation_tokens": 60.0},
                                                  "support": {"prompt_tokens": 100.0, "generation_tokens": 30.0}}
    assert split([], inc) == {NO_ADAPTER: inc}
    assert active_sets(None, {"a": 1.0}) == [["a"]]  # first scrape: everything the server has shown


T = "2026-11-02T"


def _scrapes(rid: str) -> list:
    """Six scrapes of one replica: one adapter per interval, then two at once, then the base model, then a restart."""
    pages = [
        (f"{T}00:00:00", page(0, 0, {})),
        (f"{T}01:00:00", page(1000, 400, {"support": 100.0, "": 101.0}, 4)),           # support only
        (f"{T}02:00:00", page(3000, 1000, {"support": 100.0, "": 201.0, "legal": 200.0}, 10)),  # legal only
        (f"{T}03:00:00", page(3600, 1300, {"support": 300.0, "": 301.0, "legal": 299.0}, 13)),  # both: halves
        (f"{T}04:00:00", page(4000, 1500, {"support": 300.0, "": 401.0, "legal": 299.0}, 15)),  # base model only
        (f"{T}05:00:00", page(500, 100, {"sales": 5.0, "": 6.0}, 1)),  # restarted: counters and gauge start over
    ]
    return [sample_from_text(rid, text, ts=ts(when)) for when, text in pages]


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    e = open_engine(path)
    # $1/h for 6 h -> $6; a deployment without LoRA beside it, $2/h for 1 h
    add_replica(e, "chat-0", deployment="chat", usd_per_hour=1.0, list_usd_per_hour=1.0,
                created_at=f"{T}00:00:00", terminated_at=f"{T}06:00:00")
    add_replica(e, "plain-0", deployment="plain", usd_per_hour=2.0, list_usd_per_hour=2.0,
                created_at=f"{T}00:00:00", terminated_at=f"{T}01:00:00")
    scrapes = _scrapes("chat-0")
    record_samples(e, scrapes[:3])  # the meter runs in rounds: the cursors carry the split across them
    record_samples(e, scrapes[3:])
    record_samples(e, [sample_from_text("plain-0", page(0, 0, None), ts=ts(f"{T}00:00:00")),
                       sample_from_text("plain-0", page(700, 300, None), ts=ts(f"{T}01:00:00"))])
    return path


def test_stored_split(db: Path) -> None:
    e = open_engine(db)
    usage = usage_by_adapter_day(e, ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"))
    day = int(ts(f"{T}00:00:00"))
    assert set(usage) == {("chat-0", day)}  # nothing for the replica without LoRA
    u = usage[("chat-0", day)]
    tok = {a: (v["prompt_tokens"], v["generation_tokens"]) for a, v in u.items()}
    assert tok == {
        "support": (1000 + 300, 400 + 150),
        "legal": (2000 + 300, 600 + 150),
        NO_ADAPTER: (400, 200),
        "sales": (500, 100),  # after the restart the new counters are the increase
    }
    assert u["support"]["requests"] == 4 + 1.5 and u["legal"]["requests"] == 6 + 1.5


def test_report_by_adapter(db: Path) -> None:
    res = CliRunner().invoke(app, ["report", "--state", str(db), "--no-sample", "--period", "2026-11", "--by", "adapter",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = {r["key"]: r for r in doc["rows"]}
    assert set(rows) == {"chat/support", "chat/legal", "chat/(no adapter)", "chat/sales", "plain/(no adapter)"}
    total_chat_tokens = 4000 + 1500 + 500 + 100
    for key, (i, o) in {"chat/support": (1300, 550), "chat/legal": (2300, 750), "chat/(no adapter)": (400, 200),
                        "chat/sales": (500, 100)}.items():
        r = rows[key]
        assert (r["input_tokens"], r["output_tokens"]) == pytest.approx((i, o))
        assert r["cost_usd"] == pytest.approx(6.0 * (i + o) / total_chat_tokens)  # cost follows the token share
        assert r["usd_per_m_tokens"] == pytest.approx(6.0 / total_chat_tokens * 1e6)
    assert rows["plain/(no adapter)"]["cost_usd"] == pytest.approx(2.0)
    assert doc["total"]["cost_usd"] == pytest.approx(8.0)
    assert doc["total"]["input_tokens"] == 4000 + 500 + 700
    assert any(n.startswith("tokens by adapter are an estimate") for n in doc["notes"])  # in the output itself
    # the table says it is an estimate
    table = CliRunner().invoke(app, ["report", "--state", str(db), "--no-sample", "--period", "2026-11", "--by",
                                     "adapter"])
    assert table.exit_code == 0, table.output
    assert "chat/support" in table.output and "tokens by adapter are an estimate" in table.output
