"""orch's FOCUS export (CSV and Parquet) passes the FinOps Foundation's own validator, FOCUS 1.2 rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from focus_check import validate
from orchestrator.metering.store import open_engine
from orchestrator.reports import focus
from orchestrator.reports.aggregate import build_report
from test_report_aggregate import NOV, NOW, cap, db  # noqa: F401  (db: the fixture)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_focus_export_passes_the_validator(db: Path, tmp_path: Path, fmt: str) -> None:  # noqa: F811
    rep = build_report(open_engine(db), *NOV, by="deployment", now=NOW, capacity=cap)
    out = tmp_path / f"focus.{fmt}"
    if fmt == "csv":
        out.write_text(focus.to_csv(rep))
    else:
        focus.write_parquet(rep, str(out))
    v = validate(out, tmp_path, fmt)
    print(f"focus-validator {fmt}: Total {v.total} | Pass {v.passed} | Fail {v.failed} | Skipped {v.skipped}; "
          f"unchosen OR branches among the failures: {v.alternatives}")
    assert v.real_failures == [], "\n".join(v.real_failures)
    assert v.alternatives == ["InvoiceId-C-005-C"]  # null InvoiceId: orch's figures are no invoice
    assert v.passed >= 270 and v.skipped <= 310
