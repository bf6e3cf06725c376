"""Vendor variants of the same acquisition give the same volumes and times.

Each variant is written from the synthetic patient's NM file by an independent
rewrite (ingest_dicom_factory) that keeps the world activity distribution; the
ingested SPECT must match the plain ingest. Tolerance: every variant file is
re-quantised to uint16 with its maximum at 65000, so values may differ by up
to max/65000 (two half-steps); 2x that is allowed.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil

import numpy as np
import pytest

import ingest_dicom_factory as fac
from pipeline.imageio import read_image
from pipeline.ingest.cli import main


def _ingest(folder, out, *extra):
    code = main([str(folder), "--patient-id", "P01", "--out", str(out), *extra])
    assert code == 0
    result = {}
    for tp in ("t4h", "t24h"):
        spect, side = read_image(out / tp / "spect.nii.gz")
        ct, _ = read_image(out / tp / "ct.nii.gz")
        result[tp] = (ct, spect, side)
    return result


@pytest.fixture(scope="module")
def plain(synthetic_patient, tmp_path_factory):
    return _ingest(synthetic_patient.folder, tmp_path_factory.mktemp("plain") / "out")


def _in_other_grid(a, b):
    """Voxel indices of ``b`` at the centres of every voxel of ``a`` (same world points)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in a.shape], indexing="ij"), -1).reshape(-1, 3)
    other = b.world_to_index(a.index_to_world(idx))
    np.testing.assert_allclose(other, np.round(other), atol=1e-3)  # centres coincide within 1e-3 voxel
    other = np.round(other).astype(int)
    assert np.all(other >= 0) and np.all(other < b.shape)
    return idx, other


def _assert_same_world(a, b, atol):
    """Same voxels in the world (possibly stacked in another order) with the same values."""
    assert sorted(a.shape) == sorted(b.shape) and a.array.size == b.array.size
    idx, other = _in_other_grid(a, b)
    np.testing.assert_allclose(a.array[tuple(idx.T)], b.array[tuple(other.T)], rtol=0, atol=atol)


def _assert_same(variant, plain):
    for tp, (ct, spect, side) in plain.items():
        v_ct, v_spect, v_side = variant[tp]
        _assert_same_world(v_ct, ct, atol=0)
        _assert_same_world(v_spect, spect, atol=2 * spect.array.max() / 65000)
        assert v_side["time_h"] == side["time_h"]
        assert v_side["injected_activity_mbq"] == pytest.approx(side["injected_activity_mbq"], rel=1e-9)


def test_shuffled_and_nested_files_give_the_same_volumes(patient, plain, tmp_path):
    files = sorted(p for p in patient.folder.rglob("*.dcm"))
    mixed = tmp_path / "mixed"
    rng = random.Random(5)
    rng.shuffle(files)
    for n, f in enumerate(files):
        sub = mixed / f"a{n % 3}" / (f"b{n % 2}" if n % 4 else "")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.move(f, sub / f"x{n:04d}")  # names say nothing about series or order
    _assert_same(_ingest(mixed, tmp_path / "out"), plain)


def test_negative_slice_spacing_gives_the_same_volumes(patient, plain, tmp_path):
    for nm in patient.nm_files.values():
        fac.to_negative_spacing(nm, nm)
    result = _ingest(patient.folder, tmp_path / "out")
    _assert_same(result, plain)
    # the stack runs the other way: k points to -S (RAS z) now
    assert result["t4h"][1].direction_ras[2, 2] == pytest.approx(-plain["t4h"][1].direction_ras[2, 2])


def test_per_slice_pet_like_spect_gives_the_same_volumes(patient, plain, tmp_path):
    for nm in patient.nm_files.values():
        fac.to_per_slice(nm, nm.parent / "slices")
        nm.unlink()
    _assert_same(_ingest(patient.folder, tmp_path / "out"), plain)


