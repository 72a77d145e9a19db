"""--time-limit bounds the whole placement (candidates, solve, cost reference, fallbacks), and a run longer than a
second shows its stages on stderr."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import orchestrator.placement.pipeline as placement
from orchestrator.cli.progress import Progress
from orchestrator.placement import fallbacks
from orchestrator.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _spy_solves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float, float | None]]:
    calls: list[tuple[float, float, float | None]] = []
    real = placement.solve

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((time.perf_counter(), kwargs["time_limit"], kwargs.get("hard_deadline")))
        return real(*args, **kwargs)

    monkeypatch.setattr(placement, "solve", spy)
    monkeypatch.setattr(fallbacks, "solve", spy)  # the plans B solve too
    return calls


def test_every_solve_is_given_only_what_is_left_of_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_solves(monkeypatch)
    limit = 20.0
    loaded = load_spec(EXAMPLES / "multi-region.yaml")
    t0 = time.perf_counter()
    plan = placement.place(loaded, "latency", time_limit=limit)
    assert plan.status in ("optimal", "feasible")
    # the main solve, the cost reference (another objective) and the fallbacks: all inside the one limit
    assert len(calls) > 3
    for started, given, hard in calls:
        assert started + given <= t0 + limit + 1e-6
        assert hard is None or hard <= t0 + limit + 1e-6
    main = calls[0]
    assert main[2] is not None and main[1] < limit  # less than the whole limit: candidates took their share


def test_candidates_that_use_up_the_limit_end_the_run_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real = placement.build_inputs

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real(*args, **kwargs)
        time.sleep(1.5)  # as a catalog of tens of thousands of offerings would take
        return out

    monkeypatch.setattr(placement, "build_inputs", slow)
    t0 = time.perf_counter()
    plan = placement.place(load_spec(EXAMPLES / "multi-region.yaml"), "cost", time_limit=1.0)
    took = time.perf_counter() - t0
    if plan.status == "timeout":  # nothing left for the solve: said so, with where the time went
        assert "building the candidates took" in plan.messages[0] and "raise --time-limit" in plan.messages[0]
    else:  # the least time a solve gets was enough for a plan: its fallbacks had none left
        assert any("fallbacks cut short" in m for m in plan.messages)
    assert took < 1.5 + 5.0  # no second full limit for fallbacks (this used to add as long again)


def test_the_stages_are_told_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    placement.place(load_spec(EXAMPLES / "multi-region.yaml"), "latency", progress=seen.append)
    firsts = [s.split(" ")[0] for s in seen]
    assert firsts == ["building", "solving", "solving", "ranking", "explaining"]
    assert "candidates" in seen[1]


def test_progress_is_silent_for_a_quick_run_and_prints_stages_for_a_long_one() -> None:
    lines: list[str] = []
    with Progress(lines.append, quiet_s=0.2) as p:
        p.tell("building")
        p.tell("solving")
    assert lines == []
    with Progress(lines.append, quiet_s=0.05) as p:
        p.tell("building")
        time.sleep(0.3)
        p.tell("solving")
    assert [ln.split()[-1] for ln in lines] == ["building…", "solving…"]
    assert lines[0].strip().startswith("0.") and " s " in lines[0]
