"""`orch autoscale FILE`: the foreground loop that keeps each deployment's replicas at its target utilization."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("autoscale")
    def autoscale_cmd(
        file: Path = typer.Argument(..., help="the deployment file (YAML); its deployments' autoscale: sections"),
        interval: float = typer.Option(15.0, "--interval", min=1.0, max=3600.0, help="seconds between rounds"),
        once: bool = typer.Option(False, "--once", help="one round, then exit"),
        dry: bool = typer.Option(False, "--dry-run", help="decide and say so; change nothing"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
        timeout: float = typer.Option(1200.0, "--timeout", min=0, help="seconds to wait for a new replica's /health"),
        render: Optional[str] = typer.Option(None, "--render", help="hpa | keda: print the Kubernetes-native "
                                             "alternative for groups on Kubernetes sites (YAML) instead of running"),
        prometheus_url: Optional[str] = typer.Option(None, "--prometheus-url", help="with --render keda: the "
                                                     "Prometheus the ScaledObject queries"),
    ) -> None:
        """Scale replicas with the load: capacity at the SLO, hysteresis, cool-downs, the cheapest place to add.

        Each round reads vLLM's metrics of every replica (recorded as `orch meter` does), decides per deployment,
        and converges through apply's journal and lock: a new replica joins its gateways once /health answers,
        a removed one is drained at its gateways first, a dead one is replaced. Stop it with Ctrl-C.
        """
        from orchestrator.apply.diff import err_console
        from orchestrator.serve.autoscale import Autoscaler, run
        from orchestrator.spec.loader import load_spec
        from orchestrator.state.db import open_state

        err = err_console()
        loaded = load_spec(file)
        if render is not None:
            import yaml

            from orchestrator.errors import UserError
            from orchestrator.placement import place
            from orchestrator.serve.native import native_manifests

            if render not in ("hpa", "keda"):
                raise UserError(f"--render must be hpa or keda, found {render!r}")
            docs = native_manifests(place(loaded, with_fallbacks=False), loaded, render, prometheus_url)  # type: ignore[arg-type]
            typer.echo(yaml.safe_dump_all(docs, sort_keys=False))
            err.print(f"# {len(docs)} objects: apply them instead of running `orch autoscale` for these groups, "
                      "not beside it", markup=False, highlight=False)
            return

        def say(msg: str) -> None:
            err.print(msg, markup=False, highlight=False)

        with open_state(state) as db:
            scaler = Autoscaler(loaded, db, say=say, dry_run=dry, apply_timeout_s=timeout)
            try:
                run(scaler, interval, once=once)
            except KeyboardInterrupt:
                say("stopped")
