"""The endpoint's keys as orch itself needs them: the admin key to tell a gateway of its workers, the API key to
call the endpoint (bench, tests). Never stored by orch: the environment, else the platform's secret store."""

from __future__ import annotations

import os
from typing import Any

from containers.gateway import ADMIN_KEY, ADMIN_KEY_ENV, API_KEY, API_KEY_ENV
from containers.spec import SecretRef
from orchestrator.errors import UserError
from providers.abilities import WithSecretStore


def _read(provider: Any, ref: SecretRef, env_var: str) -> str:
    if os.environ.get(env_var):
        return os.environ[env_var]
    value = provider.secrets.get(ref, env_var) if isinstance(provider, WithSecretStore) else None
    if not value:
        raise UserError(f"set {env_var}: orch needs the value of the secret {ref.name!r} that the gateways read from "
                        "the provider's secret store")
    return value


def admin_key(provider: Any) -> str:
    """The key of a gateway's control port, for its provider."""
    return _read(provider, ADMIN_KEY, ADMIN_KEY_ENV)


def api_key(provider: Any) -> str:
    """The key users call the endpoint with."""
    return _read(provider, API_KEY, API_KEY_ENV)


def api_key_source(provider: Any) -> str:
    """Where a user finds the API key (never the value)."""
    if os.environ.get(API_KEY_ENV):
        return f"${API_KEY_ENV}"
    if isinstance(provider, WithSecretStore):
        return f"{provider.secrets.path(API_KEY)} (or set ${API_KEY_ENV})"
    return f"the secret {API_KEY.name!r} in the provider's secret store (set ${API_KEY_ENV} to the same value)"


def local_api_key() -> str | None:
    """The API key as a local caller finds it: $ORCH_API_KEY, else this machine's secret store (not generated)."""
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV]
    from orchestrator.apply.targets import local_state_dir
    from providers.secrets import LocalSecrets

    return LocalSecrets(local_state_dir().parent / "secrets").get(API_KEY, API_KEY_ENV, generate=False)
