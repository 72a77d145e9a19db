"""`orch check` for AWS: credentials (boto3's chain), the account (STS), EC2's GPU vCPU quotas per region (Service
Quotas), and the calls apply needs besides launching: Secrets Manager (the VMs read their keys there) and
security groups (each deployment gets its own).

EC2 counts GPU instances in vCPUs per instance family, each its own quota (AWS Service Quotas, service code
``ec2``; the codes below as the Service Quotas console and API name them, checked against public uses of
get-service-quota, 2026-12). A quota's vCPUs become GPUs of each catalog GPU type (check_common.gpus_from_vcpus).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.check_common import (
    CheckResult,
    QuotaFinding,
    catalog_gpus,
    gpus_from_vcpus,
    parallel,
    run_probe,
)

# instance family prefix -> (on-demand quota code, spot quota code or None, the quota's name)
FAMILY_QUOTAS: dict[str, tuple[str, str | None, str]] = {
    "p": ("L-417A185B", "L-7212CCBC", "Running On-Demand P instances / All P Spot Instance Requests"),
    "g": ("L-DB2E81BA", "L-3819A6DF", "Running On-Demand G and VT instances / All G and VT Spot Instance Requests"),
    "vt": ("L-DB2E81BA", "L-3819A6DF", "Running On-Demand G and VT instances / All G and VT Spot Instance Requests"),
    "inf": ("L-1945791B", None, "Running On-Demand Inf instances"),
    "trn": ("L-2C3B7624", None, "Running On-Demand Trn instances"),
}
ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


def family(instance_type: str) -> str | None:
    """'p5.48xlarge' -> 'p', 'g6e.xlarge' -> 'g', 'inf2.xlarge' -> 'inf', 'p6-b200.48xlarge' -> 'p'."""
    import re

    m = re.match(r"[a-z]+", instance_type.lower())
    return m.group(0) if m and m.group(0) in FAMILY_QUOTAS else None


def _classify(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"):
            return "denied"
    return "error"


def check(regions: list[str] | None = None, options: dict[str, str] | None = None, *,
          client: ClientFactory | None = None) -> CheckResult:
    """Check AWS for ``regions`` (qualified ids; None: every AWS region of the catalog)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    creds = session.get_credentials()
    if creds is None and client is None:
        return CheckResult("aws", "none found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
                           "`aws configure`", False)
    source = getattr(creds, "method", None) or "boto3 chain"
    cfg = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10)
    make = client or (lambda service, region: session.client(service, region_name=region, config=cfg))
    result = CheckResult("aws", f"found ({source})", True)
    gpus = catalog_gpus("aws", regions)
    names = sorted(gpus)
    result.regions_checked = names
    first = names[0].split(":", 1)[1] if names else (session.region_name or "us-east-1")
    ident = run_probe("identity", lambda: str(make("sts", first).get_caller_identity()["Account"]), _classify)
    if ident.status != "ok":
        result.credentials_found = False
        result.credentials = f"rejected ({ident.detail})"
        return result
    result.account = ident.detail
    # clients made here, one thread: a boto3 session is not safe to make clients from in several at once
    sq = {rid: make("service-quotas", rid.split(":", 1)[1]) for rid in names}
    found = parallel(lambda rid: _region_quotas(sq[rid], rid, gpus[rid]), names)
    for rid in names:
        got = found[rid]
        if isinstance(got, Exception):
            result.problems.append(f"{rid}: quotas not read: {got}")
        else:
            quotas, notes = got
            result.quotas += quotas
            result.problems += notes
    result.probes.append(run_probe("secret store", lambda: _secrets(make("secretsmanager", first)), _classify))
    result.probes.append(run_probe("network", lambda: _groups(make("ec2", first)), _classify))
    return result


def _region_quotas(sq: Any, rid: str, gpus: dict[str, list[tuple[str, int, int]]]
                   ) -> tuple[list[QuotaFinding], list[str]]:
    """The GPU quotas of one region: each family's vCPU quotas read once, then turned into GPUs per GPU type."""
    from botocore.exceptions import ClientError

    values: dict[str, float | None] = {}
    notes: list[str] = []

    def value(code: str) -> float | None:
        if code not in values:
            try:
                values[code] = float(sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
            except ClientError as exc:
                err = exc.response.get("Error", {})
                if err.get("Code") != "NoSuchResourceException":
                    raise
                values[code] = None
                notes.append(f"{rid}: quota {code} not found")
        return values[code]

    out: list[QuotaFinding] = []
    for gpu, types in sorted(gpus.items()):
        by_family: dict[str, list[tuple[str, int, int]]] = {}
        for t in types:
            fam = family(t[0])
            if fam is None:
                notes.append(f"{rid}: no known quota for {t[0]}")
                continue
            by_family.setdefault(fam, []).append(t)
        for fam, ftypes in by_family.items():
            od, spot, name = FAMILY_QUOTAS[fam]
            for market, code in (("on_demand", od), ("spot", spot)):
                v = value(code) if code else None
                if v is not None:
                    out.append(QuotaFinding(rid, gpu, market, gpus_from_vcpus(v, ftypes), v, "vCPUs",  # type: ignore[arg-type]
                                            f"{code} ({name.split(' / ')[0 if market == 'on_demand' else -1]})"))
    return out, notes


def _secrets(sm: Any) -> str:
    got = sm.list_secrets(MaxResults=1)
    return f"secretsmanager:ListSecrets allowed ({len(got.get('SecretList', []))}+ secrets)"


def _groups(ec2: Any) -> str:
    got = ec2.describe_security_groups(MaxResults=5)
    return f"ec2:DescribeSecurityGroups allowed ({len(got.get('SecurityGroups', []))}+ groups)"

