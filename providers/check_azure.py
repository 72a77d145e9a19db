"""`orch check` for Azure: credentials (azure-identity's DefaultAzureCredential), the subscription, the GPU vCPU
quotas per location (azure-mgmt-compute ``usage.list(location)``), and the calls apply needs besides launching:
the Key Vault that holds the endpoint's keys, and network security groups in the resource group.

Azure counts vCPUs per VM family (``name.value`` of a usage, e.g. standardNCadsH100v5Family), bounded by the
region's total (``cores``); spot VMs count against ``lowPriorityCores`` (Azure docs, "Check vCPU quotas", and
`az vm list-usage`, read 2026-12). Family names differ in case and spacing between sources: matched normalized.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

from providers.check_common import (
    CheckResult,
    QuotaFinding,
    catalog_gpus,
    gpus_from_vcpus,
    one_line,
    parallel,
    run_probe,
)

# instance type pattern -> the usage names of its family (normalized before matching)
FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    (r"^Standard_NC\d+as_T4_v3$", ("standardNCASv3_T4Family",)),
    (r"^Standard_NC\d+ads_A100_v4$", ("standardNCADSA100v4Family",)),
    (r"^Standard_NC\d+adi?s_H100_v5$", ("standardNCadsH100v5Family",)),
    (r"^Standard_ND\d+isr_H100_v5$", ("standardNDSH100v5Family", "standardNDv5H100Family")),
    (r"^Standard_ND\d+isr_H200_v5$", ("standardNDISRH200V5Family",)),
    (r"^Standard_ND\d+asr_v4$", ("standardNDASv4_A100Family",)),
    (r"^Standard_ND\d+amsr_A100_v4$", ("standardNDAMSv4_A100Family",)),
    (r"^Standard_ND\d+isr_MI300X_v5$", ("standardNDISRMI300Xv5Family", "standardNDMI300Xv5Family")),
    (r"^Standard_NV\d+ad[m]?s_A10_v5$", ("standardNVADSA10v5Family",)),
]
NETWORK_API_VERSION = "2023-09-01"
VAULT_API_VERSION = "7.4"
NO_CREDENTIALS = "none found: run `az login` or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET"


def norm(name: str) -> str:
    return re.sub(r"[\s_]", "", name).lower()


def families(instance_type: str) -> tuple[str, ...]:
    for pattern, names in FAMILIES:
        if re.match(pattern, instance_type):
            return tuple(norm(n) for n in names)
    return ()


def _signs_of_credentials() -> bool:
    """Whether DefaultAzureCredential has something to find (it otherwise probes IMDS, which off Azure times out)."""
    env = ("AZURE_CLIENT_ID", "AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
    if any(os.environ.get(v) for v in env):
        return True
    if shutil.which("az") and os.path.isdir(os.path.join(os.path.expanduser("~"), ".azure")):
        return True
    try:
        with open("/sys/class/dmi/id/sys_vendor") as f:
            return "Microsoft" in f.read()
    except OSError:
        return False


def _classify(exc: Exception) -> str:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return "denied" if status in (401, 403) else "error"


def check(regions: list[str] | None = None, options: dict[str, str] | None = None, *, credential: Any = None,
          base_url: str | None = None, client_kwargs: dict[str, Any] | None = None,
          vault_url: str | None = None, vault_policy: Any = None) -> CheckResult:
    """Check Azure for ``regions`` (qualified ids; None: every Azure region of the catalog)."""
    opts = dict(options or {})
    source = "given"
    if credential is None:
        if not _signs_of_credentials():
            return CheckResult("azure", NO_CREDENTIALS, False)
        from azure.identity import DefaultAzureCredential

        credential, source = DefaultAzureCredential(), "DefaultAzureCredential"
        try:
            credential.get_token("https://management.azure.com/.default")
        except Exception as exc:  # noqa: BLE001 - CredentialUnavailableError, ClientAuthenticationError
            return CheckResult("azure", f"{NO_CREDENTIALS} ({one_line(exc)})", False)
    sub = opts.get("subscription_id") or os.environ.get("AZURE_SUBSCRIPTION_ID")
    result = CheckResult("azure", f"found ({source})", True, account=sub)
    if not sub:
        result.problems.append("no subscription: set providers.azure.options.subscription_id or AZURE_SUBSCRIPTION_ID")
        result.blocking = True
        return result
    from azure.mgmt.compute import ComputeManagementClient

    kwargs = dict(client_kwargs or {})
    if base_url:
        kwargs["base_url"] = base_url
    client = ComputeManagementClient(credential, sub, **kwargs)
    gpus = catalog_gpus("azure", regions)
    names = sorted(gpus)
    result.regions_checked = names
    got = parallel(lambda rid: list(client.usage.list(rid.split(":", 1)[1])), names)
    for rid in names:
        usages = got[rid]
        if isinstance(usages, Exception):
            if _classify(usages) == "denied":
                result.blocking = True
            result.problems.append(f"{rid}: usage not read: {one_line(usages)}")
            continue
        result.quotas += _findings(rid, usages, gpus[rid], result.problems)
    rg, vault = opts.get("resource_group"), opts.get("key_vault")
    if rg:
        result.probes.append(run_probe("network", lambda: _nsgs(client, sub, rg), _classify))
    else:
        result.problems.append("providers.azure.options.resource_group is not set: apply needs it")
        result.blocking = True
    if vault:
        url = (vault_url or "https://{vault}.vault.azure.net").format(vault=vault)
        result.probes.append(run_probe("secret store", lambda: _vault(credential, url, vault_policy), _classify))
    else:
        result.problems.append("providers.azure.options.key_vault is not set: apply keeps the endpoint's keys there")
        result.blocking = True
    return result


def _findings(rid: str, usages: list[Any], gpus: dict[str, list[tuple[str, int, int]]], notes: list[str]
              ) -> list[QuotaFinding]:
    by_name = {norm(u.name.value): u for u in usages if u.name is not None and u.name.value}
    total, spot = by_name.get("cores"), by_name.get("lowprioritycores")
    out: list[QuotaFinding] = []
    for gpu, types in sorted(gpus.items()):
        fams: dict[str, list[tuple[str, int, int]]] = {}
        for t in types:
            fam = next((f for f in families(t[0]) if f in by_name), None)
            if fam is None:
                notes.append(f"{rid}: no vCPU quota found for {t[0]}'s family")
                continue
            fams.setdefault(fam, []).append(t)
        for fam, ftypes in fams.items():
            u = by_name[fam]
            limit = float(u.limit) if total is None else min(float(u.limit), float(total.limit))
            out.append(QuotaFinding(rid, gpu, "on_demand", gpus_from_vcpus(limit, ftypes), float(u.limit), "vCPUs",
                                    u.name.value, float(u.current_value)))
            if spot is not None:
                out.append(QuotaFinding(rid, gpu, "spot", gpus_from_vcpus(float(spot.limit), ftypes), float(spot.limit),
                                        "vCPUs", spot.name.value, float(spot.current_value)))
    return out


def _nsgs(client: Any, sub: str, rg: str) -> str:
    from azure.core.rest import HttpRequest

    path = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups"
            f"?api-version={NETWORK_API_VERSION}")
    resp = client.send_request(HttpRequest("GET", path))  # the compute client's authenticated pipeline
    resp.raise_for_status()
    return f"Microsoft.Network/networkSecurityGroups/read allowed in {rg} ({len(resp.json().get('value', []))} groups)"


def _vault(credential: Any, url: str, policy: Any = None) -> str:
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.core.rest import HttpRequest

    policy = policy or BearerTokenCredentialPolicy(
        credential, "https://vault.azure.net/.default")
    with PipelineClient(base_url=url, policies=[policy]) as vc:
        resp = vc.send_request(HttpRequest("GET", f"{url}/secrets?api-version={VAULT_API_VERSION}&maxresults=1"))
    resp.raise_for_status()
    return f"Key Vault secrets/list allowed ({len(resp.json().get('value', []))}+ secrets)"
