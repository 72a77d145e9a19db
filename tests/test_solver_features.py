"""Solver behaviours: egress, quotas, inventory, spot floor and spread, budget, objectives, tie-breaks."""

from __future__ import annotations

import pytest

from orchestrator.solver.problem import ResourceLimit, SolverInput
from orchestrator.solver.solve import solve
from support.synthetic import SpecStub, candidate, deployment, offering
from policies.base import make_policy


def _regions(sol, dep) -> set[str]:
    return {c.region for c in dep.candidates if sol.units.get(c)}


@pytest.mark.parametrize("egress_usd, expected", [(1000.0, "aws:data"), (300.0, "aws:cheap")])
def test_data_egress_moves_the_placement_only_when_it_outweighs_price(egress_usd: float, expected: str) -> None:
    # one unit each; the cheap region saves $1/h = $730/month, moving the data there costs egress_usd/month
    cands = [candidate("d", offering("aws:data", 5.0), 10), candidate("d", offering("aws:cheap", 4.0), 10)]
    dep = deployment("d", 5, cands, data_egress={"aws:cheap": egress_usd})
    sol = solve(SolverInput([dep]), "cost")
    assert _regions(sol, dep) == {expected}


def test_data_egress_charged_once_per_region_not_per_unit() -> None:
    cands = [candidate("d", offering("aws:far", 1.0), 1)]
    dep = deployment("d", 5, cands, data_egress={"aws:far": 100.0})
    sol = solve(SolverInput([dep]), "cost")
    assert sol.units[cands[0]] == 5
    assert sol.values["egress"] == pytest.approx(100.0)
    assert sol.values["cost"] == pytest.approx(5 * 730 + 100.0)


def test_quota_shared_by_deployments_forces_second_choice() -> None:
    h = offering("aws:r", 2.0, gpu="H100")
    l4 = offering("aws:r", 1.5, gpu="L4")
    deps = [deployment(n, 8, [candidate(n, h, 4), candidate(n, l4, 1)]) for n in ("a", "b")]
    free = solve(SolverInput(deps), "cost")
    assert sum(free.units.values()) == 4  # 2 H100 per deployment
    quota = ResourceLimit("aws quota: 3 H100s", "quota", 3, lambda c: c.gpu == "H100")
    sol = solve(SolverInput(deps, [quota]), "cost")
    assert set(sol.units) <= set(SolverInput(deps).candidates)  # keyed by the problem's own candidates
    h100 = sum(u for c, u in sol.units.items() if c.gpu == "H100")
    assert h100 == 3
    assert ("limit", "aws quota: 3 H100s", None) in sol.binding
    assert sol.values["cost"] == pytest.approx((3 * 2.0 + 4 * 1.5) * 730)


def test_onprem_inventory_caps_gpus_and_cloud_takes_the_rest() -> None:
    site = offering("onprem:dc", 0.5, gpu="H100", gpu_count=8, max_gpus=16)
    cloud = offering("aws:r", 40.0, gpu="H100", gpu_count=8)
    dep = deployment("d", 30, [candidate("d", site, 1.0), candidate("d", cloud, 1.0)])
    inv = ResourceLimit("onprem:dc inventory: 16 H100", "inventory", 16, lambda c: c.region == "onprem:dc")
    sol = solve(SolverInput([dep], [inv]), "cost")
    assert sol.units[dep.candidates[0]] == 2  # both nodes (16 GPUs, 16 req/s)
    assert sol.units[dep.candidates[1]] == 2  # 14 req/s more from the cloud


def test_spot_floor_and_spread() -> None:
    o1 = offering("aws:r1", 10.0, spot=2.0)
    o2 = offering("aws:r2", 10.0, spot=2.5)
    cands = [candidate("d", o1, 1), candidate("d", o1, 1, market="spot"), candidate("d", o2, 1), candidate("d", o2, 1, market="spot")]
    spec = SpecStub("d", "allow")
    pol = make_policy("spot", "spot", {})
    dep = deployment("d", 10, cands, policies=[pol], spec=spec)
    sol = solve(SolverInput([dep]), "cost")
    on_demand = sum(sol.units.get(c, 0) for c in cands if c.market == "on_demand")
    spot_regions = {c.region for c in cands if c.market == "spot" and sol.units.get(c)}
    assert on_demand == 5  # the 50% floor, no more (spot is cheaper)
    assert spot_regions == {"aws:r1", "aws:r2"}  # spread over two failure domains
    # prefer: 20% floor
    dep2 = deployment("d", 10, cands, policies=[make_policy("spot", "spot", {})], spec=SpecStub("d", "prefer"))
    sol2 = solve(SolverInput([dep2]), "cost")
    assert sum(sol2.units.get(c, 0) for c in cands if c.market == "on_demand") == 2


