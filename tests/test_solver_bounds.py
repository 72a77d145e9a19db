"""The per-candidate lower bounds of bounds.py hold for every optimal plan, and pruning by them (after a solve over
a short list for the upper bound) keeps each deployment's optimum."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from orchestrator.placement.candidates import HOURS_PER_MONTH
from orchestrator.solver import narrowing, stages
from orchestrator.solver import solve as solve_mod
from orchestrator.solver.bounds import lower_bounds
from orchestrator.placement.inputs import build_inputs
from orchestrator.solver.problem import SolverInput
from orchestrator.solver.strategy import DEFAULT, SolveStrategy
from support.synthetic import LoadedStub, SpecStub, candidate, deployment, offering, random_catalog, random_spec
from policies.base import make_policy


def _deployments(seed: int) -> list:
    """Random deployments with spot floors and spread, data egress to most regions, several user regions."""
    cat = random_catalog(400, seed, regions_per_100=5)
    spec = random_spec(6, list(cat.regions), seed)
    return [d for d in build_inputs(LoadedStub(spec), cat).problem.deployments if len(d.candidates) >= 3]


def _alone(d):  # noqa: ANN001, ANN202
    return stages._solve_full(SolverInput([d], [], []), "cost", tie_break=False)


@pytest.mark.parametrize("seed", range(3))
def test_no_candidate_of_an_optimal_plan_has_a_bound_above_the_optimum(seed: int) -> None:
    checked = 0
    for d in _deployments(seed):
        best = _alone(d)
        if not best.ok:
            continue
        for grid in (16, 128, 1024):
            lb = lower_bounds(d, grid)
            used = [lb[i] for i, c in enumerate(d.candidates) if c in best.units]
            assert max(used) <= best.values["cost"] * (1 + 1e-6), (d.name, grid)
        checked += 1
    assert checked >= 3


# short lists even for these small deployments
SMALL_SHORT_LISTS = SolveStrategy(short_from=8, short_list=4)


def _narrow_checked(seed: int) -> int:
    """Narrow each random deployment, check that its optimum survives, and count those the short list proves."""
    dropped = proven = 0
    for d in _deployments(seed):
        full = _alone(d)
        n = narrowing._narrow(d, 10.0, SMALL_SHORT_LISTS)
        kept = set(n.sub.candidates)
        assert set(n.short.units if n.short is not None else n.start) <= kept  # the start plan survives its own bound
        narrowed = _alone(n.sub)
        assert narrowed.status == full.status
        if full.ok:
            assert narrowed.values["cost"] == pytest.approx(full.values["cost"], rel=2e-4)
            if n.proven:  # no second solve: the short list's plan is the optimum
                assert n.short.values["cost"] == pytest.approx(full.values["cost"], rel=2e-4)
                proven += 1
        dropped += len(d.candidates) - len(n.sub.candidates)
    assert dropped > 0
    return proven


@pytest.mark.parametrize("seed", range(3))
def test_narrowing_keeps_each_deployments_optimum(seed: int) -> None:
    _narrow_checked(seed)


def test_some_deployments_are_proven_by_their_short_list() -> None:
    """Where every candidate the bounds keep was on the short list, its plan is the deployment's optimum."""
    assert sum(_narrow_checked(seed) for seed in range(3)) >= 1


def test_a_proven_plan_gets_only_the_tie_break_stage() -> None:
    """Given a plan proven optimal on the same input, the solve keeps its cost and runs no primary stage."""
    d = next(d for d in _deployments(0) if len(d.candidates) > 4)
    inp = SolverInput([d], [], [])
    first = stages._solve_full(inp, "cost", tie_break=False)
    assert first.ok
    again = stages._solve_full(inp, "cost", warm=stages.WarmStart(proven=first))
    assert again.ok and again.values["cost"] == pytest.approx(first.values["cost"], rel=stages.LEX_TOL)
    assert again.values["latency"] <= first.values["latency"] * (1 + 1e-9) + 1e-9  # the tie-break can only help


