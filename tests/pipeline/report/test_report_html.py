"""spectdose report: a self-contained page built from whatever the stages wrote."""

from __future__ import annotations

import base64
import csv
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from pipeline.report.build import build_report
from pipeline.report.cli import main

SECTIONS = ("scans", "organ-doses", "marrow", "bed", "planning", "dvh", "kinetics", "registration",
            "segmentation", "assumptions", "provenance")


class _Collector(HTMLParser):
    """Collects tags, attributes, table cells and section texts of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.cells, self.sections = [], [], {}
        self._cell, self._section = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs.get("id")
            self.sections[self._section] = ""
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._section:
            self.sections[self._section] += data


def _parse(text):
    parser = _Collector()
    parser.feed(text)
    return parser


def _png(path, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    ax.plot(np.random.default_rng(seed).random(5))
    fig.savefig(path)
    plt.close(fig)
    return path.read_bytes()


def _no_external_references(page):
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), f"<{tag} {key}={value[:40]}>"
        assert tag not in ("script", "link", "iframe")


def test_empty_patient_folder_gives_a_page_where_every_section_is_not_available(tmp_path):
    patient = tmp_path / "P1"
    patient.mkdir()
    page = _parse(build_report(patient))
    assert set(page.sections) == set(SECTIONS)
    for anchor in SECTIONS:
        if anchor != "provenance":  # software versions at report time are always known
            assert "Not available" in page.sections[anchor], anchor
    _no_external_references(page)


@pytest.fixture
def patient_dir(tmp_path):
    p = tmp_path / "results" / "P7"
    for sub in ("dose", "kinetics", "segment", "register/t1h", "register/t24h", "ingest/t1h", "ingest/t24h"):
        (p / sub).mkdir(parents=True)
    rows = [{"label": "1", "name": "kidney_left", "mass_g": "151.2", "mean_gy": "3.412", "gy_per_gbq": "0.4611"},
            {"label": "3", "name": "liver", "mass_g": "1650", "mean_gy": "0.98765", "gy_per_gbq": "0.1335"}]
    with open(p / "dose" / "organ_doses.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (p / "dose" / "marrow.json").write_text(json.dumps(
        {"absorbed_dose_gy": 0.123, "red_marrow_mass_g": 1170,
         "assumptions": {"l2l4_share": 0.067, "note": "<script>alert(1)</script>"}}))
    (p / "dose" / "planning.json").write_text(json.dumps({"limiting_organ": "kidneys", "activity_gbq": 18.5}))
    (p / "dose" / "bed.csv").write_text("organ,bed_gy,eqd2_gy\nkidney_left,3.9,3.0\n")
    (p / "dose" / "dose.json").write_text(json.dumps(
        {"kernel": {"nuclide": "Lu-177", "provenance": {"engine": "ompmc 0.4.0"}}, "method": "convolution"}))
    (p / "dose" / "dose_provenance.json").write_text(json.dumps(
        {"assumptions": {"density_correction": "dose in water scaled by density"},
         "settings": {"method": "convolution"},
         "kinetics": {"partial_volume_correction": "gtm", "note": "voxel map not corrected"}}))
    images = {
        "dose/dvh.png": _png(p / "dose" / "dvh.png", 1),
        "kinetics/tac_liver.png": _png(p / "kinetics" / "tac_liver.png", 2),
        "segment/qc.png": _png(p / "segment" / "qc.png", 3),
        "register/t24h/qc.png": _png(p / "register" / "t24h" / "qc.png", 4),
    }
    (p / "kinetics" / "fits.json").write_text(json.dumps({
        "time_points": [{"id": "t1h", "time_h": 1.0}, {"id": "t24h", "time_h": 24.0}],
        "organs": {"liver": {"method": "fit", "chosen_model": "mono_exp", "tia_mbq_h": 1234.5,
                             "tia_relative_sd": 0.05, "warnings": []}},
        "options": {"selection": "AICc"}, "warnings": ["only two time points"]}))
    for tp, hours in (("t1h", 1.0), ("t24h", 24.0)):
        (p / "register" / tp / "qc.json").write_text(json.dumps({"ncc_after": 0.93, "time_point": tp}))
        (p / "ingest" / tp / "timepoint.json").write_text(json.dumps({"time_point": tp, "time_h": hours}))
    return p, rows, images


def test_report_shows_the_stage_tables_exactly(patient_dir):
    p, rows, _ = patient_dir
    page = _parse(build_report(p))
    # Every organ-dose cell appears exactly as the CSV has it; JSON floats with 6 digits.
    for row in rows:
        for value in row.values():
            assert value in page.cells, value
    assert "18.5" in page.cells and "kidneys" in page.cells
    assert "1234.5" in page.cells[page.cells.index("TIA (MBq*h)"):]
    assert "Not available" not in page.sections["organ-doses"]
    assert "only two time points" in page.sections["kinetics"]
    assert "ompmc 0.4.0" in page.sections["provenance"]
    assert "dose in water scaled by density" in page.sections["assumptions"]
    assert "gtm" in page.sections["assumptions"]
    # The scans table is ordered by time after injection.
    scans = page.sections["scans"]
    assert scans.index("t1h") < scans.index("t24h")


def test_figures_are_embedded_byte_for_byte(patient_dir):
    p, _, images = patient_dir
    text = build_report(p)
    page = _parse(text)
    embedded = [base64.b64decode(attrs["src"].split(",", 1)[1])
                for tag, attrs in page.tags if tag == "img"]
    for name, data in images.items():
        assert data in embedded, name
    _no_external_references(page)
    # register/t1h/qc.png was not written: that figure says so, the rest of the section is there.
    assert "Not available: t1h/qc.png was not written." in page.sections["registration"]
    assert "0.93" in page.sections["registration"]


def test_text_from_files_is_escaped(patient_dir):
    p, _, _ = patient_dir
    text = build_report(p)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_unreadable_file_makes_its_section_not_available(patient_dir):
    p, _, _ = patient_dir
    (p / "dose" / "planning.json").write_text("{not json")
    page = _parse(build_report(p))
    assert "Not available" in page.sections["planning"]
    assert "unreadable" in page.sections["planning"]
    assert "Not available" not in page.sections["organ-doses"]


def test_cli_writes_the_page(patient_dir, tmp_path, capsys):
    p, _, _ = patient_dir
    out = tmp_path / "out" / "report.html"
    assert main(["--patient-dir", str(p), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "P7" in re.search(r"<title>(.*?)</title>", text).group(1)


def test_cli_missing_patient_folder_is_one_clear_error(tmp_path, capsys):
    code = main(["--patient-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spectdose report: error: {tmp_path / 'nope'}: is not a folder of patient results"]
    assert not (tmp_path / "r.html").exists()


def test_segmentation_gate_warnings_are_red_and_named(tmp_path):
    seg = tmp_path / "P1" / "segment"
    seg.mkdir(parents=True)
    checks = [{"structure": "kidney_left", "check": "volume_ml", "value": 150.0, "unit": "mL", "status": "pass",
               "expected": "70-300 mL", "source": "ICRP 89", "note": ""},
              {"structure": "spleen", "check": "volume_ml", "value": 812.0, "unit": "mL", "status": "warn",
               "expected": "50-700 mL", "source": "Prassopoulos 1997", "note": ""}]
    (seg / "qc.json").write_text(json.dumps({"status": "warn", "overridden": False, "checks": checks}))
    page = build_report(tmp_path / "P1")
    p = _Collector()
    p.feed(page)
    red = [a for t, a in p.tags if a.get("class") == "qcwarn"]
    assert len(red) == 2  # the verdict line and the one warning
    assert "WARN: spleen: volume_ml = 812 mL (expected 50-700 mL)" in p.sections["segmentation"]
    assert "Segmentation QC gate: WARN" in p.sections["segmentation"]
