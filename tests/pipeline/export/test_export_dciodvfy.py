"""The exported objects validate with dciodvfy (Debian dicom3tools): no errors, only accepted warnings."""

from __future__ import annotations

import pytest

import export_factory as fac
from dicom_tools import dciodvfy_problems, debian_tool
from pipeline.export.run import export_dicom


@pytest.mark.slow
@pytest.mark.parametrize("geometry", [fac.Geometry(), fac.OBLIQUE], ids=["axial", "oblique"])
def test_dciodvfy_reports_no_errors(tmp_path, geometry):
    dciodvfy = debian_tool("dciodvfy", "dicom3tools")
    patient = fac.make_finished_patient(tmp_path, geometry)
    result = export_dicom(patient.patient_dir, patient.dicom_dir, tmp_path / "out")
    assert [p.name for p in result.files] == ["rtdose.dcm", "seg.dcm", "report.dcm"]
    for path in result.files:
        errors, warnings = dciodvfy_problems(dciodvfy, path)
        assert errors == [], (path.name, errors)
        assert warnings == [], (path.name, warnings)


@pytest.mark.slow
def test_dciodvfy_catches_a_broken_rt_dose(tmp_path):
    """The check itself can fail: an RT Dose without DoseUnits is an error."""
    import pydicom

    dciodvfy = debian_tool("dciodvfy", "dicom3tools")
    patient = fac.make_finished_patient(tmp_path)
    result = export_dicom(patient.patient_dir, patient.dicom_dir, tmp_path / "out")
    ds = pydicom.dcmread(result.files[0])
    del ds.DoseUnits
    ds.save_as(tmp_path / "broken.dcm")
    errors, _ = dciodvfy_problems(dciodvfy, tmp_path / "broken.dcm")
    assert any("DoseUnits" in e for e in errors)
