"""How orch writes for people: money that is a difference (one sign, before the currency, never "-0.00"), and
tables that wrap in a narrow terminal."""

from __future__ import annotations

from typing import Any


def signed_usd(value: float, unit: str = "", digits: int = 2) -> str:
    """+$3.83/h, -$1.18/h, +$0.00/h (a difference that rounds to zero has no minus)."""
    rounded = round(value, digits)
    sign = "-" if rounded < 0 else "+"
    return f"{sign}${abs(rounded):,.{digits}f}{unit}"


def wrap_cells(table: Any) -> Any:
    """A rich Table whose text cells (and headers) wrap onto more lines instead of being cut with an ellipsis when
    the terminal is narrower than the table (80 columns): `aws:us-east-1` must stay readable. Numbers stay whole;
    in a narrow terminal the vertical rules go, to leave their room to the text."""
    import os
    import sys

    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
        if column.justify == "right":  # whole numbers; their headers may wrap
            column.min_width = max([len(str(c)) for c in column.cells] + [column.min_width or 0])
    try:
        narrow = os.get_terminal_size(sys.stdout.fileno()).columns < NARROW
    except (OSError, ValueError):  # not a terminal: the consoles print piped output wide
        narrow = False
    if narrow:
        from rich import box

        table.box = box.SIMPLE_HEAD
        table.padding = (0, 1, 0, 0)
        table.pad_edge = False
    return table


NARROW = 120  # terminal columns below which tables drop their vertical rules
