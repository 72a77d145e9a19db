"""`orch apply FILE`: converge the plan onto providers (see orchestrator.apply.converge)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def _confirm(yes: bool, question: str) -> bool:
    """--yes, or an answer on a terminal; no terminal and no --yes is a refusal (never a guess)."""
    from orchestrator.errors import UserError

    if yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise UserError("stdin is not a terminal, so nothing can be confirmed; rerun with --yes to proceed")
    return typer.confirm(question, default=False, err=True)


def dry_run(loaded, plan) -> None:  # type: ignore[no-untyped-def]
    """Per replica group: the exact provider calls of its first replica (no credentials, no state)."""
    from orchestrator.apply.desired import desired_replicas
    from orchestrator.apply.targets import Targets
    from orchestrator.state.store import scrub_calls

    targets = Targets(loaded.spec.providers, lenient=True)
    seen: set[tuple[str, str]] = set()
    for d in desired_replicas(plan):
        if (d.deployment.name, d.group_key) in seen:
            continue
        seen.add((d.deployment.name, d.group_key))
        g = d.group
        target = targets.get(g.provider, g.region)
        calls = target.provider.planned_calls(d.container(**target.container_kwargs), d.placement())
        if d.gateway is not None:
            gw = d.gateway
            typer.echo(f"# {d.deployment.name}: gateway on {g.provider} {g.region} {g.instance_type}, port {gw.port} "
                       f"(vllm-router {gw.policy} behind its edge; users from {', '.join(gw.users) or 'anywhere'}, "
                       f"routed to {', '.join(gw.upstream)}); {d.id}")
        else:
            typer.echo(
                f"# {d.deployment.name}: {g.count} x {g.provider} {g.region} {g.instance_type} "
                f"({g.gpus_per_replica}x{g.gpu}, tp={g.tensor_parallel}, {g.quantization}, {g.market}); "
                f"replica {d.id} (the others differ only in the replica label)"
            )
        typer.echo(json.dumps(scrub_calls(calls), indent=2, default=str))
    typer.echo("# dry run: nothing was launched and the state was not read or written", err=True)


def _print_endpoints(conv, err) -> None:  # type: ignore[no-untyped-def]
    """Each deployment's endpoint and where its key is (never the key)."""
    from orchestrator.serve.keys import api_key_source

    for d in conv.desired():
        endpoint = conv.endpoints.get(d.id)
        if d.gateway is None or not endpoint:
            continue
        provider = conv.targets.get(d.group.provider, d.group.region).provider
        err.print(f"{d.deployment.name}: endpoint {endpoint}/v1 (OpenAI API; header 'Authorization: Bearer <key>', "
                  f"the key: {api_key_source(provider)})", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("apply")
    def apply_cmd(
        file: Path = typer.Argument(..., help="the deployment file (YAML)", exists=False),
        plan_path: Optional[Path] = typer.Option(None, "--plan", help="a saved plan (orch place FILE --out plan.json); default: place now"),
        objective: str = typer.Option("cost", "--objective", "--minimize", help="placement objective when no --plan is given"),
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
        dry: bool = typer.Option(False, "--dry-run", help="print each replica group's provider calls; change nothing"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        break_lock: bool = typer.Option(False, "--break-lock", help="remove a stale lock left by another apply"),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="wait for every replica's /health"),
        timeout: float = typer.Option(1200.0, "--timeout", min=0, help="seconds to wait for /health"),
    ) -> None:
        """Launch, adopt and delete replicas until the providers match the plan (journaled, resumable)."""
        from orchestrator.apply.converge import ApplyOptions, Converger, GatewayPortTaken, request_shapes
        from orchestrator.apply.diff import err_console, has_work, render, table_console
        from orchestrator.apply.planfile import providers_json, resolve_plan
        from orchestrator.apply.targets import Targets
        from orchestrator.errors import ProviderError
        from orchestrator.spec.loader import load_spec
        from orchestrator.state.db import open_state
        from orchestrator.state.lock import project_lock

        loaded = load_spec(file)
        plan = resolve_plan(loaded, plan_path, objective)
        if dry:
            if any(d.autoscale for d in loaded.spec.deployments):
                from orchestrator.serve.autoscale import settle

                plan = settle(plan, loaded, None, lambda m: typer.echo(f"# {m}", err=True))
            dry_run(loaded, plan)
            return
        out, err = table_console(), err_console()
        with open_state(state) as db, project_lock(db, plan.project, break_lock=break_lock,
                                                   warn=lambda m: err.print(m, markup=False)):
            if any(d.autoscale for d in loaded.spec.deployments):
                from orchestrator.plan import Plan
                from orchestrator.serve.autoscale import settle
                from orchestrator.state import store

                rec = store.latest_plan(db, plan.project)
                plan = settle(plan, loaded, Plan.model_validate(rec.plan) if rec else None,
                              lambda m: err.print(m, markup=False, highlight=False))
            conv = Converger(db, plan, Targets(loaded.spec.providers), err=err, spec_sha256=loaded.sha256,
                             providers_json=providers_json(loaded.spec),
                             opts=ApplyOptions(wait=wait, timeout_s=timeout), shapes=request_shapes(loaded.spec))
            try:
                changes = conv.prepare()
            except GatewayPortTaken as exc:  # located at the deployment's gateway.port; nothing was changed
                from orchestrator.errors import SpecError

                i = next(i for i, d in enumerate(loaded.spec.deployments) if d.name == exc.deployment)
                raise SpecError(problems=[loaded.problem(("deployments", i, "gateway", "port"),
                                                         f"{exc}; nothing was changed")]) from None
            render(changes, out, title=f"orch apply: project {plan.project}")
            if has_work(changes):
                if not _confirm(yes, "Apply these changes?"):
                    err.print("cancelled: nothing was changed")
                    raise typer.Exit(1)
            else:
                what = "the new prices apply from now on" if any(c.repriced for c in changes) else "no changes"
                err.print(f"{what}: the providers already match the plan")
            result = conv.execute()
        summary = (f"created {len(result.created)}, adopted {len(result.adopted)}, deleted {len(result.deleted)}, "
                   f"healthy {len(result.healthy)}")
        err.print(summary, markup=False)
        _print_endpoints(conv, err)
        if not result.converged:
            problems = [f"{k}: {v}" for k, v in result.failed.items()]
            problems += [f"{rid}: not healthy within {timeout:.0f}s" for rid in result.unhealthy]
            problems += [f"{rid}: kept until its replacements are healthy" for rid in result.deferred]
            raise ProviderError("apply did not converge; rerun it to resume:\n  " + "\n  ".join(problems))
