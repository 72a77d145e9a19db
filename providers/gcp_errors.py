"""Google API (google-api-core, google-auth) exceptions as orch's typed errors."""

from __future__ import annotations

from orchestrator.errors import AuthError, CapacityError, NotFoundError, ProviderError, QuotaError, TransientError

NO_CREDENTIALS = (
    "gcp: no credentials found; run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
)


def map_error(exc: Exception, what: str) -> ProviderError:
    """A google.api_core / google.auth exception as orch's typed error."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return AuthError(NO_CREDENTIALS)
    if isinstance(exc, auth_exc.GoogleAuthError):
        return AuthError(f"gcp: {what}: credentials rejected ({type(exc).__name__}); {NO_CREDENTIALS.split('; ', 1)[1]}")
    text = str(exc)
    reasons = " ".join(str(getattr(e, "code", "") or (e.get("reason", "") if isinstance(e, dict) else e)) for e in (getattr(exc, "errors", None) or []))
    blob = f"{text} {reasons}".upper()
    msg = f"gcp: {what}: {' '.join(text.split())}"
    if "RESOURCE_POOL_EXHAUSTED" in blob or "STOCKOUT" in blob or "DOES NOT HAVE ENOUGH RESOURCES" in blob:
        return CapacityError(msg)
    if "QUOTA" in blob:
        return QuotaError(msg)
    if isinstance(exc, (gexc.Unauthenticated, gexc.PermissionDenied, gexc.Unauthorized, gexc.Forbidden)):
        return AuthError(msg)
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(msg)
    if isinstance(exc, gexc.ResourceExhausted):  # gRPC RESOURCE_EXHAUSTED (a TooManyRequests subclass): no capacity
        return CapacityError(msg)
    if isinstance(exc, (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError, gexc.GatewayTimeout, gexc.DeadlineExceeded, gexc.BadGateway)):
        return TransientError(msg)
    return ProviderError(msg)
