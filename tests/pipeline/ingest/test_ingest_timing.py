"""Times after injection, activity magnitude, nuclide names and half-lives."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import ingest_dicom_factory as fac
from ingest_fixtures import INJECTION, SESSIONS
from pipeline.errors import InputError
from pipeline.ingest.cli import main
from pipeline.ingest.run import time_point_id_from_hours
from pipeline.ingest.timing import (
    activity_mbq_from_dicom,
    check_half_life,
    nuclide_from_code_meaning,
    parse_dicom_datetime,
)


def test_times_after_injection_are_exact_to_the_second(synthetic_patient, tmp_path):
    out = tmp_path / "out"
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [tp["time_point"] for tp in manifest["time_points"]] == ["t4h", "t24h"]
    for tp in manifest["time_points"]:
        expected_s = (SESSIONS[tp["time_point"]] - INJECTION).total_seconds()  # 14417 s and 87154 s
        assert tp["time_after_injection_s"] == expected_s
        assert tp["time_h"] == expected_s / 3600.0
        side = json.loads((out / tp["time_point"] / "spect.json").read_text())
        assert side["time_h"] == expected_s / 3600.0
        assert side["acquisition_datetime"] == SESSIONS[tp["time_point"]].isoformat()
        assert side["radionuclide"] == "Lu-177" and side["injected_activity_mbq"] == 7400.0
        point = json.loads((out / tp["time_point"] / "timepoint.json").read_text())
        assert point["time_h"] == expected_s / 3600.0 and point["spect"] == "spect.nii.gz"
    assert manifest["injection_datetime"] == INJECTION.isoformat()
    assert manifest["radionuclide"] == "Lu-177"


def test_injection_time_without_date_is_completed_from_a_series_with_the_full_record(patient, tmp_path):
    # The 24 h series only has RadiopharmaceuticalStartTime: date + time would give 0.2 h, not 24.2 h.
    nm = patient.nm_files["t24h"]
    fac.edit_header(nm, nm, RadiopharmaceuticalStartDateTime=None)
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    side = json.loads((out / "t24h" / "spect.json").read_text())
    assert side["time_after_injection_s"] == (SESSIONS["t24h"] - INJECTION).total_seconds()


def test_injection_time_only_falls_back_to_the_acquisition_date_with_a_warning(patient, tmp_path, capsys):
    for nm in patient.nm_files.values():
        fac.edit_header(nm, nm, RadiopharmaceuticalStartDateTime=None)
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    assert "injection date-time built from a date and a time of day" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["injection_datetime"] == INJECTION.isoformat()  # earliest candidate: the t4h date


def test_time_point_id_rounds_half_up():
    assert [time_point_id_from_hours(h) for h in (0.9, 4.0047, 23.5, 24.49, 167.7)] == \
        ["t1h", "t4h", "t24h", "t24h", "t168h"]


@pytest.mark.parametrize("value, mbq", [(7400, 7400.0), ("7.4e9", 7400.0), (185, 185.0), (1.85e8, 185.0)])
def test_injected_activity_magnitude_check_reads_bq_or_mbq(value, mbq):
    assert activity_mbq_from_dicom(value, "x.dcm")[0] == pytest.approx(mbq)


def test_injected_activity_between_the_plausible_ranges_is_an_error():
    with pytest.raises(InputError, match="neither a plausible MBq"):
        activity_mbq_from_dicom(3.0e5, "x.dcm")


@pytest.mark.parametrize("text, name", [("^177^Lutetium", "Lu-177"), ("Lutetium^177^", "Lu-177"),
                                        ("^67^Copper", "Cu-67"), ("Yttrium-90", "Y-90"), ("90Y", "Y-90"),
                                        ("Tc-99m", "Tc-99m"), ("^99m^Technetium", "Tc-99m"), ("rubbish", None)])
def test_nuclide_code_meanings_are_parsed(text, name):
    assert nuclide_from_code_meaning(text) == name


def test_half_life_check_uses_icrp107():
    # ICRP-107: Lu-177 6.647 d = 159.53 h; a vendor's 6.64 d (0.1 % off) passes, Lu-177m's 160.4 d does not
    assert check_half_life("Lu-177", 6.64 * 24, "x.dcm") == pytest.approx(159.528, rel=1e-4)
    with pytest.raises(InputError, match="contradicts Lu-177"):
        check_half_life("Lu-177", 160.4 * 24, "x.dcm")


def test_dicom_datetime_parsing():
    assert parse_dicom_datetime("20260105093012.5+0100") == dt.datetime(2026, 1, 5, 9, 30, 12, 500000)
    assert parse_dicom_datetime(None, "20260105", "0930") == dt.datetime(2026, 1, 5, 9, 30)
    assert parse_dicom_datetime(None, "20260105", "09:30:12") == dt.datetime(2026, 1, 5, 9, 30, 12)
    assert parse_dicom_datetime(None, None, None) is None


def test_command_line_overrides_win_and_a_disagreement_is_warned(synthetic_patient, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(out),
                 "--injected-mbq", "7000", "--injection-datetime", "2026-01-05T08:50:00"]) == 0
    err = capsys.readouterr().err
    assert "differs from the command line value 7000 MBq" in err
    assert "differs from the command line value 2026-01-05T08:50:00" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["injected_activity_mbq"] == 7000.0
    assert manifest["provenance"] == {"injection_datetime": "command line", "injected_activity_mbq": "command line"}
    t4h = next(tp for tp in manifest["time_points"] if tp["time_point"] == "t4h")
    assert t4h["time_after_injection_s"] == (SESSIONS["t4h"] - dt.datetime(2026, 1, 5, 8, 50)).total_seconds()
    assert any("differs from the command line" in w for w in manifest["warnings"])
