"""One formatter for signed money (issue 20, item 8: "+$-1.18/h", "$+3.83/h", "+$-0.00/h" were printed)."""

from orchestrator.fmt import signed_usd


def test_signed_money() -> None:
    assert signed_usd(3.834, "/h") == "+$3.83/h"
    assert signed_usd(-1.18, "/h") == "-$1.18/h"
    assert signed_usd(-0.001, "/h") == "+$0.00/h"
    assert signed_usd(-1234.4, "/month", 0) == "-$1,234/month"


def test_tables_wrap_in_80_columns_instead_of_cutting_names() -> None:
    import io

    from rich.console import Console
    from rich.table import Table

    from orchestrator.fmt import wrap_cells

    t = Table(title="GPU offerings")
    for name, just in [("provider", "left"), ("region", "left"), ("instance type", "left"), ("GPUs", "right"),
                       ("$/h", "right"), ("$/GPU-h", "right"), ("spot $/h", "right"), ("as of", "left")]:
        t.add_column(name, justify=just)  # type: ignore[arg-type]
    t.add_row("azure", "azure:southeastasia", "Standard_ND96isr_H100_v5", "8x H100", "98.320", "12.290", "21.456",
              "2026-11-01")
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(wrap_cells(t))
    text = buf.getvalue()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    columns: dict[int, str] = {}
    for line in text.splitlines():
        if line.startswith("│"):
            for i, cell in enumerate(line.strip("│").split("│")):
                columns[i] = columns.get(i, "") + cell.strip()
    for whole in ("azure:southeastasia", "Standard_ND96isr_H100_v5", "98.320", "21.456"):
        assert whole in columns.values()  # every character there, in order, only wrapped within its column
    assert "98.320" in text and "21.456" in text  # numbers never broken across lines
