"""The report of the sample patient (small preset, whole workflow): PDF text, browser rendering, figures.

Slow: runs the demo workflow once per module (about 100 s on 2 cores). Chromium and poppler-utils
come from Debian (installed with apt-get when missing and possible, else the tests skip). The
1400 px screenshot is saved as a test artefact in ``build/test-artefacts/`` (or
``$SPECTDOSE_TEST_ARTEFACTS``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from chromium_env import ensure_installed, why_unavailable

from pipeline.report.build import SECTION_TITLES
from pipeline.report.numbers import PLUS_MINUS, fmt_with_uncertainty

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
VIEWPORT_PX = 1400


@pytest.fixture(scope="module")
def tools():
    why = why_unavailable()
    if why:
        pytest.skip(why)
    ensure_installed()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The small sample patient through the whole workflow: (results/SAMPLE01, generated data folder)."""
    from pipeline import demo

    root = tmp_path_factory.mktemp("report_sample")
    assert demo.main(["--cores", "2", "--out", str(root), "--preset", "small", "--seed", "1"]) == 0
    return root / "results" / "SAMPLE01", root / "SAMPLE01"


@pytest.fixture(scope="module")
def report(sample, tools, tmp_path_factory):
    """The report rebuilt by the CLI (HTML and PDF), with the time each took."""
    from pipeline.report.cli import main

    results, _ = sample
    out = tmp_path_factory.mktemp("report") / "report.html"
    start = time.perf_counter()
    assert main(["--patient-dir", str(results), "--out", str(out)]) == 0
    total = time.perf_counter() - start
    assert out.with_suffix(".pdf").is_file()
    print(f"\nreport of the small sample patient: HTML + figures + viewer + PDF in {total:.1f} s")
    return out


def _pdftotext(pdf: Path, *pages: int) -> str:
    args = ["pdftotext", "-layout"] + (["-f", str(pages[0]), "-l", str(pages[-1])] if pages else [])
    return subprocess.run(args + [str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60).stdout


def test_pdf_text_holds_every_organ_dose_at_the_printed_precision(report, sample):
    results, _ = sample
    text = _pdftotext(report.with_suffix(".pdf"))
    with open(results / "dose" / "organ_doses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 5
    for row in rows:
        mean = float(row["mean_gy"])
        sd = mean * float(row["mean_gy_relative_sd_kinetics"])
        value, unc = fmt_with_uncertainty(mean, sd)
        assert f"{value} {PLUS_MINUS} {unc}" in text, row["name"]
        decimals = len(value.split(".")[1]) if "." in value else 0
        assert abs(float(value) - mean) <= 0.5 * 10 ** -decimals  # the printed number is the CSV's, rounded
    for title in SECTION_TITLES.values():  # every section of the HTML is in the PDF
        assert title in text, title
    assert "Approval" in text and "Signature" in text
    assert "Dose kernel" in text and "spectdose 0.1.0" in text


def test_pdf_page_one_is_the_summary_with_page_numbers(report):
    pdf = report.with_suffix(".pdf")
    first = _pdftotext(pdf, 1)
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                             text=True, check=True).stdout).group(1))
    assert f"Page 1 of {pages}" in first
    assert re.search(r"Left kidney\s+\d+\s+\d+ \u00b1 \d+\s+\d\.\d+ \u00b1", first)
    assert "limits the activity to" in first and "QC verdict:" in first
    assert "Quality control of every stage" in first
    assert "Dose distribution and statistics" not in first  # the details start on page two


def _browser_probe(page: Path) -> Path:
    """A copy of the report whose script records, after layout, every element wider than the viewport."""
    probe = page.with_name("probe.html")
    script = """<script>
    (function(){var vw=document.documentElement.clientWidth, bad=[];
      document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();
        if(r.right>vw+1||r.left<-1){bad.push(e.tagName+'#'+(e.id||'')+'.'+(e.className||'')+':'+Math.round(r.right));}});
      var out=document.createElement('pre'); out.id='probe';
      out.textContent=JSON.stringify({vw:vw, scroll:document.documentElement.scrollWidth, bad:bad.slice(0,20),
        summary:document.getElementById('summary').innerText});
      document.body.appendChild(out);})();
    </script></body>"""
    probe.write_text(page.read_text().replace("</body>", script))
    return probe