def test_counts_with_calibration_factor_give_the_same_volumes(patient, plain, tmp_path):
    for nm in patient.nm_files.values():
        fac.to_counts(nm, nm, calibration_cps_per_mbq=12.0, frame_ms=20000, frames=60)
    result = _ingest(patient.folder, tmp_path / "out", "--calibration-cps-per-mbq", "12")
    _assert_same(result, plain)
    assert "cps/MBq" in result["t4h"][2]["value_conversion"]


def test_counts_without_calibration_factor_is_an_error(patient, tmp_path, capsys):
    for nm in patient.nm_files.values():
        fac.to_counts(nm, nm)
    assert main([str(patient.folder), "--patient-id", "P01", "--out", str(tmp_path / "out")]) == 2
    assert "calibration" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_decay_corrected_to_injection_gives_the_activity_at_acquisition(patient, plain, tmp_path):
    for nm in patient.nm_files.values():
        fac.to_decay_corrected(nm, nm, "ADMIN")
    result = _ingest(patient.folder, tmp_path / "out")
    _assert_same(result, plain)
    # 24.2 h of Lu-177 decay: the stored values were exp(+lambda t) = 1.1107 higher
    assert result["t24h"][2]["decay_correction"]["factor"] == pytest.approx(
        np.exp(-np.log(2) / (6.647 * 24) * 24.209444), rel=1e-4)


def test_decay_corrected_to_a_start_time_gives_the_activity_at_acquisition(patient, plain, tmp_path):
    for tp, nm in patient.nm_files.items():
        fac.to_decay_corrected(nm, nm, "START", reference=dt.datetime(2026, 1, 5, 10, 0, 0))
    _assert_same(_ingest(patient.folder, tmp_path / "out"), plain)


def test_activity_in_mbq_instead_of_bq_gives_the_same_record(patient, plain, tmp_path):
    for nm in patient.nm_files.values():
        fac.with_total_dose(nm, nm, 7400.0)
    _assert_same(_ingest(patient.folder, tmp_path / "out"), plain)


def test_real_world_value_mapping_wins_over_rescale(patient, plain, tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    for nm in patient.nm_files.values():
        ds = pydicom.dcmread(nm)
        item = Dataset()
        item.RealWorldValueSlope = float(ds.RescaleSlope)
        item.RealWorldValueIntercept = 0.0
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "Bq/ml", "UCUM", "Becquerels/milliliter"
        item.MeasurementUnitsCodeSequence = Sequence([code])
        ds.RealWorldValueMappingSequence = Sequence([item])
        ds.RescaleSlope = "1"  # a wrong rescale must not be used when RWVM is present
        del ds.Units
        ds.save_as(nm, enforce_file_format=True)
    result = _ingest(patient.folder, tmp_path / "out")
    _assert_same(result, plain)
    assert "Real World Value Mapping" in result["t4h"][2]["value_conversion"]


def test_jpeg_lossless_compressed_ct_and_spect_give_identical_volumes(patient, plain, tmp_path):
    # JPEG Lossless SV1 (the usual lossless PACS compression) is not decodable by pydicom without a
    # plugin; GDCM decodes it and the header's rescale is undone: the stored values are the same
    # integers, so the volumes must be identical (atol 0), CT and SPECT
    import pydicom
    from pydicom.uid import JPEGLosslessSV1

    files = [*patient.nm_files.values(), *(f for d in patient.ct_folders.values() for f in sorted(d.glob("*.dcm")))]
    for f in files:
        fac.to_jpeg_lossless(f, f)
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    with pytest.raises(Exception):
        ds.pixel_array  # pydicom alone cannot: the fallback is what is tested
    compressed = _ingest(patient.folder, tmp_path / "out")
    for tp, (ct, spect, side) in plain.items():
        _assert_same_world(compressed[tp][0], ct, atol=0)
        _assert_same_world(compressed[tp][1], spect, atol=0)
        assert compressed[tp][2]["time_h"] == side["time_h"]