def test_spot_with_one_region_cannot_spread_so_stays_on_demand() -> None:
    o1 = offering("aws:r1", 10.0, spot=2.0)
    cands = [candidate("d", o1, 1), candidate("d", o1, 1, market="spot")]
    dep = deployment("d", 4, cands, policies=[make_policy("spot", "spot", {})], spec=SpecStub("d"))
    sol = solve(SolverInput([dep]), "cost")
    assert sol.units == {cands[0]: 4}
    one = make_policy("spot", "spot", {"min_failure_domains": 1, "on_demand_floor": 0.25})
    dep1 = deployment("d", 4, cands, policies=[one], spec=SpecStub("d"))
    sol1 = solve(SolverInput([dep1]), "cost")
    assert sol1.units == {cands[0]: 1, cands[1]: 3}


def test_budget_global_and_per_deployment() -> None:
    cands = [candidate("d", offering("aws:r", 1.0), 1)]
    dep = deployment("d", 10, cands)  # needs $7,300/month
    ok = solve(SolverInput([dep], [], [make_policy("b", "budget", {"monthly_usd": 7300})]), "cost")
    assert ok.ok
    assert any(kind == "budget" for kind, _, _ in ok.binding)  # exactly at the budget: binding
    tight = solve(SolverInput([dep], [], [make_policy("b", "budget", {"monthly_usd": 7000})]), "cost")
    assert tight.status == "infeasible"
    dep_b = deployment("d", 10, cands, policies=[make_policy("small", "budget", {"monthly_usd": 5000})], spec=SpecStub("d"))
    assert solve(SolverInput([dep_b]), "cost").status == "infeasible"


def test_latency_objective_picks_the_nearer_region() -> None:
    near = candidate("d", offering("aws:near", 6.0), 10)
    far = candidate("d", offering("aws:far", 4.0), 10)
    rtt = {("users", "aws:near"): 5.0, ("users", "aws:far"): 120.0}
    dep = deployment("d", 5, [near, far], sources=[("users", 1.0)], rtt=rtt)
    assert _regions(solve(SolverInput([dep]), "cost"), dep) == {"aws:far"}
    lat = solve(SolverInput([dep]), "latency")
    assert _regions(lat, dep) == {"aws:near"}
    assert lat.values["latency"] == pytest.approx(105.0)


def test_carbon_objective_picks_the_cleaner_grid() -> None:
    dirty = candidate("d", offering("aws:coal", 4.0), 10, grid=700)
    clean = candidate("d", offering("aws:hydro", 5.0), 10, grid=20)
    dep = deployment("d", 5, [dirty, clean])
    assert _regions(solve(SolverInput([dep]), "cost"), dep) == {"aws:coal"}
    assert _regions(solve(SolverInput([dep]), "carbon"), dep) == {"aws:hydro"}


@pytest.mark.parametrize("b_first", [False, True])
def test_ties_on_cost_are_broken_by_the_other_objectives(b_first: bool) -> None:
    """The same price in two regions: the cleaner grid wins, whichever one the cost stage happened to pick (with
    aws:b listed first it picks aws:a)."""
    a = candidate("d", offering("aws:a", 4.0), 10, grid=700)
    b = candidate("d", offering("aws:b", 4.0), 10, grid=20)
    dep = deployment("d", 5, [b, a] if b_first else [a, b])
    assert _regions(solve(SolverInput([dep]), "cost"), dep) == {"aws:b"}


def test_ttft_slo_restricts_routing_per_user_region() -> None:
    us = candidate("d", offering("aws:us", 4.0), 10, ttft_ms=300)
    eu = candidate("d", offering("aws:eu", 6.0), 10, ttft_ms=300)
    rtt = {("u-us", "aws:us"): 5, ("u-us", "aws:eu"): 90, ("u-eu", "aws:us"): 90, ("u-eu", "aws:eu"): 5}
    dep = deployment("d", 10, [us, eu], sources=[("u-us", 0.5), ("u-eu", 0.5)], rtt=rtt, ttft_slo_ms=350)
    sol = solve(SolverInput([dep]), "cost")
    assert _regions(sol, dep) == {"aws:us", "aws:eu"}  # the EU users cannot be served from the US in time
    relaxed = deployment("d", 10, [us, eu], sources=[("u-us", 0.5), ("u-eu", 0.5)], rtt=rtt, ttft_slo_ms=500)
    assert _regions(solve(SolverInput([relaxed]), "cost"), relaxed) == {"aws:us"}


