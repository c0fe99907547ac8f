"""The report page in a real browser (Debian's chromium, headless): the page loads with every
row and picture, its script sorts the table, and a screenshot of it is not blank.

Not part of ``make test``: ``make report-screenshot`` runs it (marker ``browser``), skipped
when no chromium is installed. ``DGM_REPORT=runs/demo/report.html`` checks a real report
instead of a made-up one, and ``DGM_SCREENSHOT=docs/report.png`` keeps the screenshot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ReportPage, report_entry, synthetic_report

pytestmark = pytest.mark.browser

BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
WIDTH, HEIGHT = 1280, 2400


def _chromium(*args: str) -> str:
    cmd = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           *args]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.fixture
def page(tmp_path) -> Path:
    given = os.environ.get("DGM_REPORT")
    if given:
        return Path(given).resolve()
    from dgm.report import write_report

    entries = [
        report_entry("arm", 0, 84.0, fd=14.0, tmp=tmp_path, sample_ms=13.0),
        report_entry("vae", 0, 88.0, kind="estimate", num_samples=1000, fd=12.0, tmp=tmp_path),
        report_entry("gan", 0, None, kind="none", fd=40.0, tmp=tmp_path),
    ]
    html = tmp_path / "report.html"
    write_report(synthetic_report(entries), html, tmp_path / "report.json")
    return html


@pytest.mark.skipif(BROWSER is None, reason="no chromium installed (Debian: apt install chromium)")
def test_the_page_in_a_browser(page, tmp_path):
    dom = _chromium("--dump-dom", page.as_uri())
    parsed = ReportPage()
    parsed.feed(dom)
    assert parsed.rows, "no rows in the page as the browser built it"
    assert all(p["src"].startswith("data:image/png;base64,") for p in parsed.pictures)
    # the script sorts: the page opened with #sort=nll_nats lists the NLLs in order
    dom = _chromium("--dump-dom", page.as_uri() + "#sort=nll_nats")
    body = dom[dom.index("<tbody>") : dom.index("</tbody>")]
    rows = re.findall(r"<tr id=\"row-[^\"]*\">(.*?)</tr>", body, re.S)
    nll = []
    for row in rows:
        sorts = re.findall(r"data-sort=\"([^\"]*)\"", row)
        nll.append(float(sorts[3]) if sorts[3] else float("inf"))  # model, family, kind, NLL
    assert nll == sorted(nll) and len(nll) == len(parsed.rows)
    shot = Path(os.environ.get("DGM_SCREENSHOT") or tmp_path / "report.png").resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    _chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (HEIGHT, WIDTH)
    assert img.std() > 10, "the screenshot is blank"
    assert (img < 100).mean() > 0.01  # text and pictures, not an empty white page
