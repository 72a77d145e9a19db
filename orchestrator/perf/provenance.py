"""Where a plan's performance figures come from, per deployment (issue 17): the model or a measured profile, the
error band, the edge the SLOs were checked against, and the roofline terms (orch place --json)."""

from __future__ import annotations

from typing import Any


def deployment_performance(spec: Any, model: Any, group: Any, edge: str) -> dict[str, Any]:
    """For the deployment's first (chosen) replica group: source, band, central and planned figures, explain."""
    from orchestrator.catalog.gpus import get_gpu
    from orchestrator.perf import Workload, estimate
    from orchestrator.perf.explain import explain

    t, slo = spec.traffic, spec.slo
    gpu = get_gpu(group.gpu)
    workload = Workload(t.input_tokens, t.output_tokens, kv_cache_dtype=spec.kv_cache_dtype)
    kw = {"tpot_slo_ms": slo.tpot_p95_ms, "utilization": 1.0 / (1.0 + t.headroom)}
    central = estimate(model, gpu, group.gpus_per_replica, group.quantization, workload, **kw)
    planned = estimate(model, gpu, group.gpus_per_replica, group.quantization, workload, edge=edge, **kw)
    measured = central.source == "measured"
    out: dict[str, Any] = {
        "source": central.source,  # "model" | "measured" (an orch bench profile replaced the model)
        "engine": central.engine,
        "slo_checked_at": "measured profile" if measured else f"{edge} edge of the band",
        "band": {"lo": round(central.band_lo, 3), "hi": round(central.band_hi, 3), "basis": central.band_basis},
        "central": {"requests_per_s": round(central.requests_per_s, 4), "tpot_ms": round(central.tpot_ms, 3),
                    "ttft_ms": round(central.ttft_ms, 2), "max_batch": central.max_batch},
        "planned": {"requests_per_s": round(planned.requests_per_s, 4), "tpot_ms": round(planned.tpot_ms, 3),
                    "ttft_ms": round(planned.ttft_ms, 2), "max_batch": planned.max_batch},
    }
    if central.fits and not measured:
        out["explain"] = explain(model, gpu, group.gpus_per_replica, group.quantization, workload, central.max_batch)
    return out


def describe(perf: dict[str, Any]) -> str:
    """One line for the plan's table."""
    if not perf:
        return ""
    if perf["source"] == "measured":
        return f"performance: measured profile (orch bench) of this configuration; {perf['band']['basis']}"
    b, c, p = perf["band"], perf["central"], perf["planned"]
    return (f"performance: model ({perf['engine']}), band x{b['lo']:.2f}..x{b['hi']:.2f} ({b['basis']}); SLOs checked at the "
            f"{perf['slo_checked_at']}: {p['requests_per_s']:.2f} req/s per replica (central {c['requests_per_s']:.2f}), "
            f"TPOT {p['tpot_ms']:.1f} ms (central {c['tpot_ms']:.1f})")
