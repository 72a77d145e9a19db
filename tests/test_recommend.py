"""`orch recommend`: a deployment that ran at ~10 % of its planned load is re-placed cheaper and still meets its SLOs;
the saving is the difference of the two plans' costs; --json; --write gives a file validate accepts; no data; errors.

State is built as apply leaves it: the plan in the plans table, one replicas row per planned replica (and gateway)
at the plan's prices, and vLLM counters recorded by the meter's own store (record_samples)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from orchestrator.placement.candidates import HOURS_PER_MONTH
from orchestrator.cli.main import app
from orchestrator.metering.scrape import COUNTERS, GAUGES, Sample
from orchestrator.metering.store import open_engine, record_samples
from orchestrator.placement import place
from orchestrator.recommend import recommend
from orchestrator.spec.loader import load_spec

runner = CliRunner()
DAY = 86400.0
NOW = datetime(2026, 12, 4, tzinfo=timezone.utc).timestamp()
PLANNED_RPS = 40.0
MEASURED_RPS = 4.0  # ~10 % of the plan
IN_TOKENS, OUT_TOKENS = 900, 200  # measured; the file says 1000 / 250
WINDOW = ("--since", "2026-11-27", "--until", "2026-12-03")  # the CLI's default is the last 7 days of the clock

SPEC = """\
# acme: two deployments; chat was planned for 40 req/s
version: 1
project: acme
deployments:
  - name: chat                    # the one that idles
    model: llama-3.1-8b-instruct
    quantization: [bf16]
    traffic:
      requests_per_second: 40     # planned demand
      input_tokens: 1000          # mean prompt
      output_tokens: 250
      headroom: 0.2
      sources:
        - {region: aws:us-east-1, share: 0.7}
        - {region: aws:us-east-2, share: 0.3}
    slo: {ttft_p95_ms: 1500, tpot_p95_ms: 60}
    team: support
  - name: rag                     # nothing metered
    model: llama-3.1-8b-instruct
    traffic: {requests_per_second: 5, input_tokens: 2000, output_tokens: 200}
    slo: {ttft_p95_ms: 2000, tpot_p95_ms: 80}
providers:
  aws: {regions: [us-east-1, us-east-2]}
"""


def _apply_to_state(engine, plan, plan_id: str = "p1") -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """What apply records: the plan, a row per replica and gateway at the plan's prices. deployment -> replica ids."""
    from orchestrator.state.models import PlanRecord, Replica

    started = datetime.fromtimestamp(NOW - 10 * DAY, timezone.utc)
    ids: dict[str, list[str]] = {}
    with engine.begin() as c:
        c.execute(insert(PlanRecord.__table__).values(id=plan_id, project=plan.project, created_at=started,
                                                      spec_sha256=plan.spec_sha256, plan=plan.model_dump(mode="json")))
        for d in plan.deployments:
            rows = []
            for gi, g in enumerate(d.replicas):
                for i in range(g.count):
                    rid = f"{d.name}-{gi}-{i}"
                    ids.setdefault(d.name, []).append(rid)
                    rows.append(dict(id=rid, instance_type=g.instance_type, gpu=g.gpu, gpu_count=g.gpus_per_replica,
                                     region=g.region, provider=g.provider, market=g.market,
                                     usd_per_hour=g.usd_per_hour / g.count, list_usd_per_hour=g.usd_per_hour / g.count,
                                     details={"quantization": g.quantization, "hf_id": d.hf_id}))
            for gi, gw in enumerate(d.gateways):
                rows.append(dict(id=f"{d.name}-gw-{gi}", instance_type=gw.instance_type, gpu="", gpu_count=0,
                                 region=gw.region, provider=gw.provider, market="on_demand",
                                 usd_per_hour=gw.usd_per_hour, list_usd_per_hour=gw.usd_per_hour,
                                 details={"role": "gateway", "users": gw.users, "upstream": gw.upstream}))
            for r in rows:
                c.execute(insert(Replica.__table__).values(
                    project=plan.project, deployment=d.name, team=d.team, model=d.model, plan_id=plan_id,
                    group_key="g", endpoint=None, status="running", created_at=started, **r))
    return ids


