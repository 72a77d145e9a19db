"""Price sources that need no credentials, for `orch catalog refresh --source public`.

- Azure: the Retail Prices API (prices.azure.com), paged with NextPageLink. Base URL: ``ORCH_AZURE_PRICES_URL``.
- AWS: the public price list offer files (pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/<region>/
  index.json), no spot prices. Base URL: ``ORCH_AWS_PRICING_URL``. The offer file names no GPU model, so only the
  instance types orch's snapshot already knows the hardware of are kept. A real region file is hundreds of MB.
- GCP has none: the Cloud Billing Catalog API needs an API key or credentials.

Each fetcher has the provider's ``offerings(regions)`` shape. No retries: a host that cannot be resolved or reached
within CONNECT_S raises NetworkDown at once, so an offline refresh ends in seconds with one message.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
from typing import Any
from urllib.parse import urlsplit

from orchestrator.catalog.types import Offering
from orchestrator.errors import ProviderError, UserError

CONNECT_S = 3.0
AZURE_URL = "https://prices.azure.com"
AWS_URL = "https://pricing.us-east-1.amazonaws.com"
AWS_SOURCE = "AWS public price list (offers/v1.0/aws/AmazonEC2, no credentials)"
GCP_NEEDS_KEY = ("gcp: no keyless price list: the Cloud Billing Catalog API needs an API key or credentials. Use "
                 "`--source api` with Application Default Credentials (gcloud auth application-default login), or "
                 "`orch catalog import DIR` of a SkyPilot catalog")


class NetworkDown(ProviderError):
    """The price host could not be resolved or reached: every region would fail the same way."""


def check_reachable(url: str, timeout: float = CONNECT_S) -> None:
    """Resolve and connect to ``url``'s host within ``timeout`` (DNS included, which httpx does not bound)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

    def probe() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(probe).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise NetworkDown(f"cannot reach {parts.scheme}://{host}:{port} within {timeout:g} s") from None
    except OSError as exc:
        raise NetworkDown(f"cannot reach {parts.scheme}://{host}:{port} ({exc})") from None
    finally:
        pool.shutdown(wait=False)


def _client(timeout: float = 60.0) -> Any:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=CONNECT_S), follow_redirects=True)


def _http_error(kind: str, region: str, exc: Exception) -> ProviderError:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return ProviderError(f"{kind}: prices for {region}: HTTP {exc.response.status_code} from {exc.request.url}")
    if isinstance(exc, httpx.ConnectError):
        return NetworkDown(f"{kind}: prices for {region}: {exc}")
    return ProviderError(f"{kind}: prices for {region}: {exc}")


class AzureRetailPrices:
    """Azure Retail Prices API, no credentials."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or os.environ.get("ORCH_AZURE_PRICES_URL") or AZURE_URL).rstrip("/")

    def offerings(self, regions: list[str]) -> list[Offering]:
        import httpx

        from providers.pricing import azure as ap
        from providers.pricing import bare_region

        check_reachable(self.base_url)
        out: list[Offering] = []
        with _client() as http:
            for r in regions:
                region = bare_region("azure", r)
                try:
                    out += ap.region_offerings(region, ap.parse_items(ap.fetch_items(http, region, self.base_url)))
                except (httpx.HTTPError, ValueError) as exc:
                    raise _http_error("azure", region, exc) from None
        return out


class AwsPublicPriceList:
    """AWS public price list offer files (one JSON per region), no credentials and no spot prices."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or os.environ.get("ORCH_AWS_PRICING_URL") or AWS_URL).rstrip("/")

    def offerings(self, regions: list[str]) -> list[Offering]:
        import httpx

        from orchestrator.catalog.offerings import snapshot_offerings
        from providers.pricing import bare_region, today
        from providers.pricing.aws import parse_price_list, price_filters

        check_reachable(self.base_url)
        hardware = {o.instance_type: o for o in snapshot_offerings() if o.provider == "aws"}
        out: list[Offering] = []
        with _client(timeout=600.0) as http:
            for r in regions:
                region = bare_region("aws", r)
                url = f"{self.base_url}/offers/v1.0/aws/AmazonEC2/current/{region}/index.json"
                try:
                    resp = http.get(url)
                    resp.raise_for_status()
                    offer = resp.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise _http_error("aws", region, exc) from None
                wanted = {f["Field"]: f["Value"] for f in price_filters(region)}
                docs = []
                on_demand = offer.get("terms", {}).get("OnDemand", {})
                for sku, product in (offer.get("products") or {}).items():
                    attrs = product.get("attributes", {})
                    if attrs.get("instanceType") in hardware and all(attrs.get(k) == v for k, v in wanted.items()):
                        docs.append({"product": product, "terms": {"OnDemand": on_demand.get(sku, {})}})
                prices = parse_price_list(docs)
                as_of = str(offer.get("publicationDate", ""))[:10] or today()
                for itype in sorted(prices):
                    h = hardware[itype]
                    out.append(Offering(provider="aws", region=f"aws:{region}", instance_type=itype, gpu=h.gpu,
                                        gpu_count=h.gpu_count, vcpus=h.vcpus, memory_gb=h.memory_gb,
                                        usd_per_hour=prices[itype], spot_usd_per_hour=None,
                                        source=f"{AWS_SOURCE}, version {offer.get('version', '?')}", as_of=as_of,
                                        list_usd_per_hour=prices[itype]))
        return out


def public_source(kind: str, base_url: str | None = None) -> AzureRetailPrices | AwsPublicPriceList:
    if kind == "azure":
        return AzureRetailPrices(base_url)
    if kind == "aws":
        return AwsPublicPriceList(base_url)
    raise UserError(GCP_NEEDS_KEY)
