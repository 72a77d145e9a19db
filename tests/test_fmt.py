"""One formatter for signed money (issue 20, item 8: "+$-1.18/h", "$+3.83/h", "+$-0.00/h" were printed)."""

from orchestrator.fmt import signed_usd


def test_signed_money() -> None:
    assert signed_usd(3.834, "/h") == "+$3.83/h"
    assert signed_usd(-1.18, "/h") == "-$1.18/h"
    assert signed_usd(-0.001, "/h") == "+$0.00/h"
    assert signed_usd(-1234.4, "/month", 0) == "-$1,234/month"
