"""Manifest input: DICOM folders and NIfTI files per time point, overrides, one time point at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ingest_fixtures import INJECTION
from pipeline.errors import InputError
from pipeline.imageio import read_image
from pipeline.ingest.cli import main
from pipeline.ingest.manifest import read_manifest


@pytest.fixture(scope="module")
def folder_ingest(synthetic_patient, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder") / "out"
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    return out


def _write_manifest(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_manifest_with_dicom_and_nifti_time_points_gives_the_same_volumes(synthetic_patient, folder_ingest,
                                                                          tmp_path):
    manifest = _write_manifest(tmp_path / "manifest.yaml", {
        "patient_id": "P01", "radionuclide": "Lu-177", "injected_activity_mbq": 7400,
        "injection_datetime": INJECTION.isoformat(), "reference_time_point": "day1",
        "time_points": [
            {"id": "early", "dicom": str(synthetic_patient.folder / "t4h")},
            {"id": "day1", "ct": str(folder_ingest / "t24h" / "ct.nii.gz"),
             "spect": str(folder_ingest / "t24h" / "spect.nii.gz")},
        ]})
    out = tmp_path / "out"
    assert main([str(manifest), "--patient-id", "P01", "--out", str(out)]) == 0
    result = json.loads((out / "manifest.json").read_text())
    assert [tp["time_point"] for tp in result["time_points"]] == ["early", "day1"]
    assert result["reference_time_point"] == "day1"
    for ours, theirs in (("early", "t4h"), ("day1", "t24h")):
        a, side_a = read_image(out / ours / "spect.nii.gz")
        b, side_b = read_image(folder_ingest / theirs / "spect.nii.gz")
        assert a.same_grid(b) and np.array_equal(a.array, b.array)
        assert side_a["time_h"] == side_b["time_h"]
        c, _ = read_image(out / ours / "ct.nii.gz")
        d, _ = read_image(folder_ingest / theirs / "ct.nii.gz")
        assert c.same_grid(d) and np.array_equal(c.array, d.array)


def test_single_time_point_writes_only_its_folder(synthetic_patient, tmp_path):
    out = tmp_path / "out"
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(out),
                 "--time-point", "t24h"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["t24h"]
    assert sorted(p.name for p in (out / "t24h").iterdir()) == [
        "ct.json", "ct.nii.gz", "spect.json", "spect.nii.gz", "timepoint.json"]


def test_unknown_time_point_is_an_error(synthetic_patient, tmp_path, capsys):
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(tmp_path / "o"),
                 "--time-point", "t5h"]) == 2
    assert "no time point 't5h'" in capsys.readouterr().err


def test_manifest_acquisition_override_sets_the_time(synthetic_patient, tmp_path):
    manifest = _write_manifest(tmp_path / "m.yaml", {"time_points": [
        {"id": "t5h", "dicom": str(synthetic_patient.folder / "t4h"), "acquisition_datetime": "2026-01-05T14:00:00"}]})
    out = tmp_path / "out"
    assert main([str(manifest), "--patient-id", "P01", "--out", str(out)]) == 0
    side = json.loads((out / "t5h" / "spect.json").read_text())
    assert side["time_h"] == 5.0


@pytest.mark.parametrize("data, message", [
    ({"time_points": []}, "non-empty list"),
    ({"time_points": [{"id": "a", "dicom": "x"}, {"id": "a", "dicom": "y"}]}, "listed twice"),
    ({"time_points": [{"id": "a", "ct": "x.nii.gz"}]}, "either 'dicom'"),
    ({"time_points": [{"id": "a", "dicom": "x", "spect_file": "y"}]}, "unknown key"),
    ({"time_points": [{"id": "a", "dicom": "x"}], "reference_time_point": "b"}, "reference_time_point"),
    ({"injected_activity_mbq": -3, "time_points": [{"id": "a", "dicom": "x"}]}, "positive"),
])
def test_bad_manifests_are_rejected_with_the_reason(tmp_path, data, message):
    path = _write_manifest(tmp_path / "m.yaml", data)
    with pytest.raises(InputError, match=message) as err:
        read_manifest(path)
    assert err.value.path == str(path)


def test_two_spect_series_in_one_manifest_folder(synthetic_patient, tmp_path, capsys):
    manifest = _write_manifest(tmp_path / "m.yaml", {"time_points": [
        {"id": "t4h", "dicom": str(synthetic_patient.folder)}]})  # the whole patient: two SPECT series
    assert main([str(manifest), "--patient-id", "P01", "--out", str(tmp_path / "o")]) == 2
    assert "two series claim time point t4h" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