def _meter(engine, replica_ids: list[str], rps: float, days: float = 7, step: float = 1800,  # type: ignore[no-untyped-def]
           in_tokens: int = IN_TOKENS) -> None:
    """Counters of ``rps`` requests/s in all over the replicas, scraped every ``step`` seconds for ``days``."""
    per = rps / len(replica_ids)
    samples = []
    for rid in replica_ids:
        t = NOW - days * DAY
        while t <= NOW:
            n = per * (t - (NOW - days * DAY))
            counters = dict.fromkeys(COUNTERS, 0.0) | {"requests": n, "prompt_tokens": n * in_tokens,
                                                        "generation_tokens": n * OUT_TOKENS}
            samples.append(Sample(rid, t, ok=True, counters=counters, gauges=dict.fromkeys(GAUGES, 0.0)))
            t += step
    record_samples(engine, samples, retention_s=1e9)


def _build(tmp_path: Path, spec: str = SPEC, rps: float = MEASURED_RPS, in_tokens: int = IN_TOKENS):  # type: ignore[no-untyped-def]
    """The file placed and applied (into state), then chat metered at ``rps``."""
    spec_file = tmp_path / "deploy.yaml"
    spec_file.write_text(spec, encoding="utf-8")
    plan = place(load_spec(spec_file), "cost", with_fallbacks=False)
    assert plan.status == "optimal"
    db = tmp_path / "state.db"
    engine = open_engine(db)
    ids = _apply_to_state(engine, plan)
    _meter(engine, ids["chat"], rps, in_tokens=in_tokens)
    return spec_file, db, engine, plan


@pytest.fixture()
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    return _build(tmp_path)


def test_idle_deployment_gets_a_cheaper_plan_that_meets_its_slos(world) -> None:  # type: ignore[no-untyped-def]
    spec_file, _, engine, plan = world
    recs = {r.deployment: r for r in recommend(load_spec(spec_file), engine, NOW - 7 * DAY, NOW, NOW)}
    chat = recs["chat"]
    m = chat.measured
    assert m.mean_rps == pytest.approx(MEASURED_RPS, rel=1e-6) and m.peak_rps == pytest.approx(MEASURED_RPS, rel=1e-6)
    assert (m.input_tokens, m.output_tokens) == (IN_TOKENS, OUT_TOKENS)
    # the current configuration is what runs, priced as the plan priced it
    old = next(d for d in plan.deployments if d.name == "chat")
    old_per_hour = old.usd_per_hour + sum(g.usd_per_hour for g in old.gateways)
    assert chat.current.replicas == sum(g.count for g in old.replicas)
    assert chat.current.usd_per_hour == pytest.approx(old_per_hour, abs=1e-3)
    # the recommendation is the placement at the measured traffic: the same as placing an edited file
    edited = SPEC.replace("requests_per_second: 40", "requests_per_second: 4").replace(
        "input_tokens: 1000", "input_tokens: 900").replace("output_tokens: 250", "output_tokens: 200")
    (spec_file.parent / "edited.yaml").write_text(edited, encoding="utf-8")
    new = next(d for d in place(load_spec(spec_file.parent / "edited.yaml"), "cost", with_fallbacks=False).deployments
               if d.name == "chat")
    new_per_hour = new.usd_per_hour + sum(g.usd_per_hour for g in new.gateways)
    assert chat.recommended.usd_per_hour == pytest.approx(new_per_hour, abs=1e-3)
    assert chat.recommended.gpus < chat.current.gpus
    # the saving is the difference of the two plans' costs, both per month the same way
    assert chat.monthly_saving_usd > 0
    assert chat.monthly_saving_usd == pytest.approx(chat.current_usd_per_month - chat.recommended_usd_per_month, abs=0.006)
    assert chat.monthly_saving_usd == pytest.approx((old_per_hour - new_per_hour) * HOURS_PER_MONTH, abs=0.2)
    # still meets its SLOs, with the headroom asked over the measured load
    s = chat.slo_margin
    assert s["meets_slo"] and s["ttft_p95_ms"] <= 1500 and s["tpot_p95_ms"] <= 60
    assert s["capacity_rps"] >= MEASURED_RPS * 1.2 - 1e-6 and s["capacity_over_peak"] >= 0.2 - 1e-3
    assert "save $" in chat.note