def test_spot_floor_counts_headroom_once() -> None:
    """8 req/s with 25% headroom plan 10 units of 1 req/s; a 50% floor is 5 of them on demand, not 7."""
    o1 = offering("aws:r1", 10.0, spot=2.0)
    o2 = offering("aws:r2", 10.0, spot=2.5)
    cands = [candidate("d", o1, 1), candidate("d", o1, 1, market="spot"), candidate("d", o2, 1, market="spot")]
    dep = deployment("d", 8, cands, headroom=0.25, policies=[make_policy("spot", "spot", {})], spec=SpecStub("d", "allow"))
    sol = solve(SolverInput([dep]), "cost")
    assert sol.units.get(cands[0]) == 5
    assert sum(sol.units.values()) == 10


def test_time_limit_is_shared_by_the_deployments_solved_alone(monkeypatch) -> None:  # noqa: ANN001
    """The decomposed solve runs to one deadline: each part gets a share of the time left in proportion to its
    expected work, and what a part leaves unused flows to the next."""
    from orchestrator.solver import solve as solve_mod
    from orchestrator.solver.strategy import SolveStrategy

    limits: list[float] = []
    real = solve_mod._solve_full

    def spy(inp, objective="cost", **kw):  # noqa: ANN001, ANN202
        limits.append(kw["time_limit"])
        return real(inp, objective, **kw)

    monkeypatch.setattr(solve_mod, "_solve_full", spy)
    deps = [deployment(f"d{i}", 4, [candidate(f"d{i}", offering("aws:r", 1.0 + i), 1)]) for i in range(3)]
    sol = solve_mod.solve(SolverInput(deps), "cost", time_limit=5.0, strategy=SolveStrategy(workers=1))
    assert sol.ok and len(limits) == 3
    assert all(lim <= 5.0 for lim in limits)
    assert 1.2 < limits[0] < 5.0 / 3  # equal work: a third of what is left, less the least time kept for the others
    assert limits[-1] > 4.0  # the first two took milliseconds: the last may use nearly all of it


def test_the_simple_plan_behind_the_bound_is_feasible_and_a_valid_start() -> None:
    """bounds.prune_by_bound also returns the plan that set its upper bound: floor and spread hold, and
    HiGHS started from it reaches the same optimum."""
    from orchestrator.solver.bounds import prune_by_bound
    from orchestrator.solver.solve import WarmStart, _solve_full

    offs = [offering(f"aws:r{i}", 10.0 + i, spot=2.0 + 0.5 * i) for i in range(3)]
    cands = [candidate("d", o, 1.5) for o in offs] + [candidate("d", o, 1.5, market="spot") for o in offs]
    dep = deployment("d", 9, cands, headroom=0.2, policies=[make_policy("spot", "spot", {})], spec=SpecStub("d", "allow"),
                     data_egress={"aws:r1": 500.0, "aws:r2": 500.0})
    pruned, start, _ = prune_by_bound(dep)
    od = sum(n * c.rps_per_unit for c, n in start.items() if c.market == "on_demand")
    spot_regions = {c.region for c, n in start.items() if c.market == "spot" and n > 0}
    assert od >= 0.5 * 9 * 1.2 - 1e-9 and len(spot_regions) >= 2
    assert sum(n * c.rps_per_unit for c, n in start.items()) >= 9 * 1.2 - 1e-9
    assert set(start) <= set(pruned.candidates)  # the plan's candidates survive, the same objects
    plain = _solve_full(SolverInput([pruned], [], []), "cost", tie_break=False)
    started = _solve_full(SolverInput([pruned], [], []), "cost", tie_break=False,
                          warm=WarmStart(units=start))
    assert plain.ok and started.ok
    assert started.values["cost"] == pytest.approx(plain.values["cost"], rel=1e-6)


def test_coupling_only_model_has_every_column_and_only_the_coupling_rows() -> None:
    """What the decomposed solve assembles its plan in: the same columns and objectives as the whole model, and of
    the rows exactly those from the first coupling row on (limits, project-wide policies)."""
    import numpy as np

    from orchestrator.solver.model import build

    h = offering("aws:r", 2.0, gpu="H100", spot=0.8)
    l4 = offering("aws:s", 1.5, gpu="L4")
    deps = [deployment(n, 8, [candidate(n, h, 4), candidate(n, h, 4, market="spot"), candidate(n, l4, 1)],
                       data_egress={"aws:s": 50.0}, policies=[make_policy("spot", "spot", {})], spec=SpecStub(n)) for n in ("a", "b")]
    inp = SolverInput(deps, [ResourceLimit("q", "quota", 3, lambda c: c.gpu == "H100")], [make_policy("b", "budget", {"monthly_usd": 9e9})])
    full, shell = build(inp), build(inp, coupling_only=True)
    assert shell.num_cols < full.num_cols  # the spot policy's own binaries live in per-deployment rows only
    n = shell.num_cols
    assert (shell.unit_col, shell.traffic_cols, shell.region_col) == (full.unit_col, full.traffic_cols, full.region_col)
    for k in ("cost", "latency", "egress", "carbon"):
        assert np.array_equal(shell.objective_vector(k), full.objective_vector(k)[:n])
    assert [t.kind for t in shell.row_tags] == [t.kind for t in full.row_tags[full.first_coupling_row:]] == ["limit", "budget"]
    assert (shell.row_lower, shell.row_upper) == (full.row_lower[full.first_coupling_row:], full.row_upper[full.first_coupling_row:])


