"""A gateway's control port: the router's worker routes behind the edge's admin key (containers/gateway.py)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from containers.gateway import control_port
from orchestrator.errors import ProviderError

ADD_TIMEOUT_S = 40.0  # vllm-router answers /add_worker once the worker's /health does (orch asks after it does)


def control_url(endpoint: str) -> str:
    """http://host:port (the endpoint users call) -> http://host:port+1 (orch's control port)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    netloc = f"[{host}]:{control_port(port)}" if ":" in host else f"{host}:{control_port(port)}"
    return urlunsplit((parts.scheme or "http", netloc, "", "", ""))


class GatewayAdmin:
    def __init__(self, endpoint: str, admin_key: str, timeout_s: float = 10.0) -> None:
        import httpx

        self.url = control_url(endpoint)
        self._client = httpx.Client(headers={"Authorization": f"Bearer {admin_key}"}, timeout=timeout_s,
                                    trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GatewayAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, timeout: float | None = None, **params: str) -> str:
        import httpx

        try:
            r = self._client.request(method, self.url + path, params=params or None,
                                     timeout=timeout if timeout is not None else self._client.timeout)
        except httpx.HTTPError as exc:
            raise ProviderError(f"gateway {self.url}: {path}: {type(exc).__name__}: {exc}") from None
        if r.status_code == 401:
            raise ProviderError(f"gateway {self.url}: the admin key was refused (is ORCH_ADMIN_KEY the gateway's?)")
        if r.status_code != 200:
            raise ProviderError(f"gateway {self.url}: {path}: HTTP {r.status_code}: {r.text[:200]}")
        return r.text

    def workers(self) -> list[str]:
        import json

        return list(json.loads(self._call("GET", "/list_workers")).get("urls", []))

    def add(self, url: str) -> None:
        self._call("POST", "/add_worker", timeout=ADD_TIMEOUT_S, url=url)

    def remove(self, url: str) -> None:
        self._call("POST", "/remove_worker", url=url)
