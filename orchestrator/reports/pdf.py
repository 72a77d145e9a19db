"""`orch report --format pdf`: the HTML report printed to PDF by headless Chromium (its print stylesheet applies).

Chromium is found through $ORCH_CHROMIUM, else chromium / chromium-browser / google-chrome(-stable) on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from orchestrator.errors import UserError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV = "ORCH_CHROMIUM"


def find_chromium() -> str:
    """The browser binary, or a UserError that says how to get one."""
    explicit = os.environ.get(ENV)
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise UserError(f"${ENV}={explicit!r} is not an executable; point it at chromium or google-chrome")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise UserError(
        "--format pdf prints the HTML report through headless Chromium, which is not installed "
        f"(looked for {', '.join(NAMES)} on PATH and ${ENV}); install it (Debian: apt-get install chromium) "
        "or use --format html and print from a browser"
    )


def chromium_args(browser: str, profile: Path) -> list[str]:
    """Headless, offline and quiet: nothing fetched, no first-run or sync traffic."""
    return [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=5000",
    ]


def html_to_pdf(html: str, out: Path, timeout_s: float = 120.0) -> None:
    """Print ``html`` to ``out`` (A4/Letter per the page's @page rule, no browser header/footer)."""
    browser = find_chromium()
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="orch-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        target = Path(tmp) / "report.pdf"
        cmd = [*chromium_args(browser, Path(tmp) / "profile"), "--no-pdf-header-footer",
               f"--print-to-pdf={target}", page.as_uri()]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UserError(f"{browser} did not finish printing the report in {timeout_s:.0f} s") from None
        if res.returncode != 0 or not target.exists() or target.stat().st_size == 0:
            tail = (res.stderr or "").strip().splitlines()[-3:]
            raise UserError(f"{browser} could not print the report to PDF (exit {res.returncode}): "
                            + " | ".join(tail))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), out)
