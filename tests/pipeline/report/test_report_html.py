"""spectdose report: page one, detail sections, no raw structures, escaping, missing files, CLI."""

from __future__ import annotations

import base64
import csv
import re
from html.parser import HTMLParser

import pytest

from pipeline.report.build import SECTION_TITLES, build_report
from pipeline.report.cli import main
from pipeline.report.numbers import PLUS_MINUS


class Collector(HTMLParser):
    """Collects tags, table cells (text), section texts and the summary's organ table rows."""

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


def parse(text):
    parser = Collector()
    parser.feed(text)
    return parser


def organ_table(text):
    """Rows (lists of cell texts) of the page-one organ table."""
    start = text.index("<caption>Organ doses</caption>")
    body = text[start:text.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)]
            for r in rows]


def no_external_references(page):
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), f"<{tag} {key}={value[:40]}>"
        assert tag not in ("script", "link", "iframe")


def test_empty_patient_folder_gives_every_section_with_not_available(tmp_path):
    patient = tmp_path / "P1"
    patient.mkdir()
    page = parse(build_report(patient))
    assert set(SECTION_TITLES) <= set(page.sections)
    for anchor in SECTION_TITLES:
        if anchor != "provenance":  # software versions at report time are always known
            assert "Not available" in page.sections[anchor], anchor
    assert "QC verdict: INCOMPLETE" in page.sections["summary"]
    no_external_references(page)


def test_page_one_has_the_facts_the_organ_table_the_planning_sentence_and_the_qc_verdict(patient_dir):
    text = build_report(patient_dir)
    summary = parse(text).sections["summary"]
    for fact in ("P7", "Lu-177", "7.40 GBq (7400 MBq)", "2026-01-05 09:00:00", "t1h (1.00 h), t24h (24.0 h)",
                 "voxel S-value convolution", "partial-volume correction: off"):
        assert fact in summary, fact
    rows = organ_table(text)
    header, body = rows[0], {r[0]: r for r in rows[1:]}
    assert header == ["Organ", "Mass (g)", "TIA (MBq h)", f"Mean dose (Gy) {PLUS_MINUS} SD",
                      "Dose per activity (Gy/GBq)", "BED (Gy)", "Status against limit"]
    kidney = body["Left kidney"]
    # 3.05307 Gy with 4.95 % SD (0.151 Gy): two digits of uncertainty, value to the same place
    assert kidney[1:5] == ["143", f"5060 {PLUS_MINUS} 250", f"3.05 {PLUS_MINUS} 0.15", f"0.413 {PLUS_MINUS} 0.020"]
    assert kidney[6] == "below: 13 % of 23 Gy (dose); 8.2 % of 40 Gy (BED)"
    assert body["Red marrow (EANM, whole body)"][3] == f"0.388 {PLUS_MINUS} 0.020"
    assert body["Liver"][2] == "\u2013" and body["Liver"][6] == "no limit set"
    assert ("The red marrow limits the activity to 38.2 GBq (2 Gy absorbed dose); at that activity the kidneys "
            "would receive 14.8 Gy (BED 20.8 Gy).") in summary
    assert "QC verdict: WARN" in summary
    assert "WARN: spleen volume_ml" in summary  # the failing/warning check is named on page one


def test_warning_checks_are_red_and_linked_to_their_details(patient_dir):
    page = parse(build_report(patient_dir))
    links = [a for t, a in page.tags if t == "a" and a.get("class") == "qcwarn"]
    assert [a["href"] for a in links] == ["#qc-segment"]
    assert any(t == "h3" and a.get("id") == "qc-segment" for t, a in page.tags)
    assert "WARN: spleen: volume_ml = 812 mL (expected 50-700 mL)" in page.sections["qc"]


def test_no_raw_python_or_json_structure_in_any_cell(patient_dir):
    page = parse(build_report(patient_dir))
    for cell in page.cells:
        assert "{" not in cell and "'" not in cell and "[" not in cell, cell
    # the decay-correction mapping of timepoint.json is shown as its note, not as a dict
    assert "not decay corrected" in page.sections["scans"]


