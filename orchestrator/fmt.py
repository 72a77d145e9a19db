"""How orch writes money that is a difference: one sign, before the currency, never "-0.00"."""

from __future__ import annotations


def signed_usd(value: float, unit: str = "", digits: int = 2) -> str:
    """+$3.83/h, -$1.18/h, +$0.00/h (a difference that rounds to zero has no minus)."""
    rounded = round(value, digits)
    sign = "-" if rounded < 0 else "+"
    return f"{sign}${abs(rounded):,.{digits}f}{unit}"