def _chromium(*args, timeout=120):
    from pipeline.report.pdf import chromium_command, find_chromium

    with tempfile.TemporaryDirectory() as profile:
        cmd = chromium_command(find_chromium(), Path(profile), *args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=profile))


def test_browser_at_1400px_no_overflow_no_raw_structures_and_page_one_answers(report):
    from html.parser import HTMLParser

    probe = _browser_probe(report)
    dom = _chromium(f"--window-size={VIEWPORT_PX},1000", "--virtual-time-budget=5000", "--dump-dom",
                    probe.as_uri()).stdout
    data = json.loads(__import__("html").unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert data["vw"] <= VIEWPORT_PX and data["scroll"] <= data["vw"], data
    assert data["bad"] == [], data["bad"]
    summary = data["summary"]
    assert re.search(r"Left kidney\s+\d+\s+\d+ \u00b1 \d+\s+\d\.\d+ \u00b1 \d\.\d+", summary)
    assert re.search(r"The (kidneys|red marrow) limits? the activity to \d+(\.\d+)? GBq", summary)
    assert re.search(r"QC verdict: (PASS|WARN|FAIL)", summary)

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self._cur = [], None

        def handle_starttag(self, tag, attrs):
            if tag in ("td", "th"):
                self._cur = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self._cur is not None:
                self.cells.append(self._cur)
                self._cur = None

        def handle_data(self, text):
            if self._cur is not None:
                self._cur += text

    cells = Cells()
    cells.feed(report.read_text())
    assert len(cells.cells) > 100
    raw = [c for c in cells.cells if "{" in c or "'" in c]
    assert raw == [], raw[:5]
    artefacts = Path(os.environ.get("SPECTDOSE_TEST_ARTEFACTS", REPO / "build" / "test-artefacts"))
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / f"report_SAMPLE01_{VIEWPORT_PX}px.png"
    result = _chromium(f"--window-size={VIEWPORT_PX},2400", "--virtual-time-budget=5000",
                       f"--screenshot={shot}", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, result.stderr[-500:]
    shutil.copy(report.with_suffix(".pdf"), artefacts / "report_SAMPLE01.pdf")


def test_fused_figure_shows_the_kidney_hot_spot_over_the_right_kidney_on_the_correct_side(sample):
    """Hot spot of the kidney figure: inside the kidney that holds it in the truth, on the patient's side."""
    import nibabel as nib

    from pipeline.report.dosefig import kidney_centre, load_volumes, marker_of, three_planes

    results, data = sample
    vol, why = load_volumes(results)
    assert why is None
    centre, side = kidney_centre(vol)
    with open(results / "dose" / "organ_doses.csv", newline="") as handle:
        maxima = {r["name"]: float(r["max_gy"]) for r in csv.DictReader(handle)}
    assert side == ("left" if maxima["kidney_left"] > maxima["kidney_right"] else "right")
    truth = nib.load(str(data / "truth" / "labels.nii.gz"))
    truth_labels = np.asarray(truth.dataobj)
    truth_vocab = json.loads((data / "truth" / "labels.json").read_text())
    names = truth_vocab.get("labels", truth_vocab)
    kidney_id = int(next(k for k, v in names.items() if v == f"kidney_{side}"))
    for panel in three_planes(vol, centre):
        row, col = marker_of(panel, centre)
        world = vol.world_mm(panel.ras_index(row, col))
        index = np.rint(np.linalg.solve(truth.affine, np.r_[world, 1.0])[:3]).astype(int)
        # the displayed hot spot lies in the true kidney (within one voxel: segmentation edge)
        window = truth_labels[tuple(slice(max(i - 1, 0), i + 2) for i in index)]
        assert (window == kidney_id).any(), panel.name
        if panel.name in ("axial", "coronal"):
            on_left_half = col > panel.dose.shape[1] / 2
            assert on_left_half == (side == "left") == (world[0] < 0), panel.name  # RAS: left is x < 0