def test_no_data_gets_a_note_and_no_recommendation(world) -> None:  # type: ignore[no-untyped-def]
    spec_file, _, engine, _ = world
    rag = next(r for r in recommend(load_spec(spec_file), engine, NOW - 7 * DAY, NOW, NOW) if r.deployment == "rag")
    assert rag.recommended is None and rag.monthly_saving_usd is None and rag.measured is None
    assert "no metered requests" in rag.note
    assert rag.current is not None and rag.current_usd_per_month > 0  # it runs: say what it costs
    # a deployment state runs but the file lacks is said, not re-placed; a file of another project finds nothing
    from orchestrator.state.models import Replica

    with engine.begin() as c:
        c.execute(insert(Replica.__table__).values(
            id="old-0", project="acme", deployment="old", model="m", provider="aws", region="aws:us-east-1",
            instance_type="g6.xlarge", gpu="L4", gpu_count=1, market="on_demand", usd_per_hour=0.8, plan_id="p0",
            group_key="g", status="running", created_at=datetime.fromtimestamp(NOW - DAY, timezone.utc), details={}))
    old = recommend(load_spec(spec_file), engine, NOW - 7 * DAY, NOW, NOW)[-1]
    assert old.deployment == "old" and old.recommended is None and old.current_usd_per_month == pytest.approx(584)
    assert "has no such deployment: not re-placed" in old.note
    other = spec_file.parent / "other.yaml"
    other.write_text(SPEC.replace("project: acme", "project: beta"), encoding="utf-8")
    assert all("state has no replica of project 'beta'" in r.note
               for r in recommend(load_spec(other), engine, NOW - 7 * DAY, NOW, NOW))


def test_json_shape(world) -> None:  # type: ignore[no-untyped-def]
    spec_file, db, _, _ = world
    r = runner.invoke(app, ["recommend", str(spec_file), "--json", "--state", str(db), *WINDOW],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["start"] == "2026-11-27T00:00:00Z" and data["end"] == "2026-12-04T00:00:00Z"
    recs = {x["deployment"]: x for x in data["recommendations"]}
    assert set(recs) == {"chat", "rag"}
    chat = recs["chat"]
    assert set(chat) >= {"current", "recommended", "current_usd_per_month", "recommended_usd_per_month",
                         "monthly_saving_usd", "slo_margin", "note", "measured"}
    for side in ("current", "recommended"):
        assert set(chat[side]) >= {"groups", "replicas", "gpus", "usd_per_hour", "usd_per_month"}
        assert all({"instance_type", "gpu", "count", "usd_per_hour"} <= set(g) for g in chat[side]["groups"])
    assert chat["monthly_saving_usd"] == pytest.approx(
        chat["current_usd_per_month"] - chat["recommended_usd_per_month"], abs=0.006)
    assert chat["measured"]["requests_per_second"] == pytest.approx(MEASURED_RPS)
    assert recs["rag"]["recommended"] is None and "no metered" in recs["rag"]["note"]


def test_text_output(world) -> None:  # type: ignore[no-untyped-def]
    spec_file, db, _, _ = world
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), *WINDOW], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "current:" in r.stdout and "recommended:" in r.stdout and "SLO margin" in r.stdout
    assert "no metered requests" in r.stdout and "total: save $" in r.stdout