def test_a_spot_unit_pays_for_a_second_spot_region() -> None:
    """One spot unit covers the demand, but spot needs two regions: the bound of a spot unit adds the data egress
    of the other spot region (the home region has no spot) and a spot unit there, though its own unit covers it all:
    here that is the optimum."""
    free, cheap, dear = offering("aws:home", 9.0, spot=None), offering("aws:a", 9.0, spot=1.0), offering("aws:b", 9.0, spot=1.0)
    cands = [candidate("d", free, 10.0), candidate("d", cheap, 10.0, market="spot"),
             candidate("d", dear, 10.0, market="spot")]
    dep = deployment("d", 10.0, cands, policies=[make_policy("spot", "spot", {"on_demand_floor": 0.0})],
                     spec=SpecStub("d", "allow"), data_egress={"aws:a": 300.0, "aws:b": 500.0})
    SolverInput([dep])  # numbers the candidates
    lb = lower_bounds(dep)
    hour = HOURS_PER_MONTH
    assert lb[0] == pytest.approx(9.0 * hour)  # on-demand at home covers everything: nothing more to pay
    assert lb[1] == pytest.approx(2 * 1.0 * hour + 300.0 + 500.0)  # its own region, and a unit in the other one
    assert lb[2] == pytest.approx(2 * 1.0 * hour + 500.0 + 300.0)
    plan = _alone(dep)  # a spot unit in each region: 2 x 730 + 800
    assert plan.ok and plan.values["cost"] == pytest.approx(2 * 1.0 * hour + 800.0)


def test_the_rest_pays_a_region_when_near_regions_cannot_answer_every_user_region() -> None:
    """Users far from c's region and the free ones must be served from a further region, which pays its data."""
    home, near_users = offering("aws:home", 2.0), offering("aws:far", 2.0)
    cands = [candidate("d", home, 5.0), candidate("d", near_users, 5.0)]
    dep = deployment("d", 8.0, cands, sources=(("u-home", 0.5), ("u-far", 0.5)),
                     rtt={("u-home", "aws:far"): 900.0, ("u-far", "aws:home"): 900.0}, ttft_slo_ms=500.0,
                     data_egress={"aws:far": 400.0})
    SolverInput([dep])
    lb = lower_bounds(dep)
    assert lb[0] == pytest.approx(2 * 2.0 * HOURS_PER_MONTH + 400.0)  # the far users need aws:far too
    assert np.all(lb <= _alone(dep).values["cost"] * (1 + 1e-9))


def test_each_user_region_needs_units_that_answer_it() -> None:
    """Half the users reach only aws:home, half only aws:far: a home unit's bound buys the far half at aws:far, not
    the cheaper home units that cannot answer it."""
    home, far = offering("aws:home", 2.0), offering("aws:far", 3.0)
    cands = [candidate("d", home, 5.0), candidate("d", far, 5.0)]
    dep = deployment("d", 8.0, cands, sources=(("u-home", 0.5), ("u-far", 0.5)),
                     rtt={("u-home", "aws:far"): 900.0, ("u-far", "aws:home"): 900.0}, ttft_slo_ms=500.0)
    SolverInput([dep])
    lb = lower_bounds(dep)
    assert lb[0] == pytest.approx((2.0 + 3.0) * HOURS_PER_MONTH)  # one unit each side: the optimum
    assert np.all(lb <= _alone(dep).values["cost"] * (1 + 1e-9))


def test_the_cheapest_set_of_paid_regions_that_answers_the_users_left() -> None:
    """Users u0, u1, u2; the free region answers u0. From the free region the cheapest cover of u1 and u2 is b
    (150, not a + c at 160); from a, c (60); b needs nothing more; from c, a (100)."""
    from orchestrator.solver.bounds import _cover_charges

    #                      free   a      b      c
    answered = np.array([[True, False, False, False],   # u0
                         [False, True, True, False],    # u1
                         [False, False, True, True]])   # u2
    charges = _cover_charges(answered, np.array([0.0, 100.0, 150.0, 60.0]), np.array([True, False, False, False]))
    assert charges.tolist() == [150.0, 60.0, 0.0, 100.0]


def test_a_whole_plan_as_start_comes_back_even_when_time_is_short() -> None:
    """A plan from another model of the same deployment (the short list, an earlier pass) is handed to HiGHS with its
    traffic and regions, so even the least time a deployment gets returns a plan no dearer than it (HiGHS's own
    first plan can be several times dearer, and completing a start from its units alone can take longer)."""
    checked = 0
    for d in _deployments(1):
        n = narrowing._narrow(d, 10.0, SMALL_SHORT_LISTS)
        sub, short = n.sub, n.short
        if short is None or not short.ok:
            continue
        again = stages._solve_full(SolverInput([sub], [], []), "cost", tie_break=False,
                                      time_limit=DEFAULT.part_reserve_s, warm=stages.WarmStart(plan=short))
        assert again.status in ("optimal", "time_limit")
        assert again.values["cost"] <= short.values["cost"] * (1 + stages.MIP_REL_GAP)
        checked += 1
    assert checked >= 1