def test_every_organ_dose_of_the_csv_is_printed_at_the_precision_its_uncertainty_allows(patient_dir):
    text = build_report(patient_dir)
    cells = parse(text).cells
    with open(patient_dir / "dose" / "organ_doses.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            mean, sd = float(row["mean_gy"]), float(row["mean_gy"]) * float(row["mean_gy_relative_sd_kinetics"])
            printed = [c for c in cells if c.endswith(f"{PLUS_MINUS} {c.split(PLUS_MINUS)[-1].strip()}")
                       and c.split(PLUS_MINUS)[0].strip().replace(".", "").isdigit()]
            shown = [c for c in printed if abs(float(c.split(PLUS_MINUS)[0]) - mean) <= 0.006 * mean]
            assert shown, row["name"]
            value, unc = (s.strip() for s in shown[0].split(PLUS_MINUS))
            decimals = len(value.split(".")[1]) if "." in value else 0
            assert abs(float(value) - mean) <= 0.5 * 10 ** -decimals + 1e-12
            assert abs(float(unc) - sd) <= 0.5 * 10 ** -decimals + 1e-12
            assert len(unc.replace(".", "").lstrip("0")) == 2  # two significant digits of uncertainty


def test_text_from_files_is_escaped(patient_dir):
    text = build_report(patient_dir)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_unreadable_file_makes_its_part_not_available(patient_dir):
    (patient_dir / "dose" / "planning.json").write_text("{not json")
    page = parse(build_report(patient_dir))
    assert "Not available" in page.sections["planning"] and "unreadable" in page.sections["planning"]
    assert "activity planning: dose/planning.json was not written" in page.sections["summary"]
    assert "Left kidney" in page.sections["summary"]


def test_figures_are_embedded_byte_for_byte(patient_dir, tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="))
    page = parse(build_report(patient_dir, figures=[(figure, "fused dose")]))
    embedded = [base64.b64decode(a["src"].split(",", 1)[1]) for t, a in page.tags if t == "img"]
    assert figure.read_bytes() in embedded
    assert "Not available: dose/dvh.png was not written." in page.sections["dose"]
    no_external_references(page)


def test_cli_writes_html_figures_and_viewer_and_says_when_there_is_no_pdf(patient_dir, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("SPECTDOSE_CHROMIUM", str(tmp_path / "no-such-chromium"))
    out = tmp_path / "out" / "report.html"
    (out.parent).mkdir()
    out.with_suffix(".pdf").write_text("stale")
    assert main(["--patient-dir", str(patient_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report: PDF not written: Chromium not found" in printed and "HTML only" in printed
    assert not out.with_suffix(".pdf").exists()  # no stale PDF beside a new HTML
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "P7" in re.search(r"<title>(.*?)</title>", text).group(1)
    for name in ("dose_kidneys.png", "dose_l3.png", "dose_mip.png"):
        assert (out.parent / "figures" / name).stat().st_size > 10_000, name
    assert text.count("<img") >= 3
    assert (out.parent / "viewer" / "P7.itksnap").is_file()


def test_cli_missing_patient_folder_is_one_clear_error(tmp_path, capsys):
    code = main(["--patient-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spectdose report: error: {tmp_path / 'nope'}: is not a folder of patient results"]
    assert not (tmp_path / "r.html").exists()


def test_cli_out_without_the_html_extension_is_one_clear_error(patient_dir, tmp_path, capsys):
    code = main(["--patient-dir", str(patient_dir), "--out", str(tmp_path / "report_out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spectdose report: error: {tmp_path / 'report_out'}: expected the HTML file to write, ending in .html"]
    assert not (tmp_path / "report_out").exists()


def test_missing_volumes_leave_a_note_instead_of_the_fused_figures(tmp_path, capsys, monkeypatch):
    from report_synthetic import make_patient

    monkeypatch.setenv("SPECTDOSE_CHROMIUM", str(tmp_path / "none"))
    patient = make_patient(tmp_path, with_volumes=False)
    out = tmp_path / "rep" / "report.html"
    assert main(["--patient-dir", str(patient), "--out", str(out), "--no-viewer"]) == 0
    assert "fused dose figures: dose/dose_ct.nii.gz was not written" in out.read_text()
    assert "Left kidney" in out.read_text()  # the rest of the page is there


@pytest.mark.parametrize("pvc, expected", [("none", "partial-volume correction: off"),
                                           ("gtm", "on (gtm, organ level: organ curves only)"),
                                           ("rbv", "on (rbv, voxel level: corrects the dose maps)")])
def test_method_line_says_whether_partial_volume_correction_changed_the_doses(patient_dir, pvc, expected):
    import json

    fits = json.loads((patient_dir / "kinetics" / "fits.json").read_text())
    fits["options"]["pvc"] = pvc
    (patient_dir / "kinetics" / "fits.json").write_text(json.dumps(fits))
    assert expected in parse(build_report(patient_dir)).sections["summary"]


@pytest.mark.parametrize("method, expected", [("transport", "photons by Monte Carlo transport in the CT densities"),
                                              ("kernel", "photons by the water kernel, density-scaled")])
def test_method_line_names_how_the_photons_were_computed(patient_dir, method, expected):
    import json

    path = patient_dir / "dose" / "dose_provenance.json"
    prov = json.loads(path.read_text())
    prov["settings"].update(include_photons=True, photon_method=method)
    path.write_text(json.dumps(prov))
    assert expected in parse(build_report(patient_dir)).sections["summary"]


def test_segmentation_section_lists_the_segmenters_notes_escaped(patient_dir):
    import json

    f = patient_dir / "segment" / "labels.json"
    vocab = json.loads(f.read_text())
    vocab["notes"] = ["liver: 1 hot lesion(s) above twice the parenchyma's SPECT level labelled apart (lesion_1 "
                      "37.3 mL (peak 8.7 x)); 30.1 mL of liver around them, raised by their spill, left out: "
                      "the liver's dose is its parenchyma's", "<b>x</b>"]
    f.write_text(json.dumps(vocab))
    page = parse(build_report(patient_dir))
    seg = page.sections["segmentation"]
    assert "Notes of the segmenter" in seg and "lesion_1 37.3 mL" in seg and "dose is its parenchyma" in seg
    assert "<b>x</b>" in seg and "&lt;b&gt;" in build_report(patient_dir)  # shown as text, escaped in the page


def test_page_one_says_when_an_organs_dose_is_its_parenchymas(patient_dir):
    import json

    f = patient_dir / "segment" / "qc.json"
    qc = json.loads(f.read_text())
    qc["organ_method"] = {"organ_lesions": {"liver": {"labels": ["lesion_1", "lesion_2"], "spill_zone_ml": [20.0, 10.4]},
                                            "spleen": {"labels": [], "spill_zone_ml": []}}}
    f.write_text(json.dumps(qc))
    summary = parse(build_report(patient_dir)).sections["summary"]
    assert "Liver: the dose is its parenchyma" in summary and "(Lesion 1, Lesion 2) and 30 mL" in summary
    assert "Spleen: the dose" not in summary


def test_page_one_says_which_organ_was_declared_absent_and_which_vertebra_left_the_marrow_voi(patient_dir):
    import json

    f = patient_dir / "segment" / "qc.json"
    qc = json.loads(f.read_text())
    qc["checks"].append({"structure": "kidney_left", "check": "present", "value": 0.0, "unit": "", "status": "pass",
                         "expected": "absent (declared)", "source": "user", "note": ""})
    qc["marrow_uptake"] = {"excluded": ["L3"], "ratio_to_coldest": {"L2": 1.0, "L3": 3.68, "L4": 1.04},
                           "max_ratio": 1.5}
    f.write_text(json.dumps(qc))
    summary = parse(build_report(patient_dir)).sections["summary"]
    assert "Left kidney: declared absent" in summary and "applied to the right kidney alone" in summary
    assert "L3 was left out of the L2-L4 marrow VOI" in summary and "3.68 x" in summary
    assert "comes from L2, L4" in summary
    qc["marrow_uptake"] = {"excluded": [], "ambiguous": ["L2", "L3"], "ratio_to_coldest": {"L2": 2.0, "L3": 2.1,
                                                                                          "L4": 1.0}}
    qc["checks"] = [c for c in qc["checks"] if c["structure"] != "kidney_left" or c["check"] != "present"]
    f.write_text(json.dumps(qc))
    summary = parse(build_report(patient_dir)).sections["summary"]
    assert "declared absent" not in summary and "L2 and L3 read more than 1.5 x" in summary
