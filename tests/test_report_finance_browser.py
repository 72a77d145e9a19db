"""The finance report as a reviewer sees it: opened in real headless Chromium (DOM after the scripts ran, and a
screenshot), and printed to PDF by `orch report --format pdf`, whose text is read back with pypdf.

Screenshots and the PDF are kept in $ORCH_TEST_ARTEFACTS (default tests/artefacts/, ignored by git).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from orchestrator.reports.finance import compute_finance
from orchestrator.reports.html import render_html

from test_report_finance import AS_OF, fin, report  # noqa: F401  (the recorded fortnight with a spike)
from test_report_html import CHROMIUM, dump_dom

ARTEFACTS = Path(os.environ.get("ORCH_TEST_ARTEFACTS") or Path(__file__).resolve().parent / "artefacts")
RECS = [{"deployment": "chat", "current": "2 x L4 (aws:us-east-1)", "recommended": "1 x L4 (aws:us-east-1)",
         "monthly_saving_usd": 365.0, "slo_margin": 0.22}]
# the figures of test_report_finance's hand arithmetic, as the document prints them
FIGURES = ["$612.00", "$8.74", "114,379", "$321.11", "52.5% of spend", "$84.00", "$1,338.86", "$1,200.00",
           "$138.86 over the budget", "$45.43/day", "2026-11-10", "$362.98", "$249.02"]


def artefact(name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS / name


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) bytes of an 8-bit PNG (what Chromium writes), without an image library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w * bpp)
    stride = w * bpp + 1
    for y in range(h):
        f, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, bpp, rows


def count_colour(path: Path, rgb: tuple[int, int, int]) -> int:
    w, bpp, rows = png_pixels(path)
    want = bytes(rgb)
    return sum(1 for row in rows for x in range(w) if row[x * bpp:x * bpp + 3] == want)


def test_finance_report_in_chromium(fin: Path, tmp_path: Path) -> None:  # noqa: F811
    rep = report(fin)
    page = tmp_path / "finance.html"
    page.write_text(render_html(rep, compute_finance(rep, 1200.0), RECS))
    dom = dump_dom(page, tmp_path)
    text = re.sub(r"<[^>]+>", " ", dom)
    for figure in FIGURES:
        assert figure in text, figure
    assert 'data-finance-charts="2"' in dom
    budget_svg = re.search(r'id="chart-budget"><svg.*?</svg>', dom, re.S)
    assert budget_svg and 'class="line budget"' in budget_svg.group(0) and 'class="line forecast"' in budget_svg.group(0)
    assert "day of period (UTC)" in budget_svg.group(0) and "USD, cumulative" in budget_svg.group(0)
    daily_svg = re.search(r'id="chart-daily"><svg.*?</svg>', dom, re.S)
    assert daily_svg and len(re.findall(r'class="bar', daily_svg.group(0))) == 14
    anomalies = re.findall(r'<rect [^>]*class="bar anomaly"[^>]*>', daily_svg.group(0))
    assert len(anomalies) == 1 and 'data-label="2026-11-10"' in anomalies[0] and 'data-value="66' in anomalies[0]
    assert "Recommendations" in text and "$365.00" in text and "22.0%" in text

    shot = artefact("finance-report.png")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'shot-profile'}",
           "--virtual-time-budget=5000", "--hide-scrollbars", "--window-size=1100,1400", f"--screenshot={shot}",
           page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.exists(), out.stderr[-2000:]
    # the first screen shows the drawn charts: the cumulative line (blue) and the budget line (red), in pixels
    assert count_colour(shot, (0x4E, 0x79, 0xA7)) > 300
    assert count_colour(shot, (0xD6, 0x27, 0x28)) > 50


def test_pdf_has_the_same_figures(fin: Path, tmp_path: Path) -> None:  # noqa: F811
    pypdf = pytest.importorskip("pypdf")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    from typer.testing import CliRunner

    from orchestrator.cli.main import app
    from orchestrator.reports import aggregate

    out = artefact("finance-report.pdf")
    out.unlink(missing_ok=True)
    orig = aggregate.build_report
    # the CLI bills running replicas up to the wall clock; this fixture is seen as of 11-15, with its capacities
    with pytest.MonkeyPatch.context() as mp:
        from test_report_finance import fin_cap

        mp.setattr(aggregate, "build_report", lambda engine, s, e, by, now=None: orig(engine, s, e, by, now=AS_OF,
                                                                                      capacity=fin_cap))
        res = CliRunner().invoke(app, ["report", "--period", "2026-11", "--state", str(fin), "--no-sample",
                                       "--budget", "1200", "--format", "pdf", "--out", str(out)])
    assert res.exit_code == 0, res.output
    reader = pypdf.PdfReader(str(out))
    text = "\n".join(p.extract_text() for p in reader.pages)
    flat = re.sub(r"\s+", " ", text)
    for figure in FIGURES:
        assert figure in flat, figure
    for heading in ("Budget against actual", "Forecast method", "Daily spend", "Showback by team", "Cost anomalies",
                    "Cumulative spend vs budget"):
        assert heading in flat, heading
    w, h = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(w), round(h)) == (595, 842)  # A4 in points, from the print stylesheet
    assert 2 <= len(reader.pages) <= 8


def test_pdf_without_chromium_says_so(fin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    args = ["report", "--period", "2026-11", "--state", str(fin), "--no-sample", "--format", "pdf",
            "--out", str(tmp_path / "r.pdf")]
    monkeypatch.delenv("ORCH_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "not installed" in res.output and "--format html" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r.pdf").exists()
    monkeypatch.setenv("ORCH_CHROMIUM", str(tmp_path / "no-such-browser"))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "ORCH_CHROMIUM" in res.output
    res = CliRunner().invoke(app, args[:-2])
    assert res.exit_code == 1 and "needs --out FILE" in res.output