def test_the_most_promising_candidates_are_ranked_by_whole_units() -> None:
    """10 req/s: one $10 unit of 10 req/s beats two $5.90 units of 6 req/s, though the latter is cheaper per
    req/s; plans B search the one that rounds better first."""
    from orchestrator.solver.bounds import promising

    a = candidate("d", offering("aws:r1", 10.0, instance_type="a"), 10.0)
    b = candidate("d", offering("aws:r1", 5.9, instance_type="b"), 6.0)
    dep = deployment("d", 10.0, [b, a])
    SolverInput([dep])
    assert [dep.candidates[i].instance_type for i in promising(dep, 1)] == ["a"]


def test_narrowing_started_while_inputs_are_built_gives_the_same_optimum() -> None:
    """`orch place` narrows each deployment on worker threads while the next ones' candidates are built: every
    deployment's narrowing is taken by the solve, and the optimum is the one of the plain solve."""
    cat = random_catalog(400, 3, regions_per_100=5)
    spec = random_spec(6, list(cat.regions), 3)
    plain = solve_mod.solve(build_inputs(LoadedStub(spec), cat).problem, "cost", tie_break=False)
    seen: list[list] = []
    with solve_mod.EarlyNarrowing() as early:
        def started(d) -> None:  # noqa: ANN001
            seen.append(list(d.candidates))
            early.submit(d)

        inp = build_inputs(LoadedStub(spec), cat, on_deployment=started)
        sol = solve_mod.solve(inp.problem, "cost", tie_break=False, early=early)
        assert not early._started  # each one taken
    # the narrowed deployments hold the whole problem's Candidate objects (keys by identity), none copied
    assert [[id(c) for c in cs] for cs in seen] == [[id(c) for c in d.candidates] for d in inp.problem.deployments]
    assert len({id(c) for cs in seen for c in cs}) == len(inp.problem.candidates)
    assert plain.ok and sol.ok
    assert sol.values["cost"] == pytest.approx(plain.values["cost"], rel=2e-4)


def test_early_narrowing_takes_the_hardest_waiting_first_and_take_does_what_is_not_started(monkeypatch) -> None:  # noqa: ANN001
    """The worker narrows the hardest deployment waiting (whose solve will take longest) first, not the first
    submitted; a deployment no worker has started is narrowed by whoever takes it, without waiting in the queue."""
    cat = random_catalog(400, 3, regions_per_100=5)
    deps = build_inputs(LoadedStub(random_spec(4, list(cat.regions), 3)), cat).problem.deployments
    by_weight = sorted(deps, key=narrowing._difficulty)
    assert narrowing._difficulty(by_weight[0]) < narrowing._difficulty(by_weight[2]) < narrowing._difficulty(by_weight[3])
    gate, order, threads = threading.Event(), [], {}
    real = narrowing._narrow

    def narrow(d, limit, strategy):  # noqa: ANN001, ANN202
        order.append(d.name)
        if len(order) == 1:
            gate.wait(5)  # hold the worker on the first one until the others are queued
        threads[d.name] = threading.current_thread().name
        return real(d, limit, strategy)

    monkeypatch.setattr(narrowing, "_narrow", narrow)
    with solve_mod.EarlyNarrowing() as early:
        early.submit(by_weight[0])  # the easiest first: the worker holds it until the others are queued
        while not order:
            time.sleep(0.001)
        for d in by_weight[1:]:
            early.submit(d)
        mine = early.take(by_weight[1])  # waiting in the queue: narrowed here, now
        gate.set()
        give_up = time.monotonic() + 60
        while len(order) < len(by_weight) and time.monotonic() < give_up:  # the worker does the two left
            time.sleep(0.001)
        rest = [early.take(d) for d in by_weight if d is not by_weight[1]]
    assert threads[by_weight[1].name] == threading.current_thread().name
    assert all(threads[d.name] != threading.current_thread().name for d in by_weight if d is not by_weight[1])
    assert mine is not None and all(n is not None for n in rest)
    queued = [name for name in order[1:] if name != by_weight[1].name]
    assert queued == [d.name for d in reversed(by_weight[2:])]  # the hardest of those left first
    assert early.take(by_weight[0]) is None  # taken already
