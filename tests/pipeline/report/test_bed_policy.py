"""BED only where the linear-quadratic parameters belong to the organ; never the kidney's silently."""

from __future__ import annotations

import json

from report_synthetic import ORGAN_ROWS, write_csv

from pipeline.report.bed import eligible_bed
from pipeline.report.build import build_report
from pipeline.report.summary import organ_rows


def _bed_column(patient):
    rows, notes = organ_rows(patient)
    return {r["name"]: r["BED (Gy)"] for r in rows}, notes


def test_kidney_parameters_are_not_applied_silently_to_other_organs(patient_dir):
    # bed.csv of the dose stage holds a liver and a marrow BED computed with the kidney's 2.6 Gy / 2.8 h
    bed, notes = _bed_column(patient_dir)
    assert bed["kidney_left"].startswith("3.30") and bed["kidney_right"].startswith("2.91")
    for organ in ("liver", "marrow_L2L4", "red_marrow"):
        assert bed[organ] == "not applicable", organ
    assert any("BED not shown for Liver, L2-L4 marrow VOI" in n and "kidney" in n for n in notes)
    page = build_report(patient_dir)
    section = page[page.index('id="bed"'):page.index('id="planning"')]
    assert "Left kidney" in section and "Liver</td>" not in section
    assert "BED not shown for Liver" in section


def test_user_supplied_parameters_are_shown_and_marked(patient_dir):
    prov = json.loads((patient_dir / "dose" / "dose_provenance.json").read_text())
    prov["settings"]["lq_by_organ"]["liver"] = {"alpha_beta_gy": 2.5, "repair_half_time_h": 1.5}
    (patient_dir / "dose" / "dose_provenance.json").write_text(json.dumps(prov))
    rows = [{"label": r["label"], "name": r["name"], "alpha_beta_gy": "2.6", "repair_half_time_h": "2.8",
             "bed_gy": "1.6", "eqd2_gy": "1.0"} for r in ORGAN_ROWS]
    rows[2].update(alpha_beta_gy="2.5", repair_half_time_h="1.5", bed_gy="1.62")
    write_csv(patient_dir / "dose" / "bed.csv", rows)
    entries, _ = eligible_bed(patient_dir)
    assert entries["liver"].origin == "user-supplied" and entries["liver"].alpha_beta_gy == 2.5
    assert entries["kidney_left"].origin == "kidney (sourced)"
    bed, _ = _bed_column(patient_dir)
    assert bed["liver"].startswith("1.62")


def test_a_bed_computed_with_other_parameters_than_recorded_is_withheld(patient_dir):
    prov = json.loads((patient_dir / "dose" / "dose_provenance.json").read_text())
    prov["settings"]["lq_by_organ"]["liver"] = {"alpha_beta_gy": 2.5, "repair_half_time_h": 1.5}
    (patient_dir / "dose" / "dose_provenance.json").write_text(json.dumps(prov))
    # bed.csv still has the kidney parameters in the liver row
    entries, notes = eligible_bed(patient_dir)
    assert "liver" not in entries
    assert any("Liver" in n and "parameters other than those recorded" in n for n in notes)


def test_without_recorded_parameters_only_the_kidneys_get_a_bed(patient_dir):
    prov = json.loads((patient_dir / "dose" / "dose_provenance.json").read_text())
    del prov["settings"]["lq_by_organ"]
    (patient_dir / "dose" / "dose_provenance.json").write_text(json.dumps(prov))
    entries, _ = eligible_bed(patient_dir)
    assert set(entries) == {"kidney_left", "kidney_right"}
