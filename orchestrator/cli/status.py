"""`orch status [FILE]`: per deployment, desired vs actual replicas, live health, uptime and cost so far."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from orchestrator.fmt import wrap_cells


def collect(db, file: Path | None, err) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The status document (also the --json output)."""
    from orchestrator.apply.actual import gather
    from orchestrator.apply.context import project_context
    from orchestrator.apply.converge import Converger
    from orchestrator.apply.readiness import check_health
    from orchestrator.apply.targets import Targets
    from orchestrator.state.db import as_utc, utcnow

    ctx = project_context(db, file)
    targets = Targets(ctx.settings)
    inv = gather(db, ctx.project, targets, ctx.places, warn=lambda m: err.print(m, markup=False))
    if inv.unreachable and not inv.reachable:  # nothing could be asked: an empty table would say "nothing runs"
        from orchestrator.errors import ProviderError

        raise ProviderError("status: no provider could be asked what runs:\n  " + "\n  ".join(
            f"{k}: {v}" for k, v in inv.unreachable.items()))
    desired: dict[str, int] = {}
    if ctx.plan is not None:
        conv = Converger(db, ctx.plan, targets, err=err)
        conv.choice = conv.fallback_choice()
        for d in conv.desired():
            if d.gateway is None:
                desired[d.deployment.name] = desired.get(d.deployment.name, 0) + 1
    now = utcnow()
    from orchestrator.cost import billed_usd
    from orchestrator.metering.store import replicas as billed_replicas

    billing = {r.id: r for r in billed_replicas(db.engine) if r.project == ctx.project}
    def blank(name: str, n: int = 0) -> dict[str, Any]:
        return {"name": name, "desired": n, "actual": 0, "healthy": 0, "usd_per_hour": 0.0, "endpoint": None,
                "endpoints": [], "replicas": []}

    deployments: dict[str, dict[str, Any]] = {name: blank(name, n) for name, n in desired.items()}
    for r in sorted(inv.resources, key=lambda r: (r.deployment, r.replica_id)):
        row = inv.rows.get(r.replica_id)
        endpoint = r.handle.endpoint or (row.endpoint if row else None)
        healthy = check_health(endpoint, timeout_s=2.0) if r.verified else None
        since = as_utc(row.ready_at or row.created_at) if row else as_utc(r.handle.launched_at)
        uptime_s = max(0.0, (now - since).total_seconds()) if since else 0.0
        rate = r.priced.usd_per_hour if r.priced else 0.0
        dep = deployments.setdefault(r.deployment, blank(r.deployment))
        role = ((row.details or {}) if row else {}).get("role", "replica")
        dep["usd_per_hour"] += rate
        if role == "gateway":
            details = row.details if row else {}
            dep["endpoints"].append({"url": f"{endpoint}/v1" if endpoint else None, "gateway": r.replica_id,
                                     "region": r.region, "users": details.get("users", []), "health": _health(healthy)})
            healthy_urls = [e["url"] for e in dep["endpoints"] if e["health"] == "healthy" and e["url"]]
            dep["endpoint"] = (healthy_urls or [e["url"] for e in dep["endpoints"] if e["url"]] or [None])[0]
        else:
            dep["actual"] += 1
            dep["healthy"] += 1 if healthy else 0
        dep["replicas"].append({
            "role": role,
            "id": r.replica_id, "provider": r.provider, "region": r.region, "handle": r.handle.id,
            "instance_type": r.priced.instance_type if r.priced else None,
            "status": row.status if row else "untracked", "health": _health(healthy), "endpoint": endpoint,
            "uptime_s": round(uptime_s, 1), "usd_per_hour": rate,
            # billed from launch, each period at its price, as `orch report` bills it
            "cost_usd": round(billed_usd(billing[r.replica_id], now.timestamp()), 6) if r.replica_id in billing else 0.0,
        })
    return {
        "project": ctx.project,
        "plan_id": ctx.plan and _pid(ctx.plan),
        "deployments": list(deployments.values()),
        "unreachable": inv.unreachable,
        "usd_per_hour": sum(d["usd_per_hour"] for d in deployments.values()),
    }


def _pid(plan) -> str:  # type: ignore[no-untyped-def]
    from orchestrator.apply.desired import plan_id

    return plan_id(plan)


def _health(ok: bool | None) -> str:
    return "unknown" if ok is None else ("healthy" if ok else "unhealthy")


def _uptime(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render(doc: dict[str, Any], console) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"orch status: project {doc['project']}", title_justify="left")
    for col in ("deployment", "replicas", "replica", "provider", "region", "instance", "status", "health",
                "endpoint", "uptime"):
        table.add_column(col)
    table.add_column("$/h", justify="right")
    table.add_column("cost so far", justify="right")
    for dep in doc["deployments"]:
        counts = f"{dep['actual']}/{dep['desired']} ({dep['healthy']} healthy)"
        if dep.get("endpoints"):
            urls = ", ".join(f"{e['url']} ({e['health']})" for e in dep["endpoints"])
            console.print(f"{dep['name']}: endpoint {urls}", highlight=False, markup=False)
        if not dep["replicas"]:
            table.add_row(dep["name"], counts, "-", "", "", "", "", "", "", "", "", "")
        for i, r in enumerate(dep["replicas"]):
            style = {"healthy": "green", "unhealthy": "red"}.get(r["health"], "yellow")
            table.add_row(
                dep["name"] if i == 0 else "", counts if i == 0 else "",
                r["id"] + (" (gateway)" if r.get("role") == "gateway" else ""), r["provider"], r["region"],
                str(r["instance_type"] or "?"), r["status"], f"[{style}]{r['health']}[/]", r["endpoint"] or "-",
                _uptime(r["uptime_s"]), f"{r['usd_per_hour']:.2f}", f"${r['cost_usd']:.4f}",
            )
    console.print(wrap_cells(table))
    console.print(f"total ${doc['usd_per_hour']:,.2f}/h")
    if any(d.get("endpoints") for d in doc["deployments"]):
        console.print("call an endpoint with the header 'Authorization: Bearer <key>' (the key: $ORCH_API_KEY, or "
                      "what `orch apply` said it generated)", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        file: Optional[Path] = typer.Argument(None, help="the deployment file; default: the project in the state"),
        as_json: bool = typer.Option(False, "--json", help="plain JSON on stdout"),
        state: Optional[str] = typer.Option(None, "--state", help="state database: a SQLite file or a SQLAlchemy URL"),
    ) -> None:
        """What runs now, asked of the providers: desired vs actual, health, uptime, cost so far."""
        from orchestrator.apply.diff import err_console, table_console
        from orchestrator.state.db import open_state

        err = err_console()
        with open_state(state) as db:
            doc = collect(db, file, err)
        if as_json:
            typer.echo(json.dumps(doc, indent=2, default=str))
        else:
            render(doc, table_console())
