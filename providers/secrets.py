"""The secret store of this machine, for the local provider and for orch's own calls to a local gateway.

A secret is read from orch's environment first (the variable a container gets it as, e.g. ``ORCH_API_KEY``),
then from a file named after the secret in a directory of its own (mode 0700, files 0600), beside orch's state
but never in it. A required secret found in neither is generated once, so every replica and gateway of this
machine shares it and a later run finds it again.
"""

from __future__ import annotations

import os
import secrets as _random
from pathlib import Path

from containers.spec import SecretRef


class LocalSecrets:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, ref: SecretRef) -> Path:
        return self.directory / ref.name

    def get(self, ref: SecretRef, env_var: str | None = None, *, generate: bool = True) -> str | None:
        """The value, from orch's environment (``ref.env``, else ``env_var``: the name the container gets it
        as), else the file; a required secret is generated (unless ``generate`` is false)."""
        var = ref.env or env_var
        if var and os.environ.get(var):
            return os.environ[var]
        path = self.path(ref)
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = ""
        if value or not ref.required or not generate:
            return value or None
        return self._generate(path)

    def source(self, ref: SecretRef, env_var: str) -> str:
        """Where ``get`` finds the value, for messages (never the value)."""
        var = ref.env or env_var
        return f"${var}" if os.environ.get(var) else str(self.path(ref))

    def _generate(self, path: Path) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        value = _random.token_urlsafe(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        try:
            os.link(tmp, path)  # first writer wins: two processes generating at once agree on one value
        except FileExistsError:
            value = path.read_text().strip()
        finally:
            tmp.unlink(missing_ok=True)
        return value
