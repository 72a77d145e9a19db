"""`orch place FILE`: choose provider/region/instance/GPUs/TP/quantization/replicas with the MILP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

OBJECTIVE_HELP = "what to minimize first: cost | latency | egress | carbon (the others break ties)"


def register(app: typer.Typer) -> None:
    @app.command("place")
    def place_cmd(
        file: Path = typer.Argument(..., help="deployment file", show_default=False),
        minimize: str = typer.Option("cost", "--minimize", help=OBJECTIVE_HELP),
        json_out: bool = typer.Option(False, "--json", help="print the plan as JSON on stdout"),
        out: Path | None = typer.Option(None, "--out", help="write the full plan (with fallbacks) for `orch apply --plan`"),
        no_fallbacks: bool = typer.Option(False, "--no-fallbacks", help="skip computing ranked fallbacks (faster)"),
        central_estimate: bool = typer.Option(False, "--central-estimate",
                                              help="check SLOs against the performance model's central estimate, not the pessimistic edge of its error band"),
        time_limit: float = typer.Option(60.0, "--time-limit", min=0.1,
                                         help="seconds for the whole placement (candidates, solve, fallbacks): at the limit, the best plan found and its gap"),
        use_quotas: bool = typer.Option(False, "--use-quotas",
                                        help="bound the plan by the GPU quotas `orch check` finds in the clouds' accounts"),
    ) -> None:
        """Place every deployment of FILE at the lowest cost (or latency, egress, carbon) that meets its SLOs."""
        from orchestrator.errors import UserError
        from orchestrator.placement import place
        from orchestrator.solver.model import OBJECTIVES
        from orchestrator.spec.loader import load_spec

        if minimize not in OBJECTIVES:
            raise UserError(f"--minimize must be one of {', '.join(OBJECTIVES)}, found {minimize!r}")
        loaded = load_spec(file)
        typer.echo(f"placing {len(loaded.spec.deployments)} deployment(s) from {file} (minimize {minimize})…", err=True)
        catalog = None
        if use_quotas:
            from orchestrator.cli.check import checked_catalog

            catalog = checked_catalog(loaded.spec, lambda m: typer.echo(m, err=True))
        from orchestrator.cli.progress import Progress

        with Progress(lambda line: typer.echo(line, err=True)) as progress:
            plan = place(loaded, minimize, catalog=catalog, with_fallbacks=not no_fallbacks, time_limit=time_limit,
                         edge="central" if central_estimate else "pessimistic", progress=progress.tell)
        if out is not None:
            out.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
            typer.echo(f"plan written to {out}", err=True)
        if plan.status not in ("optimal", "feasible"):
            if json_out:
                typer.echo(json.dumps(contract(plan), indent=2))
            typer.echo(f"no feasible plan ({plan.solve_seconds:.2f} s):", err=True)
            for m in plan.messages:
                typer.echo(f"  {m}", err=True)
            raise typer.Exit(NO_PLAN)
        used = {g.provider for d in plan.deployments for g in [*d.replicas, *d.gateways]}
        for w in loaded.warnings:  # what apply will need from the file, for the providers this plan uses
            if w.path.split(".")[:2][-1] in used:
                typer.echo(f"warning: {w}", err=True)
        if json_out:
            typer.echo(json.dumps(contract(plan), indent=2))
            return
        print_plan(plan)


NO_PLAN = 4  # exit code: the file is valid, but no plan meets it (infeasible, or none within --time-limit)


def contract(plan: Any) -> dict[str, Any]:
    """The plan JSON of the contract: the whole plan minus fallbacks (those go to --out)."""
    data = plan.model_dump(mode="json")
    for d in data["deployments"]:
        d.pop("fallbacks", None)
    return data


def print_plan(plan: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from orchestrator import fmt
    from orchestrator.catalog.types import HOURS_PER_MONTH

    out = Console()  # stdout: tables
    if not out.is_terminal:
        out = Console(width=170)  # piped: do not squeeze the table into 80 columns
    err = Console(stderr=True)
    for d in plan.deployments:
        t = Table(title=f"{d.name}  ({d.model}, max_model_len {d.max_model_len})", title_justify="left")
        for col, just in [("region", "left"), ("instance ×n", "left"), ("GPUs", "right"), ("TP×PP", "right"),
                          ("quant", "left"), ("market", "left"), ("$/h", "right"), ("TTFT ms", "right"),
                          ("TPOT ms", "right"), ("req/s", "right")]:
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for g in d.replicas:
            instances = g.instances or g.count * g.instances_per_replica
            t.add_row(g.region, f"{g.instance_type} × {instances}", f"{g.count}×{g.gpus_per_replica} {g.gpu}",
                      f"{g.tensor_parallel}×{g.pipeline_parallel}", g.quantization, g.market, f"{g.usd_per_hour:,.2f}",
                      f"{g.ttft_ms:,.0f}", f"{g.tpot_ms:,.1f}", f"{g.capacity_rps * g.count:,.2f}")
        p = d.predicted
        t.caption = (f"predicted TTFT p95 {p.ttft_p95_ms:,.0f} ms (incl. RTT) · TPOT p95 {p.tpot_p95_ms:,.1f} ms · "
                     f"capacity {p.capacity_rps:,.1f} req/s · ${p.usd_per_million_tokens:,.4f} per 1M tokens · "
                     f"${d.usd_per_hour:,.2f}/h incl. egress ${d.egress_usd_per_month:,.0f}/month")
        t.caption_justify = "left"
        out.print(fmt.wrap_cells(t))
        if d.performance:
            from orchestrator.perf.provenance import describe

            out.print("  " + clip(describe(d.performance)), highlight=False, markup=False)
        for g in d.gateways:
            users = ", ".join(g.users) if g.users and g.users != ["*"] else "all users"
            out.print(f"  gateway: {g.region} {g.instance_type} (${g.usd_per_hour:,.3f}/h), port {g.port}, "
                      f"vllm-router {g.policy}: {users} -> {', '.join(g.upstream)}", highlight=False, markup=False)
        _explain(out, d.explanation)
    if plan.total is not None:
        tot = plan.total
        gw = tot.gateways_usd_per_hour
        gateways = f" (+ gateways ${gw:,.2f}/h, ${gw * HOURS_PER_MONTH:,.0f}/month)" if gw else ""
        out.print(f"[bold]total[/bold]: ${tot.usd_per_hour:,.2f}/h · ${tot.usd_per_month:,.0f}/month{gateways} "
                  f"(egress ${tot.egress_usd_per_month:,.0f}/month) · objective {plan.objective} · solved in "
                  f"{plan.solve_seconds:.2f} s · prices as of {plan.catalog_as_of}")
    for m in plan.messages:
        err.print(clip(m), highlight=False, markup=False, soft_wrap=True)


def _explain(out: Any, e: dict) -> None:
    from rich.markup import escape

    from orchestrator.fmt import signed_usd

    lines = []
    ru = e.get("runner_up")
    if ru:
        among = f" (best of {ru['searched']})" if ru.get("searched") else ""
        lines.append(f"runner-up{among}: {ru['config']} ({signed_usd(ru['extra_usd_per_hour'], '/h')}, "
                     f"{ru['extra_ttft_ms']:+.0f} ms TTFT)")
    if e.get("objective_tradeoff"):
        lines.append(e["objective_tradeoff"])
    for b in e.get("binding", []):
        lines.append(f"binding: {b}")
    for f in e.get("filtered", []):
        if "planned and launched as fp16" in f and " fp16 " in e.get("chosen", ""):  # the plan runs what was not
            lines.append(f"note: {f}")                                               # asked for: say so
    for prov, why in (e.get("providers") or {}).items():
        if why != "chosen":
            lines.append(f"{prov}: {why}")
    accs = e.get("accelerators") or {}
    if len(accs) > 1:  # each alone at the SLO: what one accelerator costs against another, per token
        lines.append("by accelerator ($ per 1M tokens, each alone at the SLO): " + " · ".join(
            f"{gpu} ${a['usd_per_million_tokens']:.4f} (${a['usd_per_hour']:,.2f}/h)" for gpu, a in accs.items()
            if a.get("usd_per_million_tokens") is not None))
    for ln in lines:  # plain text: user strings are neither highlighted nor unbounded
        out.print("  " + escape(clip(ln)), highlight=False)
    out.print()


MAX_LINE = 400  # characters of one explanation line; a 100,000-character pattern once took minutes to print


def clip(text: str, limit: int = MAX_LINE) -> str:
    """``text`` up to ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"
