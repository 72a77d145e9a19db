"""The consoles every command prints through: tables on stdout, messages and progress on stderr."""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 200  # piped or captured output: do not squeeze tables into rich's default 80 columns


def out() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True)  # messages are grepped and logged: no hard wraps