def test_gap_of_a_plan_assembled_from_parts_weighs_each_part_by_its_value() -> None:
    from orchestrator.solver.solve import _sum_gap

    # bounds 100 and 270 under values 100 and 300: (400 - 370) / 400
    assert _sum_gap([(100.0, 0.0), (300.0, 0.1)]) == pytest.approx(0.075)
    assert _sum_gap([(100.0, 0.2), (300.0, 0.1)]) <= 0.2  # never above the largest part's
    assert _sum_gap([(100.0, 0.0), (0.0, 0.0)]) == 0.0
    assert _sum_gap([(100.0, float("inf")), (300.0, 0.0)]) == float("inf")


def test_deployments_whose_turn_comes_well_after_the_deadline_are_not_attempted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short --time-limit on many deployments answers "timeout" soon after the time is up (1 s here), instead
    of giving every deployment its least time one after another."""
    import time

    import orchestrator.solver.solve as solve_mod

    calls = []
    real = solve_mod._solve_full

    def slow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(solve_mod, "_solve_full", slow)
    deps = [deployment(f"d{i}", 4, [candidate(f"d{i}", offering("aws:r", 1.0 + i), 1.0)]) for i in range(16)]
    sol = solve_mod.solve(SolverInput(deps), "cost", time_limit=0.1, tie_break=False)
    assert sol.status == "timeout"
    assert len(calls) < len(deps)


def test_promising_candidates_bring_their_offering_in_the_other_market() -> None:
    """The short list for plans B: the lowest lower bounds, the regions a plan already uses, and the on-demand twin
    of a short-listed spot offering (a region picked for spot often serves the on-demand floor too)."""
    from orchestrator.solver.bounds import promising

    cheap = offering("aws:a", 10.0, spot=1.0)
    others = [offering(f"aws:o{i}", 5.0 + i) for i in range(6)]
    used = offering("aws:u", 50.0)
    cands = ([candidate("d", cheap, 4, market="spot"), candidate("d", cheap, 4)] + [candidate("d", o, 4) for o in others]
             + [candidate("d", used, 4)])
    dep = deployment("d", 4, cands)
    picked = {(dep.candidates[i].region, dep.candidates[i].market) for i in promising(dep, 2, {"aws:u"})}
    assert ("aws:a", "spot") in picked and ("aws:a", "on_demand") in picked  # the twin, though dearer than o0..o5
    assert ("aws:u", "on_demand") in picked
    assert ("aws:o5", "on_demand") not in picked


def test_the_greedy_joint_start_keeps_each_plan_that_still_fits() -> None:
    """When the per-deployment optima break a quota together, the warm start for the joint MILP keeps the plan of
    each deployment that still fits (largest demand first) and solves only the others again, within what is left
    (with little time left, re-solving every deployment in milliseconds each can give plans far above the optimum)."""
    from orchestrator.solver import solve as solve_mod

    h100_a, h100_b = offering("aws:r1", 2.0, gpu="H100"), offering("aws:r1", 2.0, gpu="H100")
    l4 = offering("aws:r1", 3.0, gpu="L4")
    big = deployment("big", 8, [candidate("big", h100_a, 1), candidate("big", l4, 1)])
    small = deployment("small", 4, [candidate("small", h100_b, 1), candidate("small", l4, 1)])
    quota = ResourceLimit("h100", "quota", 10, lambda c: c.gpu == "H100")
    inp = SolverInput([small, big], [quota])
    alone = {d.name: solve_mod._solve_full(SolverInput([d], [], []), "cost", tie_break=False)
             for d in inp.deployments}
    assert sum(alone["big"].units.values()) + sum(alone["small"].units.values()) == 12  # 12 H100 > 10
    seq = solve_mod._sequential(inp, "cost", 10.0, solve_mod.Held(), alone)
    assert seq is not None and seq["big"] is alone["big"]  # 8 H100 fit: kept as it was
    h100 = small.candidates[0]
    assert seq["small"].units.get(h100, 0) == 2 and sum(seq["small"].units.values()) == 4  # 2 H100 left, 2 L4
    joint = solve_mod.solve(inp, "cost")
    assert joint.ok and joint.values["cost"] == pytest.approx(seq["big"].values["cost"] + seq["small"].values["cost"])
