"""Desired replicas vs what exists → create / keep / adopt / delete, shown like a terraform plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from orchestrator.apply.desired import DesiredReplica
from orchestrator.fmt import wrap_cells
from orchestrator.priced import PricedReplica
from providers.base import Handle

if TYPE_CHECKING:
    from rich.console import Console

Action = Literal["create", "keep", "adopt", "delete"]
SYMBOL = {"create": "+", "keep": "=", "adopt": "~", "delete": "-"}
STYLE = {"create": "green", "keep": "dim", "adopt": "yellow", "delete": "red"}


@dataclass
class Resource:
    """A replica that exists: reported by its provider (verified) or, when the provider is unreachable, by state."""

    replica_id: str
    deployment: str
    provider: str  # provider name as in the plan (aws, onprem, local ...)
    region: str
    handle: Handle
    verified: bool
    in_state: bool  # state has a live row for it with this handle
    priced: PricedReplica | None = None  # from its state row (or the desired replica); None: state never knew it


@dataclass
class Change:
    action: Action
    replica_id: str
    deployment: str
    priced: PricedReplica  # what it will be (create/keep/adopt) or was (delete)
    desired: DesiredReplica | None = None
    resource: Resource | None = None

    @property
    def usd_per_hour(self) -> float:
        return self.priced.usd_per_hour

    @property
    def old_usd_per_hour(self) -> float:
        """What the replica is billed now (the desired price for a create)."""
        if self.resource is None or self.resource.priced is None or self.action == "delete":
            return self.usd_per_hour
        return self.resource.priced.usd_per_hour

    @property
    def repriced(self) -> bool:
        return self.action == "keep" and abs(self.old_usd_per_hour - self.usd_per_hour) > 1e-12


def _from_desired(action: Action, d: DesiredReplica, res: Resource | None) -> Change:
    return Change(action, d.id, d.deployment.name, d.priced, d, res)


def deletion(r: Resource) -> Change:
    """Deleting what exists, as state knew it (or only where it is, when state never knew it)."""
    return Change("delete", r.replica_id, r.deployment, r.priced or PricedReplica.unknown(r.provider, r.region),
                  None, r)


def diff(desired: list[DesiredReplica], resources: list[Resource]) -> list[Change]:
    """One change per desired replica (create/keep/adopt) and per resource not desired (delete).

    Duplicates (two resources with one replica label) keep the one state knows; the others are deleted.
    """
    by_id: dict[str, list[Resource]] = {}
    for r in resources:
        by_id.setdefault(r.replica_id, []).append(r)
    changes: list[Change] = []
    wanted = set()
    for d in desired:
        wanted.add(d.id)
        found = sorted(by_id.get(d.id, []), key=lambda r: (not r.in_state, not r.verified, r.handle.id))
        if not found:
            changes.append(_from_desired("create", d, None))
            continue
        primary, extras = found[0], found[1:]
        changes.append(_from_desired("keep" if primary.in_state else "adopt", d, primary))
        changes.extend(deletion(x) for x in extras)
    for rid, rs in by_id.items():
        if rid not in wanted:
            changes.extend(deletion(r) for r in rs)
    return changes


def table_console() -> Console:
    """stdout for tables: the terminal's width, or wide enough not to truncate ids when piped."""
    from orchestrator.console import out

    return out()


def err_console() -> Console:
    """stderr for messages and progress; lines are not hard-wrapped (they get grepped and logged)."""
    from orchestrator.console import err

    return err()


def counts(changes: list[Change]) -> dict[str, int]:
    out = {a: 0 for a in SYMBOL}
    for c in changes:
        out[c.action] += 1
    return out


def render(changes: list[Change], console: Console, title: str = "Changes") -> None:
    """The plan of changes as a table, then a one-line summary with $/h before and after."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("", "replica", "deployment", "provider", "region", "instance", "GPUs", "market"):
        table.add_column(col)
    table.add_column("$/h", justify="right")
    for c in sorted(changes, key=lambda c: (c.deployment, c.replica_id, c.action)):
        style, p = STYLE[c.action], c.priced
        table.add_row(
            f"[{style}]{SYMBOL[c.action]} {c.action}[/]", c.replica_id, c.deployment, p.provider, p.region,
            p.instance_type, f"{p.gpu_count}x{p.gpu}", p.market,
            f"{c.old_usd_per_hour:.2f} -> {c.usd_per_hour:.2f}" if c.repriced else f"{c.usd_per_hour:.2f}", style=None,
        )
    console.print(wrap_cells(table))
    n = counts(changes)
    before = sum(c.old_usd_per_hour for c in changes if c.action in ("keep", "adopt", "delete"))
    after = sum(c.usd_per_hour for c in changes if c.action != "delete")
    repriced = sum(c.repriced for c in changes)
    console.print(
        f"{n['create']} to create, {n['keep']} to keep"
        + (f" ({repriced} at a new price from now on)" if repriced else "")
        + f", {n['adopt']} to adopt, {n['delete']} to delete; ${before:,.2f}/h now -> ${after:,.2f}/h after"
    )


def has_work(changes: list[Change]) -> bool:
    """Anything to do besides recording a new price (which needs no provider call)."""
    return any(c.action in ("create", "adopt", "delete") for c in changes)
