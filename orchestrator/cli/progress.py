"""Stage lines on stderr for a command that runs longer than a second; a quick run prints none."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

QUIET_S = 1.0  # a run shorter than this shows no progress


class Progress:
    """``tell(stage)`` as each stage starts; from QUIET_S on, the current stage and each later one are printed with
    the time since the start. Use as a context manager (leaving it stops the timer)."""

    def __init__(self, echo: Callable[[str], None], quiet_s: float = QUIET_S) -> None:
        self._echo = echo
        self._t0 = time.perf_counter()
        self._stage: str | None = None
        self._loud = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(quiet_s, self._wake)
        self._timer.daemon = True

    def __enter__(self) -> Progress:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def tell(self, stage: str) -> None:
        with self._lock:
            self._stage = stage
            if self._loud:
                self._print(stage)

    def _wake(self) -> None:
        with self._lock:
            self._loud = True
            if self._stage is not None:
                self._print(self._stage)

    def _print(self, stage: str) -> None:
        self._echo(f"  {time.perf_counter() - self._t0:5.1f} s  {stage}…")
