"""Azure SDK (azure-core) exceptions as orch's typed errors."""

from __future__ import annotations

from orchestrator.errors import AuthError, CapacityError, NotFoundError, ProviderError, QuotaError, TransientError

NO_CREDENTIALS = (
    "azure: no credentials found; run `az login` or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET"
)
_CAPACITY = {
    "AllocationFailed",
    "ZonalAllocationFailed",
    "SkuNotAvailable",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "SpotAllocationFailed",
}
_AUTH = {"AuthorizationFailed", "AuthenticationFailed", "InvalidAuthenticationToken", "InvalidAuthenticationTokenTenant", "LinkedAuthorizationFailed"}


def map_error(exc: Exception, what: str) -> ProviderError:
    """An azure-core exception as orch's typed error."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        return AuthError(NO_CREDENTIALS)  # raised by the credential chain itself, before any ARM call
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(f"azure: {what}: {type(exc).__name__}")
    if not isinstance(exc, HttpResponseError):
        return ProviderError(f"azure: {what}: {exc}")
    code = (exc.error.code if exc.error else None) or ""
    message = (exc.error.message if exc.error else None) or str(exc.message or exc.reason or "")
    status = exc.status_code or 0
    msg = f"azure: {what}: {code or status}: {' '.join(message.split())}"
    if code in _CAPACITY:
        return CapacityError(msg)
    if code == "QuotaExceeded" or "quota" in message.lower() and code in ("OperationNotAllowed", "QuotaExceeded", ""):
        return QuotaError(msg)
    if isinstance(exc, ClientAuthenticationError) or code in _AUTH or status == 401:
        return AuthError(msg + " (check `az login` / AZURE_* credentials and the role assignment)")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return NotFoundError(msg)
    if status == 429 or status >= 500:
        return TransientError(msg)
    return ProviderError(msg)
