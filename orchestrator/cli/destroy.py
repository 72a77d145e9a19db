"""`orch destroy [FILE]`: remove everything the project created, found by labels through the providers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("destroy")
    def destroy_cmd(
        file: Optional[Path] = typer.Argument(None, help="the deployment file; default: the project in the state"),
        deployment: Optional[str] = typer.Option(None, "--deployment", help="only this deployment"),
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        break_lock: bool = typer.Option(False, "--break-lock", help="remove a stale lock left by another apply"),
    ) -> None:
        """Terminate every replica of the project (or one deployment): journaled, state rows marked terminated."""
        from orchestrator.apply.actual import gather
        from orchestrator.apply.context import project_context
        from orchestrator.apply.diff import deletion, err_console, render, table_console
        from orchestrator.apply.ops import terminate_resource
        from orchestrator.apply.targets import Targets
        from orchestrator.cli.apply import _confirm
        from orchestrator.errors import AuthError, ProviderError, UserError
        from orchestrator.state import store
        from orchestrator.state.db import open_state, utcnow
        from orchestrator.state.journal import Journal
        from orchestrator.state.lock import project_lock
        from orchestrator.suggest import did_you_mean

        out, err = table_console(), err_console()
        with open_state(state) as db:
            ctx = project_context(db, file)
            with project_lock(db, ctx.project, break_lock=break_lock, warn=lambda m: err.print(m, markup=False)):
                targets = Targets(ctx.settings)
                inv = gather(db, ctx.project, targets, ctx.places, warn=lambda m: err.print(m, markup=False))
                doomed = inv.resources
                if deployment is not None:
                    names = sorted({r.deployment for r in doomed} | {d.name for d in (ctx.plan.deployments if ctx.plan else [])})
                    if deployment not in names:
                        raise UserError(f"no deployment {deployment!r} in project {ctx.project}"
                                        f"{did_you_mean(deployment, names)}")
                    doomed = [r for r in doomed if r.deployment == deployment]
                for row in inv.gone:  # state thought these existed; the provider says they do not
                    if deployment is None or row.deployment == deployment:
                        store.update_replica(db, row.id, status="terminated", terminated_at=utcnow(),
                                             details={"terminated_reason": "not found by the provider"})
                if not doomed:
                    err.print(f"nothing to destroy in project {ctx.project}"
                              + (f" (deployment {deployment})" if deployment else ""))
                    if inv.unreachable:
                        raise ProviderError("could not ask every provider: " + "; ".join(
                            f"{k}: {v}" for k, v in inv.unreachable.items()))
                    return
                changes = [deletion(r) for r in doomed]
                render(changes, out, title=f"orch destroy: project {ctx.project}")
                if not _confirm(yes, f"Destroy {len(doomed)} replica(s)?"):
                    err.print("cancelled: nothing was changed")
                    raise typer.Exit(1)
                journal = Journal(db, ctx.project)
                failed: list[str] = []
                for r in doomed:
                    if not r.verified:
                        failed.append(f"{r.replica_id}: {r.provider} {r.region} is unreachable")
                        continue
                    try:
                        terminate_resource(db, journal, targets, r)
                        err.print(f"destroyed {r.replica_id} ({r.provider} {r.region}, {r.handle.id})",
                                  markup=False)
                    except AuthError:
                        raise
                    except ProviderError as exc:
                        failed.append(f"{r.replica_id}: {exc}")
                if failed or inv.unreachable:
                    failed += [f"{k}: {v}" for k, v in inv.unreachable.items()]
                    raise ProviderError("destroy is incomplete; rerun it:\n  " + "\n  ".join(failed))
