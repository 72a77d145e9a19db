"""FOCUS 1.2 export (CSV and Parquet): one Usage row per replica per UTC day, plus one row per egress/storage charge.

Mapping: BilledCost = EffectiveCost = ContractedCost = billed hours × effective $/h (discounts and
spot prices are already in it); ListCost = hours × list $/h (before negotiated discounts).
PricingQuantity/ConsumedQuantity are instance-hours. ChargeFrequency is Usage-Based; InvoiceId is null
(orch's figures are not an invoice). Token figures travel in x_-prefixed custom columns, as FOCUS requires.
CSV: money rounded to cents, unit prices to 6 decimals, token and request counts as integers; Parquet
keeps full precision. Checked with the FinOps Foundation's focus-validator (tests/test_focus_validator.py).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Any

from orchestrator.reports.aggregate import Line, Report, iso

MANDATORY = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingAccountName",
    "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargePeriodStart", "ChargePeriodEnd", "InvoiceIssuerName", "ProviderName",
    "PublisherName", "PricingQuantity", "PricingUnit", "ServiceCategory", "ServiceName",
]
RECOMMENDED = ["ChargeFrequency", "InvoiceId", "ServiceSubcategory"]
CONDITIONAL = [
    "CommitmentDiscountStatus", "ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "PricingCategory", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "SkuId", "SkuMeter", "SkuPriceId", "SkuPriceDetails",
    "SubAccountId", "SubAccountName", "Tags", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice",
]
CUSTOM = [
    "x_Model", "x_Deployment", "x_Team", "x_Project", "x_GpuType", "x_GpuCount", "x_InputTokens",
    "x_OutputTokens", "x_Requests", "x_CostPerMillionTokens", "x_GpuHours", "x_Utilization", "x_IdleCost",
    "x_EstimatedEgressCost",
]
COLUMNS = MANDATORY + RECOMMENDED + CONDITIONAL + CUSTOM

_PROVIDERS = {  # provider kind -> (ProviderName/Publisher/InvoiceIssuer, ServiceName)
    "aws": ("AWS", "Amazon Elastic Compute Cloud"),
    "gcp": ("Google Cloud", "Compute Engine"),
    "azure": ("Microsoft", "Virtual Machines"),
    "kubernetes": ("Kubernetes", "Kubernetes"),
    "baremetal": ("On-premises", "Bare metal servers"),
    "onprem": ("On-premises", "Bare metal servers"),
    "local": ("Local", "Local process"),
}
_PRICING_CATEGORY = {"on_demand": "Standard", "spot": "Dynamic", "onprem": "Other"}
# kind -> (ServiceCategory, ServiceSubcategory, ServiceName); the pairs are FOCUS 1.2's allowed values
_REPLICA_SERVICE = ("AI and Machine Learning", "Generative AI")
_GATEWAY_SERVICE = ("Networking", "Application Networking")
_EXTRA_SERVICE = {"egress": ("Networking", "Network Connectivity", "Data Transfer"),
                  "storage": ("Storage", "Object Storage", "Storage")}


def _month_bounds(ts: float) -> tuple[str, str]:
    d = datetime.fromtimestamp(ts, timezone.utc)
    start = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _base(ln: Line) -> dict[str, Any]:
    r = ln.replica
    provider, service = _PROVIDERS.get(r.provider, (r.provider, r.provider))
    bps, bpe = _month_bounds(ln.cost.day)
    region = r.region.split(":", 1)[-1]
    return {
        "BillingAccountId": r.project or "default",
        "BillingAccountName": f"orch project {r.project}" if r.project else "orch",
        "BillingCurrency": "USD",
        "BillingPeriodStart": bps,
        "BillingPeriodEnd": bpe,
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeFrequency": "Usage-Based",
        "InvoiceId": None,
        "ChargePeriodStart": iso(ln.cost.day),
        "ChargePeriodEnd": iso(ln.cost.day + 86400),
        "InvoiceIssuerName": provider,
        "ProviderName": provider,
        "PublisherName": provider,
        "ServiceName": service,
        "RegionId": region,
        "RegionName": region,
        "ResourceId": r.id,
        "ResourceName": r.id,
        "SubAccountId": r.project or "default",
        "SubAccountName": r.project or "default",
        "PricingCurrency": "USD",
        "Tags": json.dumps(
            {k: v for k, v in {"orch-project": r.project, "orch-deployment": r.deployment,
                                "orch-plan": r.plan_id, "team": r.team}.items() if v},
            sort_keys=True,
        ),
        "x_Model": r.model,
        "x_Deployment": r.deployment,
        "x_Team": r.team or "",
        "x_Project": r.project,
        "x_GpuType": r.gpu,
        "x_GpuCount": r.gpu_count,
    }


def rows(report: Report) -> list[dict[str, Any]]:
    """FOCUS rows, ordered by day then resource."""
    out: list[dict[str, Any]] = []
    for ln in sorted(report.lines, key=lambda x: (x.cost.day, x.replica.id)):
        r, c = ln.replica, ln.cost
        inp, outp = ln.counter("prompt_tokens"), ln.counter("generation_tokens")
        util = (outp / (ln.capacity_tps * (c.seconds))) if ln.capacity_tps and c.seconds > 0 else None
        gateway = r.details.get("role") == "gateway"
        category, subcategory = _GATEWAY_SERVICE if gateway else _REPLICA_SERVICE
        what = "gateway" if gateway else "vLLM replica"
        row = _base(ln) | {
            "BilledCost": c.effective_usd,
            "EffectiveCost": c.effective_usd,
            "ListCost": c.list_usd,
            "ContractedCost": c.effective_usd,
            "ChargeDescription": f"{what} {r.id}: {r.instance_type}"
                                 + ("" if gateway else f" ({r.gpu_count}x {r.gpu})") + f", {c.hours:.4f} h",
            "PricingQuantity": c.hours,
            "PricingUnit": "Hours",
            "ServiceCategory": category,
            "ServiceSubcategory": subcategory,
            "ConsumedQuantity": c.hours,
            "ConsumedUnit": "Hours",
            "ListUnitPrice": c.list_usd_per_hour,
            "ContractedUnitPrice": c.usd_per_hour,
            "PricingCategory": _PRICING_CATEGORY.get(r.market, "Other"),
            "ResourceType": what,
            "SkuId": r.instance_type,
            "SkuMeter": "Instance hours",
            "SkuPriceId": f"{r.provider}:{r.region.split(':', 1)[-1]}:{r.instance_type}:{r.market}",
            "SkuPriceDetails": json.dumps({"x_GpuType": r.gpu, "x_GpuCount": r.gpu_count, "x_Market": r.market},
                                          sort_keys=True),
            "PricingCurrencyContractedUnitPrice": c.usd_per_hour,
            "PricingCurrencyEffectiveCost": c.effective_usd,
            "PricingCurrencyListUnitPrice": c.list_usd_per_hour,
            "x_InputTokens": inp,
            "x_OutputTokens": outp,
            "x_Requests": ln.counter("requests"),
            "x_CostPerMillionTokens": (c.effective_usd / (inp + outp) * 1e6) if inp + outp > 0 else None,
            "x_GpuHours": c.gpu_hours,
            "x_Utilization": util,
            "x_IdleCost": c.effective_usd * (1 - min(1.0, util)) if util is not None else None,
            "x_EstimatedEgressCost": ln.est_egress_usd,  # the plan's prediction: not billed, not in any *Cost
        }
        out.append(row)
        for kind, usd in sorted(ln.cost.extra.items()):
            category, subcategory, service = _EXTRA_SERVICE.get(kind, ("Other", "Other (Other)", kind))
            qty, unit = ln.cost.extra_quantity.get(kind, (0.0, "Units"))
            unit_price = usd / qty if qty > 0 else None
            sku = f"{r.provider}:{r.region.split(':', 1)[-1]}:{kind}"
            out.append(
                _base(ln) | {
                    "BilledCost": usd, "EffectiveCost": usd, "ListCost": usd, "ContractedCost": usd,
                    "ChargeDescription": f"{kind} for replica {r.id}", "PricingQuantity": qty, "PricingUnit": unit,
                    "ConsumedQuantity": qty, "ConsumedUnit": unit,
                    "ServiceCategory": category, "ServiceSubcategory": subcategory, "ServiceName": service,
                    "ResourceType": what,
                    "PricingCategory": "Standard", "ListUnitPrice": unit_price, "ContractedUnitPrice": unit_price,
                    "SkuId": sku, "SkuPriceId": f"{sku}:standard", "SkuMeter": service, "SkuPriceDetails": "{}",
                    "PricingCurrencyContractedUnitPrice": unit_price, "PricingCurrencyEffectiveCost": usd,
                    "PricingCurrencyListUnitPrice": unit_price,
                    "x_InputTokens": 0, "x_OutputTokens": 0, "x_Requests": 0, "x_GpuHours": 0.0,
                }
            )
    return [{k: row.get(k) for k in COLUMNS} for row in out]


_MONEY = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCurrencyEffectiveCost", "x_IdleCost",
          "x_EstimatedEgressCost"}
_UNIT_PRICE = {"ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyContractedUnitPrice",
               "PricingCurrencyListUnitPrice", "x_CostPerMillionTokens"}
_COUNT = {"x_InputTokens", "x_OutputTokens", "x_Requests"}


def _cell(name: str, v: Any) -> Any:
    """Null as an empty cell; money to cents, unit prices to 6 decimals, counts as integers, other decimals
    in plain notation (FOCUS numbers carry no exponent; a money column always has a decimal point, so that
    readers type it as a decimal, not an integer)."""
    if v is None:
        return ""
    if name in _COUNT:
        return str(int(round(float(v))))
    if name in _MONEY:
        text = f"{float(v):.2f}"
        return "0.00" if text == "-0.00" else text
    if isinstance(v, float):
        text = f"{v:.6f}" if name in _UNIT_PRICE else f"{v:.12f}"
        text = text.rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return v


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows(report):
        w.writerow({k: _cell(k, v) for k, v in row.items()})
    return buf.getvalue()


_FLOAT = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity",
          "ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
          "PricingCurrencyListUnitPrice", "x_InputTokens", "x_OutputTokens", "x_Requests",
          "x_CostPerMillionTokens", "x_GpuHours", "x_Utilization", "x_IdleCost", "x_EstimatedEgressCost"}
_TIME = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}


def write_parquet(report: Report, path: str) -> None:
    """Parquet with typed columns: decimals as float64, date-times as UTC timestamps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = rows(report)
    fields, arrays = [], []
    for col in COLUMNS:
        values = [d[col] for d in data]
        if col in _FLOAT:
            typ = pa.float64()
            values = [None if v is None else float(v) for v in values]
        elif col in _TIME:
            typ = pa.timestamp("s", tz="UTC")
            values = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
        elif col == "x_GpuCount":
            typ = pa.int64()
        else:
            typ = pa.string()
            values = [None if v in (None, "") else str(v) for v in values]
        fields.append(pa.field(col, typ))
        arrays.append(pa.array(values, type=typ))
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
