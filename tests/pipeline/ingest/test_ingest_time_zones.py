"""UTC offsets of injection and scan times: DICOM DT suffixes, TimezoneOffsetFromUTC, ISO offsets.

The reference schedule crosses the 2026 EU switch to summer time (Sunday 29 March 2026,
02:00 CET -> 03:00 CEST): injection on Saturday 28 March at 22:00 local (+0100), a scan on
Sunday 29 March at 22:00 local (+0200). By hand:
    injection 2026-03-28 22:00 +01:00 = 2026-03-28 21:00 UTC
    scan      2026-03-29 22:00 +02:00 = 2026-03-29 20:00 UTC
    elapsed   = 23 h 00 min = 82 800 s exactly   (the wall clock says 24 h = 86 400 s)
Times are kept to the second, so the expected values are exact (no tolerance).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import yaml

import ingest_dicom_factory as fac
from ingest_fixtures import write_session
from pipeline.errors import InputError
from pipeline.ingest.cli import main
from pipeline.ingest.run import plan_ingest
from pipeline.ingest.timing import parse_iso_datetime, seconds_between

INJECTION_LOCAL = dt.datetime(2026, 3, 28, 22, 0, 0)  # CET, +0100
SCAN_LOCAL = dt.datetime(2026, 3, 29, 22, 0, 0)  # CEST, +0200
UTC_ELAPSED_S = 23 * 3600  # see the module docstring
WALL_CLOCK_ELAPSED_S = 24 * 3600
LU177_HALF_LIFE_H = 6.647 * 24  # ICRP-107


def _session(folder, tp, acquisition, **header):
    """One CT + NM session (no offsets written by the factory); ``header`` edits the NM file."""
    nm, _, _ = write_session(folder, tp, acquisition, injection=INJECTION_LOCAL)
    if header:
        fac.edit_header(nm, nm, **header)
    return nm


def _ingest(input_path, tmp_path, capsys, *extra):
    out = tmp_path / "out"
    assert main([str(input_path), "--patient-id", "P01", "--out", str(out), *extra]) == 0, \
        capsys.readouterr().err
    return out, json.loads((out / "manifest.json").read_text()), capsys.readouterr().err


def test_dicom_datetime_suffixes_across_daylight_saving_give_the_utc_elapsed_time(tmp_path, capsys):
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL, AcquisitionDateTime="20260329220000+0200",
             RadiopharmaceuticalStartDateTime="20260328220000+0100", DecayCorrection="ADMIN")
    out, manifest, err = _ingest(folder, tmp_path, capsys)
    (tp,) = manifest["time_points"]
    assert tp["time_point"] == "t23h"  # id from the hours: 23 h, not 24 h
    assert tp["time_after_injection_s"] == UTC_ELAPSED_S
    assert tp["time_h"] == 23.0
    side = json.loads((out / "t23h" / "spect.json").read_text())
    assert side["time_h"] == 23.0
    # wall-clock times as before, offsets beside them
    assert side["acquisition_datetime"] == "2026-03-29T22:00:00"
    assert side["injection_datetime"] == "2026-03-28T22:00:00"
    assert (side["acquisition_utc_offset"], side["injection_utc_offset"]) == ("+0200", "+0100")
    assert manifest["injection_utc_offset"] == "+0100"
    note = "UTC offsets differ (+0100 at injection, +0200 at the scan; daylight saving?): elapsed time from UTC"
    assert any(note in n for n in side["notes"])
    assert any(note in n for n in json.loads((out / "t23h" / "timepoint.json").read_text())["notes"])
    assert any(note in n for n in manifest["notes"]) and note in err
    assert not tp["warnings"]
    # ADMIN decay correction undone over the same 23 h: exp(-ln2 * 23 / T1/2) = 0.904896 (rel 1e-9: float round-off)
    expected = math.exp(-math.log(2.0) * 23.0 / LU177_HALF_LIFE_H)
    assert side["decay_correction"]["factor"] == pytest.approx(expected, rel=1e-9)


def test_timezone_offset_from_utc_tags_across_daylight_saving_give_the_utc_elapsed_time(tmp_path, capsys):
    # No suffixes: each NM file has TimezoneOffsetFromUTC, which applies to all its DA/TM/DT
    # (PS3.3 C.12.1.1.8). Session 1 on the injection evening (+0100), session 2 a day later (+0200);
    # both restate the injection as 2026-03-28 22:00, which the second file's tag puts at +0200.
    folder = tmp_path / "in"
    _session(folder, "a", dt.datetime(2026, 3, 28, 23, 0, 0), TimezoneOffsetFromUTC="+0100")
    _session(folder, "b", SCAN_LOCAL, TimezoneOffsetFromUTC="+0200")
    out, manifest, err = _ingest(folder, tmp_path, capsys)
    times = {tp["time_point"]: tp["time_after_injection_s"] for tp in manifest["time_points"]}
    # 23:00 +0100 - 22:00 +0100 = 1 h; the second scan as in the module docstring = 23 h
    assert times == {"t1h": 3600, "t23h": UTC_ELAPSED_S}
    assert manifest["injection_utc_offset"] == "+0100"  # the earliest scan's offset
    assert any("different UTC offsets (+0100, +0200)" in w for w in manifest["warnings"])
    assert any("UTC offsets differ (+0100 at injection, +0200 at the scan" in n for n in manifest["notes"])
    t1h = next(tp for tp in manifest["time_points"] if tp["time_point"] == "t1h")
    assert t1h["acquisition_utc_offset"] == "+0100" and not t1h["notes"]


def test_dt_suffix_wins_over_timezone_offset_from_utc(tmp_path, capsys):
    # Tag +0200 for the file; the injection DT carries its own +0100, the AcquisitionDateTime none.
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL, TimezoneOffsetFromUTC="+0200",
             RadiopharmaceuticalStartDateTime="20260328220000+0100")
    _, manifest, _ = _ingest(folder, tmp_path, capsys)
    (tp,) = manifest["time_points"]
    assert tp["time_after_injection_s"] == UTC_ELAPSED_S
    assert (tp["injection_utc_offset"], tp["acquisition_utc_offset"]) == ("+0100", "+0200")


def test_manifest_iso_offsets_give_the_utc_elapsed_time(tmp_path, capsys):
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL)  # DICOM without any offset; the manifest gives both times
    manifest_path = tmp_path / "manifest.yaml"
    # one quoted (string for fromisoformat), one unquoted (YAML reads it as an aware datetime itself)
    manifest_path.write_text(
        'patient_id: P01\ninjection_datetime: "2026-03-28T22:00:00+01:00"\ntime_points:\n'
        f"  - id: day1\n    dicom: {folder / 'day1'}\n    acquisition_datetime: 2026-03-29T22:00:00+02:00\n")
    assert isinstance(yaml.safe_load(manifest_path.read_text())["time_points"][0]["acquisition_datetime"],
                      dt.datetime)
    out, manifest, err = _ingest(manifest_path, tmp_path, capsys)
    (tp,) = manifest["time_points"]
    assert tp["time_after_injection_s"] == UTC_ELAPSED_S and tp["time_h"] == 23.0
    assert tp["acquisition_datetime"] == "2026-03-29T22:00:00"
    assert manifest["injection_datetime"] == "2026-03-28T22:00:00"
    assert manifest["provenance"]["injection_datetime"] == "manifest"


def test_command_line_injection_offset_is_used(tmp_path, capsys):
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL, AcquisitionDateTime="20260329220000+0200")
    _, manifest, _ = _ingest(folder, tmp_path, capsys, "--injection-datetime", "2026-03-28T22:00:00+01:00")
    assert manifest["time_points"][0]["time_after_injection_s"] == UTC_ELAPSED_S


def test_offset_on_one_side_only_keeps_the_wall_clock_difference_with_a_warning(tmp_path, capsys):
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL, AcquisitionDateTime="20260329220000+0200")  # injection: no offset
    out, manifest, err = _ingest(folder, tmp_path, capsys)
    (tp,) = manifest["time_points"]
    assert tp["time_point"] == "t24h"
    assert tp["time_after_injection_s"] == WALL_CLOCK_ELAPSED_S  # 22:00 -> 22:00 next day on the wall clock
    assert tp["injection_utc_offset"] is None and tp["acquisition_utc_offset"] == "+0200"
    warning = ("injection time 2026-03-28T22:00:00 has no UTC offset, scan t24h (2026-03-29T22:00:00+02:00) "
               "has +0200: times taken as the same local clock")
    assert warning in tp["warnings"] and warning in manifest["warnings"] and warning in err
    assert not tp["notes"]


def test_same_offset_on_both_sides_changes_nothing(tmp_path, capsys):
    # Both +0100 (e.g. a winter schedule): UTC difference = wall-clock difference = 24 h, no remark.
    folder = tmp_path / "in"
    _session(folder, "day1", SCAN_LOCAL, AcquisitionDateTime="20260329220000+0100",
             RadiopharmaceuticalStartDateTime="20260328220000+0100")
    _, manifest, _ = _ingest(folder, tmp_path, capsys)
    (tp,) = manifest["time_points"]
    assert tp["time_after_injection_s"] == WALL_CLOCK_ELAPSED_S
    assert not tp["warnings"] and not tp["notes"] and not manifest["warnings"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DT")  # pydicom on writing the bad fixture
@pytest.mark.parametrize("header, value", [
    ({"TimezoneOffsetFromUTC": "+25xx"}, "+25xx"),
    ({"TimezoneOffsetFromUTC": "+2500"}, "+2500"),  # beyond +1400 (PS3.5)
    ({"AcquisitionDateTime": "20260329220000+0260"}, "+0260"),  # 60 minutes
    ({"RadiopharmaceuticalStartDateTime": "20260328220000+25xx"}, "+25xx"),
])
def test_malformed_utc_offset_is_an_input_error_naming_the_file_and_value(tmp_path, header, value):
    nm = _session(tmp_path / "in", "day1", SCAN_LOCAL, **header)
    with pytest.raises(InputError) as info:
        plan_ingest(tmp_path / "in", "P01")
    assert str(nm) in str(info.value) and value in str(info.value)


def test_malformed_iso_offset_is_an_input_error_naming_the_manifest(tmp_path):
    with pytest.raises(InputError, match=r"manifest\.yaml.*\+15:00"):
        parse_iso_datetime("2026-03-28T22:00:00+15:00", tmp_path / "manifest.yaml")


def test_seconds_between_uses_utc_only_when_both_ends_have_an_offset():
    cet, cest = dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2))
    assert seconds_between(INJECTION_LOCAL.replace(tzinfo=cet), SCAN_LOCAL.replace(tzinfo=cest)) == UTC_ELAPSED_S
    assert seconds_between(INJECTION_LOCAL, SCAN_LOCAL.replace(tzinfo=cest)) == WALL_CLOCK_ELAPSED_S
    assert seconds_between(INJECTION_LOCAL.replace(tzinfo=cet), SCAN_LOCAL) == WALL_CLOCK_ELAPSED_S
    assert seconds_between(INJECTION_LOCAL, SCAN_LOCAL) == WALL_CLOCK_ELAPSED_S