def test_write_gives_a_valid_file_with_the_measured_traffic(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec_file, db, _, _ = world
    out = tmp_path / "measured.yaml"
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "--write", str(out), *WINDOW],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    new = {d.name: d for d in load_spec(out).spec.deployments}
    old = {d.name: d for d in load_spec(spec_file).spec.deployments}
    t = new["chat"].traffic
    assert (t.requests_per_second, t.input_tokens, t.output_tokens) == (MEASURED_RPS, IN_TOKENS, OUT_TOKENS)
    # user regions from the gateways: each gateway's users are served by its upstream replicas
    assert sum(s.share for s in t.sources) == pytest.approx(1.0)
    assert {s.region for s in t.sources} <= {"aws:us-east-1", "aws:us-east-2"}
    assert new["rag"].traffic == old["rag"].traffic  # no data: unchanged
    assert new["chat"].slo == old["chat"].slo and t.headroom == old["chat"].traffic.headroom
    text = out.read_text()
    assert "# the one that idles" in text and "# planned demand" in text  # comments kept
    assert text.replace("requests_per_second: 4.0", "").count("\n") == SPEC.count("\n")  # layout kept


def test_unknown_deployment_and_bad_path_are_located_errors(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec_file, db, _, _ = world
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "-d", "chta"])
    assert r.exit_code == 1
    assert f"{spec_file}:4:1: deployments: no deployment named 'chta' (did you mean \"chat\"?)" in r.output
    r = runner.invoke(app, ["recommend", str(tmp_path / "nope.yaml"), "--state", str(db)])
    assert r.exit_code == 1 and "nope.yaml: file not found" in r.output
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "--rate", "max"])
    assert r.exit_code == 1 and "--rate must be one of peak, mean" in r.output
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "--write", str(tmp_path / "no" / "x.yaml")])
    assert r.exit_code == 1 and "x.yaml: cannot write: No such file or directory" in r.output
    assert "Traceback" not in r.output


def test_a_load_no_plan_meets_exits_4_and_says_why(tmp_path: Path) -> None:
    quota = "aws: {regions: [us-east-1, us-east-2], quotas: [{max_gpus: 12}]}"
    spec_file, db, _, _ = _build(tmp_path, SPEC.replace("aws: {regions: [us-east-1, us-east-2]}", quota), rps=4000)
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "--json", *WINDOW], catch_exceptions=False)
    assert r.exit_code == 4, r.output
    chat = next(x for x in json.loads(r.stdout)["recommendations"] if x["deployment"] == "chat")
    assert chat["recommended"] is None and chat["note"].startswith("no plan meets the measured load: ")
    assert chat["measured"]["requests_per_second"] == pytest.approx(4000)


def test_measured_traffic_the_checks_refuse_is_not_placed_nor_written(tmp_path: Path) -> None:
    spec_file, db, engine, _ = _build(tmp_path, in_tokens=200_000)  # prefill alone takes longer than the TTFT SLO
    chat = next(r for r in recommend(load_spec(spec_file), engine, NOW - 7 * DAY, NOW, NOW) if r.deployment == "chat")
    assert chat.recommended is None and chat.measured.input_tokens == 200_000
    assert chat.note.startswith("the measured traffic fails the file's checks (ttft_p95_ms 1500 is below what any GPU")
    out = tmp_path / "out.yaml"
    r = runner.invoke(app, ["recommend", str(spec_file), "--state", str(db), "--write", str(out), *WINDOW],
                      catch_exceptions=False)
    assert r.exit_code == 0 and load_spec(out).spec.deployments[0].traffic.input_tokens == 1000  # unchanged


def test_one_load_without_a_plan_does_not_stop_the_others(tmp_path: Path) -> None:
    spec_file, _, engine, plan = _build(tmp_path, in_tokens=120_000)  # passes the checks; no plan in these regions
    rag_ids = [f"rag-{gi}-{i}" for d in plan.deployments if d.name == "rag" for gi, g in enumerate(d.replicas)
               for i in range(g.count)]
    _meter(engine, rag_ids, 0.5)
    recs = {r.deployment: r for r in recommend(load_spec(spec_file), engine, NOW - 7 * DAY, NOW, NOW)}
    assert recs["chat"].recommended is None and recs["chat"].note.startswith("no plan meets the measured load: ")
    rag = recs["rag"]
    assert rag.recommended is not None and rag.measured.requests_per_second == pytest.approx(0.5)
    assert "placed with the other deployments at their file traffic" in rag.note
    assert rag.slo_margin["meets_slo"] and rag.slo_margin["capacity_rps"] >= 0.5 * 1.2 - 1e-6


