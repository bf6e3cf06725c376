"""Bad inputs: one clear error line naming the file, exit code 2, nothing written."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

import ingest_dicom_factory as fac
from ingest_fixtures import INJECTION, write_session
from pipeline.ingest.cli import main


def _fails(folder, tmp_path, capsys, *extra):
    out = tmp_path / "out"
    code = main([str(folder), "--patient-id", "P01", "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert not out.exists(), "a failed ingest must write nothing"
    lines = [ln for ln in err.splitlines() if ln.startswith("spectdose ingest: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_truncated_file_is_named(patient, tmp_path, capsys):
    nm = patient.nm_files["t24h"]
    data = nm.read_bytes()
    nm.write_bytes(data[: len(data) - 500])  # pixel data cut short
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(nm) in line and "truncated" in line


def test_truncated_header_is_named(patient, tmp_path, capsys):
    ct = sorted(patient.ct_folders["t4h"].glob("*.dcm"))[2]
    ct.write_bytes(ct.read_bytes()[:300])
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(ct) in line and ("truncated" in line or "corrupt" in line)


def test_non_dicom_file_is_ignored_with_a_note(patient, tmp_path, capsys):
    junk = patient.folder / "t4h" / "notes.txt"
    junk.write_text("scan protocol notes\n")
    (patient.folder / "t4h" / "spect" / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "notes.txt: not a DICOM file; ignored" in err
    assert (out / "t4h" / "spect.nii.gz").exists()
    import json

    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("notes.txt" in n for n in notes)


def test_spect_without_ct_is_an_error(patient, tmp_path, capsys):
    shutil.rmtree(patient.ct_folders["t24h"])
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(patient.nm_files["t24h"]) in line and "SPECT without a CT" in line


def test_two_series_claiming_the_same_time_point(patient, tmp_path, capsys):
    # a third session 10 min after the 24 h one (24.38 h): both round to t24h
    write_session(patient.folder, "t24h_bis", dt.datetime(2026, 1, 6, 9, 22, 34))
    line = _fails(patient.folder, tmp_path, capsys)
    assert "two series claim time point t24h" in line and ".dcm" in line


def test_injection_after_acquisition(patient, tmp_path, capsys):
    for nm in patient.nm_files.values():
        fac.edit_header(nm, nm, RadiopharmaceuticalStartDateTime="20260105140000")
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(patient.nm_files["t4h"]) in line and "after acquisition" in line


def test_injection_override_after_acquisition(patient, tmp_path, capsys):
    line = _fails(patient.folder, tmp_path, capsys, "--injection-datetime", "2026-01-05T15:00:00")
    assert "after acquisition" in line


def test_missing_injection_record_without_override(patient, tmp_path, capsys):
    for nm in patient.nm_files.values():
        fac.edit_header(nm, nm, RadiopharmaceuticalStartDateTime=None, RadiopharmaceuticalStartTime=None)
    line = _fails(patient.folder, tmp_path, capsys)
    assert "missing injection record" in line and "--injection-datetime" in line


def test_missing_injection_record_with_override_works(patient, tmp_path, capsys):
    for nm in patient.nm_files.values():
        fac.edit_header(nm, nm, RadiopharmaceuticalStartDateTime=None, RadiopharmaceuticalStartTime=None)
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(out),
                 "--injection-datetime", INJECTION.isoformat()]) == 0
    assert (out / "t4h" / "timepoint.json").exists()


def test_unknown_nuclide(patient, tmp_path, capsys):
    nm = patient.nm_files["t4h"]
    fac.edit_header(nm, nm, RadionuclideCodeMeaning="^999^Lutetium")
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(nm) in line and "unknown radionuclide" in line


def test_unknown_nuclide_override(patient, tmp_path, capsys):
    line = _fails(patient.folder, tmp_path, capsys, "--nuclide", "Xx-12")
    assert "radionuclide" in line


def test_half_life_contradicting_the_nuclide(patient, tmp_path, capsys):
    nm = patient.nm_files["t24h"]
    fac.edit_header(nm, nm, RadionuclideHalfLife="21624.0")  # Tc-99m's 6.0 h, not Lu-177's 159.5 h
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(nm) in line and "contradicts Lu-177" in line


def test_implausible_activity_magnitude(patient, tmp_path, capsys):
    nm = patient.nm_files["t4h"]
    fac.with_total_dose(nm, nm, 5.0e5)  # neither MBq nor Bq of any administered activity
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(nm) in line and "--injected-mbq" in line


def test_projections_planar_and_secondary_capture_are_skipped_by_name(patient, tmp_path, capsys):
    from pydicom.uid import generate_uid

    extra = patient.folder / "t4h" / "other"
    truth = patient.spect_bqml["t4h"]
    common = dict(origin_lps=(0, 0, 0), row_cos=(1, 0, 0), col_cos=(0, 1, 0), spacing_ijk=(4, 4, 4),
                  study_uid=generate_uid(), for_uid=generate_uid(), acquisition=dt.datetime(2026, 1, 5, 13),
                  injection=INJECTION)
    fac.write_nm_tomo(extra / "proj.dcm", truth, image_type="TOMO", **common)
    fac.write_nm_tomo(extra / "planar.dcm", truth, image_type="WHOLE BODY", **common)
    sc = fac.edit_header(patient.nm_files["t4h"], extra / "sc.dcm", SOPClassUID=fac.SC_IMAGE,
                         SeriesInstanceUID=generate_uid())
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "proj.dcm: skipped NM tomographic projections" in err
    assert "planar.dcm: skipped NM planar image" in err
    assert f"{sc.name}: skipped secondary capture" in err


def test_only_projections_is_an_error(tmp_path, capsys):
    from pydicom.uid import generate_uid

    folder = tmp_path / "proj_only"
    fac.write_nm_tomo(folder / "proj.dcm", fac.np.ones((4, 4, 4)), origin_lps=(0, 0, 0), row_cos=(1, 0, 0),
                      col_cos=(0, 1, 0), spacing_ijk=(4, 4, 4), study_uid=generate_uid(), for_uid=generate_uid(),
                      acquisition=dt.datetime(2026, 1, 5, 13), injection=INJECTION, image_type="TOMO")
    line = _fails(folder, tmp_path, capsys)
    assert "no reconstructed SPECT" in line and "projections" in line


def test_nm_without_spacing_between_slices_is_not_guessed_from_thickness(patient, tmp_path, capsys):
    nm = patient.nm_files["t4h"]
    fac.edit_header(nm, nm, SpacingBetweenSlices=None)
    line = _fails(patient.folder, tmp_path, capsys)
    assert str(nm) in line and "SpacingBetweenSlices" in line


def test_missing_input_folder(tmp_path, capsys):
    line = _fails(tmp_path / "nope", tmp_path, capsys)
    assert "not found" in line


def test_series_of_two_patients_are_refused_without_printing_ids(patient, tmp_path, capsys):
    for path in patient.ct_folders["t24h"].glob("*.dcm"):
        fac.edit_header(path, path, PatientID="OTHER-123")
    line = _fails(patient.folder, tmp_path, capsys)
    assert "more than one patient" in line
    assert "OTHER-123" not in line and fac.PHI["PatientID"] not in line


def test_non_positive_override_is_refused(patient, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(patient.folder), "--patient-id", "P01", "--out", str(tmp_path / "o"), "--injected-mbq", "-5"])
    assert exc.value.code == 2 and "must be positive" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
