"""`orch check` for GCP: credentials (Application Default Credentials), the project, the regional GPU quotas
(Compute Engine ``regions.get``: ``quotas[]`` of metric, limit, usage), and the calls apply needs besides
launching: Secret Manager (the VMs read their keys there) and firewall rules (each deployment gets its own).

GCP counts GPUs per type and region; spot VMs use the PREEMPTIBLE_ metric where the project has one, else the
regular one (https://cloud.google.com/compute/resource-usage#gpu_quota, read 2026-12).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from providers.check_common import (
    CheckResult,
    QuotaFinding,
    catalog_gpus,
    one_line,
    parallel,
    run_probe,
)

# catalog GPU -> Compute Engine quota metric (the A3 High/Edge H100s; A3 Mega counts NVIDIA_H100_MEGA_GPUS)
METRICS = {
    "T4": "NVIDIA_T4_GPUS",
    "L4": "NVIDIA_L4_GPUS",
    "A100-40GB": "NVIDIA_A100_GPUS",
    "A100-80GB": "NVIDIA_A100_80GB_GPUS",
    "H100": "NVIDIA_H100_GPUS",
    "H200": "NVIDIA_H200_GPUS",
    "B200": "NVIDIA_B200_GPUS",
}
SECRET_MANAGER = "https://secretmanager.googleapis.com"
NO_CREDENTIALS = ("none found: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS")


def _classify(exc: Exception) -> str:
    from google.api_core import exceptions as gexc

    if isinstance(exc, (gexc.PermissionDenied, gexc.Unauthenticated, gexc.Forbidden, gexc.Unauthorized)):
        return "denied"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return "denied" if status in (401, 403) else "error"


def _adc_configured() -> bool:
    """Whether google.auth.default could find credentials without asking the metadata server (which, off GCP, only
    times out): the env variable, gcloud's ADC file, or a GCE machine."""
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    config = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    if os.path.exists(os.path.join(config, "application_default_credentials.json")):
        return True
    try:
        with open("/sys/class/dmi/id/product_name") as f:
            return "Google" in f.read()
    except OSError:
        return False


def check(regions: list[str] | None = None, options: dict[str, str] | None = None, *, credentials: Any = None,
          client_options: Any = None, secretmanager_url: str = SECRET_MANAGER) -> CheckResult:
    """Check GCP for ``regions`` (qualified ids; None: every GCP region of the catalog)."""
    opts = dict(options or {})
    project = opts.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    source = "given"
    if credentials is None:
        if not _adc_configured():
            return CheckResult("gcp", NO_CREDENTIALS, False)
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, default_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError as exc:
            return CheckResult("gcp", f"{NO_CREDENTIALS} ({one_line(exc)})", False)
        project = project or default_project
        source = "application default credentials"
    result = CheckResult("gcp", f"found ({source})", True, account=project)
    if not project:
        result.problems.append("no project: set providers.gcp.options.project or GOOGLE_CLOUD_PROJECT")
        result.blocking = True
        return result
    from google.cloud import compute_v1

    gpus = catalog_gpus("gcp", regions)
    names = sorted(gpus)
    result.regions_checked = names
    kw = {"credentials": credentials, "client_options": client_options, "transport": "rest"}
    regions_client = compute_v1.RegionsClient(**kw)
    got = parallel(lambda rid: regions_client.get(project=project, region=rid.split(":", 1)[1]), names)
    for rid in names:
        region = got[rid]
        if isinstance(region, Exception):
            if _classify(region) == "denied":
                result.credentials = f"found ({source}), but compute.regions.get is denied: {one_line(region)}"
                result.blocking = True
            result.problems.append(f"{rid}: quotas not read: {one_line(region)}")
            continue
        result.quotas += _findings(rid, region, gpus[rid], result.problems)
    firewalls = compute_v1.FirewallsClient(**kw)
    result.probes.append(run_probe("network", lambda: _firewalls(firewalls, project), _classify))
    result.probes.append(run_probe("secret store", lambda: _secrets(credentials, project, secretmanager_url), _classify))
    return result


def _findings(rid: str, region: Any, gpus: dict[str, Any], notes: list[str]) -> list[QuotaFinding]:
    quotas = {q.metric: q for q in region.quotas}
    out: list[QuotaFinding] = []
    for gpu in sorted(gpus):
        metric = METRICS.get(gpu)
        if metric is None:
            notes.append(f"{rid}: no known quota metric for {gpu}")
            continue
        regular = quotas.get(metric)
        if regular is None:
            notes.append(f"{rid}: the region lists no {metric} quota")
            continue
        out.append(QuotaFinding(rid, gpu, "on_demand", int(regular.limit), float(regular.limit), "GPUs", metric,
                                float(regular.usage)))
        spot = quotas.get(f"PREEMPTIBLE_{metric}")
        # a project without a preemptible quota of its own launches spot VMs under the regular one
        use = spot if spot is not None and spot.limit > 0 else regular
        out.append(QuotaFinding(rid, gpu, "spot", int(use.limit), float(use.limit), "GPUs", use.metric, float(use.usage)))
    return out


def _firewalls(client: Any, project: str) -> str:
    from google.cloud import compute_v1

    first = list(itertools.islice(client.list(request=compute_v1.ListFirewallsRequest(project=project, max_results=1)), 1))
    return f"compute.firewalls.list allowed ({len(first)}+ rules)"


def _secrets(credentials: Any, project: str, base: str) -> str:
    from google.auth.transport.requests import AuthorizedSession

    resp = AuthorizedSession(credentials).get(f"{base.rstrip('/')}/v1/projects/{project}/secrets",
                                              params={"pageSize": 1}, timeout=10)
    resp.raise_for_status()
    return f"secretmanager.secrets.list allowed ({len(resp.json().get('secrets', []))}+ secrets)"