def test_peak_and_mean_against_hand_arithmetic(tmp_path: Path) -> None:
    """Two replicas in parallel: 1 req/s each for 3 hours, then 4 req/s each for one hour (hourly scrapes)."""
    from orchestrator.measured import measure
    from orchestrator.metering.store import replicas

    spec_file = tmp_path / "deploy.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")
    engine = open_engine(tmp_path / "state.db")
    plan = place(load_spec(spec_file), "cost", with_fallbacks=False)
    ids = _apply_to_state(engine, plan)["chat"][:2]
    t0 = NOW - 4 * 3600 - 60  # each scrape ends an interval in its own UTC hour, the last one before NOW
    samples = []
    for rid in ids:
        for h, n in enumerate([0, 3600, 7200, 10800, 10800 + 4 * 3600]):
            counters = dict.fromkeys(COUNTERS, 0.0) | {"requests": n, "prompt_tokens": n * 500, "generation_tokens": n * 50}
            samples.append(Sample(rid, t0 + h * 3600, ok=True, counters=counters, gauges=dict.fromkeys(GAUGES, 0.0)))
    record_samples(engine, samples, retention_s=1e9)
    rows = [r for r in replicas(engine) if r.project == "acme"]
    spec = load_spec(spec_file).spec
    m = measure(engine, rows, spec, NOW - DAY, NOW, "peak")["chat"]
    # 2 replicas x (3 h x 1 + 1 h x 4) req/s x 3600 s over 4 metered hours
    assert m.requests == 2 * (3 + 4) * 3600 and m.metered_hours == 4
    assert m.mean_rps == pytest.approx(2 * 7 / 4) and m.peak_rps == pytest.approx(8)
    assert (m.input_tokens, m.output_tokens, m.requests_per_second) == (500, 50, 8)
    assert measure(engine, rows, spec, NOW - DAY, NOW, "mean")["chat"].requests_per_second == pytest.approx(3.5)
    assert measure(engine, rows, spec, NOW - 3600, NOW, "peak")["chat"].mean_rps == pytest.approx(8)  # last hour only
    assert measure(engine, rows, spec, NOW - 3 * DAY, NOW - 2 * DAY, "peak") == {}  # nothing metered then


def test_user_regions_follow_the_gateways_routes() -> None:
    from types import SimpleNamespace

    from orchestrator.measured import user_shares

    def gw(users, upstream):  # type: ignore[no-untyped-def]
        return SimpleNamespace(region=upstream[0], details={"role": "gateway", "users": users, "upstream": upstream})

    file = {"aws:us-east-1": 0.5, "aws:eu-west-1": 0.5}
    served = {"aws:us-east-1": 300.0, "aws:eu-west-1": 100.0}
    assert user_shares(served, [gw(["aws:us-east-1"], ["aws:us-east-1"]), gw(["aws:eu-west-1"], ["aws:eu-west-1"])],
                       file) == [{"region": "aws:us-east-1", "share": 0.75}, {"region": "aws:eu-west-1", "share": 0.25}]
    # one region upstream of both gateways: its requests split as the file's shares are (here 50/50)
    both = [gw(["aws:us-east-1"], ["aws:us-east-1"]), gw(["aws:eu-west-1"], ["aws:eu-west-1", "aws:us-east-1"])]
    assert user_shares(served, both, file) == [{"region": "aws:us-east-1", "share": 0.375},
                                              {"region": "aws:eu-west-1", "share": 0.625}]
    assert user_shares(served, [gw([], ["aws:us-east-1"])], file) is None  # a gateway for "all users": no split
