"""Typed errors shared by every layer. The CLI maps them to exit codes (design.md, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field


class OrchError(Exception):
    """A user-facing error: printed as one clear message, never a traceback."""

    exit_code = 1


class UserError(OrchError):
    """Bad input from the user (a file, a flag, a name). Exit code 1."""


@dataclass
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    message: str
    path: str = ""  # dotted field path, e.g. deployments[0].slo.ttft_p95_ms
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field_ = f"{self.path}: " if self.path else ""
        return f"{where}{field_}{self.message}"


@dataclass
class SpecError(UserError):
    """A deployment file with one or more problems; all are reported together."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found:" if n > 1 else ""
        body = "\n".join(str(p) for p in self.problems)
        return f"{head}\n{body}" if head else body


class ProviderError(OrchError):
    """A provider failed. Exit code 3. Subclasses tell apply what it can do about it."""

    exit_code = 3


class CapacityError(ProviderError):
    """The provider has no capacity for this instance type now: try the next fallback."""


class QuotaError(ProviderError):
    """An account quota blocks the launch: try the next fallback or raise the quota."""


class AuthError(ProviderError):
    """Credentials missing or rejected. The message says how to configure them."""


class NotFoundError(ProviderError):
    """The resource does not exist (already gone, or never created)."""


class TransientError(ProviderError):
    """Throttling or a passing fault: retried with backoff."""
