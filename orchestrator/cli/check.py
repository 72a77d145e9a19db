"""`orch check [FILE]`: per provider, whether orch could run there now: credentials found (never printed), the
account's GPU quotas per region, and the secret store and network calls apply needs. Quotas found can bound
`orch place FILE --use-quotas` (``quota_rules``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from orchestrator.fmt import wrap_cells

CLOUDS = ("aws", "gcp", "azure")
NOT_USABLE = 3  # exit code: a provider the file uses is not usable (as a provider failure)


def _regions(spec: Any, cloud: str, conf: Any) -> list[str] | None:
    if conf is None or conf.regions is None:
        return None
    return [r if ":" in r else f"{cloud}:{r}" for r in conf.regions]


def _jobs(spec: Any | None) -> list[tuple[str, bool, Any]]:
    """(label, used, thunk) per provider to check: the file's providers, or every known one without a file."""
    from providers import check_onprem

    def cloud_job(name: str, conf: Any) -> Any:
        regions, options = _regions(spec, name, conf), dict(conf.options) if conf is not None else {}

        def run() -> Any:
            import importlib

            return importlib.import_module(f"providers.check_{name}").check(regions, options)
        return run

    providers = spec.providers if spec is not None else None
    if providers is None:  # no file, or a file that allows every cloud
        jobs = [(c, False, cloud_job(c, None)) for c in CLOUDS]
        if spec is None:
            jobs.append(("local", False, lambda: check_onprem.check_local()))
            jobs.append(("kubernetes", False, _current_context))
        return jobs
    jobs = [(c, True, cloud_job(c, getattr(providers, c))) for c in CLOUDS if getattr(providers, c) is not None]
    if providers.onprem is not None:
        fn = check_onprem.check_kubernetes if providers.onprem.kind == "kubernetes" else check_onprem.check_baremetal
        jobs += [(f"onprem:{s.name}", True, (lambda s=s: fn(s))) for s in providers.onprem.sites]
    if providers.local is not None:
        jobs.append(("local", True, lambda: check_onprem.check_local(providers.local)))
    return jobs


def _current_context() -> Any:
    from types import SimpleNamespace

    from providers import check_onprem

    r = check_onprem.check_kubernetes(SimpleNamespace(name="kubernetes", kube_context=None))
    r.provider = "kubernetes"
    return r


def run_checks(spec: Any | None, only: set[str] | None = None) -> list[Any]:
    """Every provider's CheckResult (or those named in ``only``), checked side by side; a check that fails
    outright is one problem line."""
    from concurrent.futures import ThreadPoolExecutor

    from providers.check_common import CheckResult, one_line

    jobs = [j for j in _jobs(spec) if only is None or j[0] in only]

    def safe(job: tuple[str, bool, Any]) -> Any:
        label, used, thunk = job
        try:
            r = thunk()
        except Exception as exc:  # noqa: BLE001 - an SDK missing, a malformed config: one line, no traceback
            r = CheckResult(label, f"not checked: {one_line(exc)}", False)
        r.used = used
        return r

    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(safe, jobs))


def verdict(spec: Any | None, results: list[Any]) -> list[str]:
    """Why the check fails (empty: it passes): a provider the file uses is unusable; or the file allows every cloud
    (no providers section) and none is usable."""
    bad = [f"{r.provider} is not usable" for r in results if r.used and not r.usable]
    if spec is not None and spec.providers is None and not any(r.usable for r in results):
        bad.append("the file allows every cloud (no providers section) and none is usable")
    return bad


def quota_rules(results: list[Any], spot: bool) -> list[Any]:
    """Checked quotas as the catalog's QuotaRules (what `providers.<cloud>.quotas` become): per region and GPU, the
    on-demand quota's GPUs, plus the spot quota's when a deployment may run on spot."""
    from orchestrator.catalog.load import QuotaRule

    per: dict[tuple[str, str, str], int] = {}
    for r in results:
        if not r.credentials_found:
            continue
        for q in r.quotas:
            if q.market == "spot" and not spot:
                continue
            key = (r.provider, q.region, q.gpu)
            per[key] = per.get(key, 0) + q.max_gpus
    return [QuotaRule(provider=p, region=reg, gpu=gpu, max_gpus=n) for (p, reg, gpu), n in sorted(per.items())]


