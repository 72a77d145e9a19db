"""`orch place` end to end: the JSON contract, --out, the table, objectives, and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def _run(*args: str):  # noqa: ANN202
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_json_follows_the_contract() -> None:
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["status"] == "optimal" and plan["objective"] == "cost"
    assert isinstance(plan["solve_seconds"], float)
    assert set(plan["total"]) >= {"usd_per_hour", "usd_per_month", "egress_usd_per_month"}
    (dep,) = plan["deployments"]
    assert dep["name"] == "support-chat"
    assert set(dep["predicted"]) >= {"ttft_p95_ms", "tpot_p95_ms", "capacity_rps", "usd_per_million_tokens"}
    assert dep["predicted"]["ttft_p95_ms"] <= 1500 and dep["predicted"]["tpot_p95_ms"] <= 50
    assert dep["predicted"]["capacity_rps"] >= 20 * 1.2  # demand x (1 + headroom)
    keys = {"provider", "region", "instance_type", "gpu", "gpus_per_replica", "tensor_parallel", "quantization", "market",
            "count", "usd_per_hour"}
    assert dep["replicas"] and all(keys <= set(g) for g in dep["replicas"])
    assert all(g["market"] in ("on_demand", "spot", "onprem") for g in dep["replicas"])
    assert dep["usd_per_hour"] == pytest.approx(sum(g["usd_per_hour"] for g in dep["replicas"]) + dep["egress_usd_per_month"] / 730, rel=1e-3)
    assert plan["total"]["usd_per_month"] == pytest.approx(plan["total"]["usd_per_hour"] * 730, rel=1e-3)
    assert "fallbacks" not in dep  # those go to --out


def test_out_writes_the_full_plan_with_fallbacks(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--out", str(out))
    assert r.exit_code == 0
    plan = Plan.model_validate_json(out.read_text())
    dep = plan.deployments[0]
    assert dep.fallbacks, "a ranked fallback for apply"
    chosen = {(g.region, g.instance_type, g.market) for g in dep.replicas}
    assert all({(g.region, g.instance_type, g.market) for g in fb} != chosen for fb in dep.fallbacks)
    assert len(plan.spec_sha256) == 64 and plan.catalog_as_of


def test_table_and_explanation_on_stdout() -> None:
    r = _run("place", str(EXAMPLES / "quickstart.yaml"))
    assert r.exit_code == 0
    assert "support-chat" in r.stdout and "total" in r.stdout and "per 1M tokens" in r.stdout
    assert "runner-up" in r.stdout


def test_latency_objective_reports_its_cost() -> None:
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--minimize", "latency", "--json")
    assert r.exit_code == 0
    plan = json.loads(r.stdout)
    assert plan["objective"] == "latency"
    assert "vs the cost-optimal plan" in plan["deployments"][0]["explanation"]["objective_tradeoff"]
    cost = json.loads(_run("place", str(EXAMPLES / "quickstart.yaml"), "--json").stdout)
    assert plan["deployments"][0]["predicted"]["ttft_p95_ms"] <= cost["deployments"][0]["predicted"]["ttft_p95_ms"]
    assert plan["total"]["usd_per_month"] >= cost["total"]["usd_per_month"]


def test_bad_objective_is_a_user_error() -> None:
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--minimize", "speed")
    assert r.exit_code == 1
    assert "--minimize must be one of" in r.output


@pytest.mark.parametrize("name", ["quickstart", "hybrid", "multi-region"])
def test_examples_place(name: str) -> None:
    r = _run("place", str(EXAMPLES / f"{name}.yaml"), "--json", "--no-fallbacks")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["status"] == "optimal"
    assert plan["solve_seconds"] < 5


def test_hybrid_keeps_patient_data_on_prem() -> None:
    plan = json.loads(_run("place", str(EXAMPLES / "hybrid.yaml"), "--json").stdout)
    deps = {d["name"]: d for d in plan["deployments"]}
    assert {g["provider"] for g in deps["claims-summarizer"]["replicas"]} == {"onprem"}
    used = sum(g["count"] * g["gpus_per_replica"] for d in deps.values() for g in d["replicas"] if g["provider"] == "onprem")
    assert used <= 16  # the site's inventory


def _proof_cut_short(monkeypatch, status: str) -> None:  # noqa: ANN001
    """Make every HiGHS run end as if its time limit stopped it: with its plan ("time_limit") or none ("timeout")."""
    from orchestrator.solver import stages

    real = stages._run

    def run(h, hs):  # noqa: ANN001, ANN202
        st = real(h, hs)
        return status if st == "optimal" else st

    monkeypatch.setattr(stages, "_run", run)


def test_a_time_limited_plan_is_feasible_with_its_gap(monkeypatch) -> None:  # noqa: ANN001
    _proof_cut_short(monkeypatch, "time_limit")
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--json", "--time-limit", "5")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["status"] == "feasible" and plan["gap"] >= 0 and plan["deployments"]
    assert any("time limit (5 s) reached" in m and "not proven optimal" in m for m in plan["messages"])


def test_no_plan_within_the_time_limit_exits_4_and_says_so(monkeypatch) -> None:  # noqa: ANN001
    _proof_cut_short(monkeypatch, "timeout")
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--time-limit", "0.5")
    assert r.exit_code == 4  # no plan: not the bad-input code (issue 20, item 19)
    assert "no plan found within the time limit (0.5 s; building the candidates took" in r.output
    assert "infeasible" not in r.output.lower()


def test_fallbacks_stop_at_their_deadline_and_say_so(monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    from orchestrator.placement import fallbacks

    real = fallbacks._fallbacks
    monkeypatch.setattr(fallbacks, "_fallbacks", lambda inp, sol, results, d, objective, deadline, short, *rest:
                        real(inp, sol, results, d, objective, 0.0, short, *rest))  # a deadline long past
    out = tmp_path / "plan.json"
    r = _run("place", str(EXAMPLES / "quickstart.yaml"), "--out", str(out))
    assert r.exit_code == 0, r.output
    plan = Plan.model_validate_json(out.read_text())
    assert plan.status == "optimal" and not plan.deployments[0].fallbacks
    assert any("fallbacks cut short for support-chat" in m for m in plan.messages)


def test_long_user_strings_are_clipped_in_the_printed_plan(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 20, item 3: a 100,000-character residency pattern once took 58-91 s to print (rich highlighting it)."""
    import subprocess
    import sys
    from pathlib import Path

    pattern = "aws:" + "x" * 100_000
    spec = tmp_path / "long.yaml"
    spec.write_text(f"""version: 1
project: p
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {{requests_per_second: 2, input_tokens: 500, output_tokens: 200}}
    slo: {{ttft_p95_ms: 2000, tpot_p95_ms: 60}}
    policies: [res]
policies:
  res: {{kind: residency, regions: ["aws:us-*", "{pattern}"]}}
""")
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "place", str(spec)], capture_output=True,
                       text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) < 20_000 and "more characters)" in r.stdout


def test_an_infeasible_file_exits_4_not_the_bad_input_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (EXAMPLES / "quickstart.yaml").read_text()
    providers = text.index("providers:")
    spec = tmp_path / "no-quota.yaml"  # valid, but every GPU it may use is over quota
    spec.write_text(text[:providers] + "providers:\n  aws: {regions: [us-east-1], quotas: [{max_gpus: 0}]}\n")
    assert _run("validate", str(spec)).exit_code == 0
    r = _run("place", str(spec))
    assert r.exit_code == 4 and "no feasible plan" in r.output


def test_absurd_demand_gets_a_warning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 20, item 4: 1e9 requests/s gave 20 million B200s at $209 B/month, exit 0 and no word about it."""
    spec = tmp_path / "absurd.yaml"
    spec.write_text((EXAMPLES / "quickstart.yaml").read_text().replace("requests_per_second: 20 ",
                                                                       "requests_per_second: 1e9 "))
    r = _run("place", str(spec))
    assert r.exit_code == 0 and "warning: support-chat needs" in r.stderr and "check requests_per_second" in r.stderr
    assert "warning" not in _run("place", str(EXAMPLES / "quickstart.yaml")).stderr
