"""The commands' consoles: their home is orchestrator/console.py (apply and reports print through them too)."""

from orchestrator.console import PIPED_WIDTH, err, out

__all__ = ["PIPED_WIDTH", "err", "out"]