def checked_catalog(spec: Any, echo: Any) -> Any:
    """The file's catalog with the quotas found in its clouds' accounts added as QuotaRules (`place --use-quotas`).
    A cloud whose quotas could not be read is said so, and left unbounded by this check."""
    from orchestrator.catalog.load import load_catalog

    catalog = load_catalog(spec)
    clouds = {o.provider for o in catalog.offerings} & set(CLOUDS)
    results = run_checks(spec, only=clouds)
    spot = any(d.spot != "forbid" for d in spec.deployments)
    rules = quota_rules(results, spot)
    catalog.quotas.extend(rules)
    for r in results:
        if not r.credentials_found or not r.quotas:
            echo(f"--use-quotas: no quotas read for {r.provider} ({r.credentials}"
                 + (f"; {r.problems[0]}" if r.problems else "") + "): not bounded by its account's quotas")
    echo(f"--use-quotas: {len(rules)} quota limit(s) from {', '.join(sorted({q.provider for q in rules})) or 'no cloud'} "
         f"({'on-demand + spot' if spot else 'on-demand'} GPUs per region and GPU type)")
    return catalog


def _quota_cell(r: Any, region: str) -> str:
    by_gpu: dict[str, dict[str, int]] = {}
    for q in r.quotas:
        if q.region == region:
            by_gpu.setdefault(q.gpu, {})[q.market] = q.max_gpus
    parts = []
    for gpu, m in sorted(by_gpu.items()):
        od, sp = m.get("on_demand"), m.get("spot")
        text = f"{gpu} {od if od is not None else '-'}/{sp if sp is not None else '-'}"
        parts.append(f"[red]{text}[/]" if not od and not sp else text)
    return ", ".join(parts) or "-"


def render(doc: dict[str, Any], results: list[Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    title = f"orch check: {doc['file']}" if doc["file"] else "orch check: every known provider"
    table = Table(title=title, title_justify="left", caption="GPU quotas: the most GPUs each quota allows, "
                  "on-demand/spot (vCPU quotas over the fewest vCPUs per GPU of the catalog's instance types)",
                  caption_justify="left")
    for col in ("provider", "used", "usable", "credentials", "account", "region", "GPU quotas", "checks"):
        table.add_column(col)
    for r in results:
        usable = "[green]yes[/]" if r.usable else "[red]no[/]"
        checks = "\n".join(f"{'[green]ok[/]' if p.ok else '[red]' + p.status + '[/]'} {escape(p.what)}: "
                           f"{escape(p.detail)}" for p in r.probes)
        notes = "\n".join(escape(n) for n in r.problems[:5]) + (f"\n… {len(r.problems) - 5} more (--json)"
                                                                  if len(r.problems) > 5 else "")
        checks = "\n".join(x for x in (checks, f"[yellow]{notes}[/]" if notes else "") if x)
        regions = sorted({q.region for q in r.quotas}) or [None]
        for i, region in enumerate(regions):
            first = i == 0
            table.add_row(r.provider if first else "", ("yes" if r.used else "") if first else "",
                          usable if first else "", escape(r.credentials) if first else "",
                          escape(str(r.account or "")) if first else "", region or "-",
                          _quota_cell(r, region) if region else "-", checks if first else "")
    console.print(wrap_cells(table))
    for line in doc["failures"]:
        console.print(f"[red]not ready:[/] {escape(line)}")


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_cmd(
        file: Path | None = typer.Argument(None, help="deployment file; default: every known provider"),  # noqa: B008
        as_json: bool = typer.Option(False, "--json", help="plain JSON on stdout"),
    ) -> None:
        """Whether each provider is ready: credentials, GPU quotas per region, secret store and network access."""
        from orchestrator.cli.console import err, out

        spec = None
        if file is not None:
            from orchestrator.spec.loader import load_spec

            spec = load_spec(file).spec
        err().print(f"checking {'the providers of ' + str(file) if file else 'every known provider'}…",
                    highlight=False, markup=False)
        results = run_checks(spec)
        failures = verdict(spec, results)
        doc = {"file": str(file) if file else None, "ready": not failures, "failures": failures,
               "providers": [r.to_json() for r in results]}
        if as_json:
            typer.echo(json.dumps(doc, indent=2, default=str))
        else:
            render(doc, results, out())
        if failures:
            raise typer.Exit(NOT_USABLE)
