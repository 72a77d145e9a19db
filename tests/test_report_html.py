"""The HTML report is self-contained and its charts are drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.metering.store import open_engine
from orchestrator.reports.aggregate import build_report
from orchestrator.reports.html import render_html

from test_report_aggregate import NOV, NOW, cap, db  # noqa: F401  (the same recorded month)

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def dump_dom(html_file: Path, tmp_path: Path) -> str:
    """The DOM after scripts ran. Needs Debian's chromium (apt-get install -y chromium)."""
    if CHROMIUM is None:
        reason = "chromium not installed (apt-get install -y chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
        "--dump-dom", html_file.as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_self_contained(db: Path) -> None:  # noqa: F811
    html = render_html(build_report(open_engine(db), *NOV, now=NOW, capacity=cap))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN, nothing fetched


def test_charts_drawn_in_chromium(db: Path, tmp_path: Path) -> None:  # noqa: F811
    rep = build_report(open_engine(db), *NOV, now=NOW, capacity=cap)
    f = tmp_path / "report.html"
    f.write_text(render_html(rep))
    dom = dump_dom(f, tmp_path)
    marks = re.findall(r'<rect [^>]*class="mark"[^>]*>', dom)
    # cost over time: 2 days x 1 deployment each; $/1M by deployment (2) and provider (2); utilization:
    # chat only (rag has no capacity figure); cost (2) + idle (1); planned (chat: 1) + actual (2)
    assert len(marks) == 2 + 2 + 2 + 1 + 3 + 3
    assert 'data-charts-drawn="13"' in dom
    planned = [m for m in marks if 'data-series="planned $/1M"' in m]
    assert len(planned) == 1 and 'data-value="0.8"' in planned[0]
    assert any('data-label="gcp"' in m for m in marks)


def test_empty_period_says_so(db: Path, tmp_path: Path) -> None:  # noqa: F811
    rep = build_report(open_engine(db), 0.0, 86400.0, now=NOW, capacity=cap)
    f = tmp_path / "empty.html"
    f.write_text(render_html(rep))
    dom = dump_dom(f, tmp_path)
    assert "No data for this period" in dom and 'class="mark"' not in dom
