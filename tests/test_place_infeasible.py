"""Infeasible deployment files: the message names the deployment, the constraint, the line, and the way out."""

from __future__ import annotations

import textwrap

from orchestrator.placement import place
from orchestrator.spec.loader import load_spec_text


def _spec(deployment: str, extra: str = "", providers: str = "  aws: {regions: [us-east-1, eu-west-1]}\n") -> str:
    return "version: 1\nproject: t\ndeployments:\n" + textwrap.indent(textwrap.dedent(deployment), "  ") + \
        "providers:\n" + providers + textwrap.dedent(extra)


CHAT = """\
- name: chat
  model: llama-3.1-8b
  traffic: {requests_per_second: %(rps)s, input_tokens: 1000, output_tokens: 200, sources: [{region: %(users)s, share: 1.0}]}
  slo: {ttft_p95_ms: %(ttft)s, tpot_p95_ms: %(tpot)s}
"""


def _plan(text: str):  # noqa: ANN202
    loaded = load_spec_text(text, "deploy.yaml", check=False)
    return place(loaded, "cost", with_fallbacks=False)


def _chat(rps: float = 10, users: str = "aws:us-east-1", ttft: float = 2000, tpot: float = 60) -> str:
    return CHAT % {"rps": rps, "users": users, "ttft": ttft, "tpot": tpot}


def test_feasible_baseline() -> None:
    assert _plan(_spec(_chat())).status == "optimal"


def test_tpot_below_any_gpu_names_the_field_and_line() -> None:
    plan = _plan(_spec(_chat(tpot=1)))
    assert plan.status == "infeasible"
    msg = "\n".join(plan.messages)
    assert "deploy.yaml:7" in msg and "tpot_p95_ms" in msg
    assert "TPOT 1 ms is below what any offered GPU reaches" in msg


def test_ttft_against_far_users_reports_the_round_trip() -> None:
    plan = _plan(_spec(_chat(users="aws:ap-southeast-2", ttft=150)))
    assert plan.status == "infeasible"
    msg = "\n".join(plan.messages)
    assert "ttft_p95_ms" in msg and "chat" in msg
    assert "RTT" in msg


def test_budget_says_what_the_plan_needs() -> None:
    plan = _plan(_spec(_chat(rps=40), extra="budget: {monthly_usd: 100}\n"))
    assert plan.status == "infeasible"
    (msg,) = plan.messages
    assert "deploy.yaml:" in msg and "budget" in msg and "needs $" in msg and "the budget is $100/month" in msg


def test_quota_says_how_many_more_gpus() -> None:
    providers = "  aws:\n    regions: [us-east-1]\n    quotas: [{max_gpus: 1}]\n"
    plan = _plan(_spec(_chat(rps=200), providers=providers))
    assert plan.status == "infeasible"
    msg = "\n".join(plan.messages)
    assert "aws quota" in msg and "more would make it feasible" in msg and "quotas" in msg


def test_residency_leaving_nothing_points_at_the_policies() -> None:
    dep = _chat() + "  policies: [asia-only]\n"
    extra = "policies:\n  asia-only: {kind: residency, regions: ['aws:ap-*']}\n"
    plan = _plan(_spec(dep, extra=extra))
    assert plan.status == "infeasible"
    msg = "\n".join(plan.messages)
    assert "policies" in msg and "residency (asia-only)" in msg


def test_model_that_fits_nowhere() -> None:
    dep = _chat().replace("llama-3.1-8b", "llama-3.1-405b")
    plan = _plan(_spec(dep, providers="  aws: {regions: [us-east-1]}\n  gcp: {regions: [us-central1]}\n").replace("g6e", "g6e"))
    # 405B in bf16 needs 16 x 80 GB GPUs: multi-node H100 nodes make it fit, so it is feasible or it names memory
    if plan.status == "infeasible":
        assert any("fits" in m or "TPOT" in m or "TTFT" in m for m in plan.messages)
