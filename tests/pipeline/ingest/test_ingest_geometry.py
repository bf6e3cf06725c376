"""Ingest puts every voxel where the DICOM says it is (RAS+ mm), for CT and SPECT."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydicom.uid import generate_uid

import ingest_dicom_factory as fac
from pipeline.errors import InputError
from pipeline.imageio import read_image
from pipeline.ingest.cli import main
from pipeline.ingest.ct_series import read_ct_series
from pipeline.ingest.dicom_scan import scan_folder
from pipeline.ingest.geometry import affine_from_dicom

# Positions are written with 4 decimals: 1e-3 mm is well above rounding and far below a voxel.
TOL_MM = 1e-3


def _rotation(axis, angle_deg):
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
         "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return np.asarray(m)


def test_affine_from_dicom_maps_voxels_to_the_lps_positions_of_the_dicom_definition():
    # Oblique orientation, anisotropic spacing; reference: x_LPS = P0 + i dc r + j dr c + k dk n, RAS = diag(-1,-1,1) LPS
    rot = _rotation("z", 17) @ _rotation("x", -11)
    r, c = rot[:, 0], rot[:, 1]
    n = -np.cross(r, c)
    p0 = np.array([-120.5, 87.25, -310.0])
    affine = affine_from_dicom(p0, [*r, *c], (1.3, 0.9765625), n, 2.5)
    for ijk in [(0, 0, 0), (5, 0, 0), (0, 7, 0), (0, 0, 3), (4, 6, 9)]:
        i, j, k = ijk
        lps = p0 + i * 0.9765625 * r + j * 1.3 * c + k * 2.5 * n
        ras = affine @ np.array([i, j, k, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_synthetic_ct_and_spect_have_the_truth_geometry_and_values(synthetic_patient, tmp_path):
    out = tmp_path / "out"
    assert main([str(synthetic_patient.folder), "--patient-id", "P01", "--out", str(out)]) == 0
    for tp in ("t4h", "t24h"):
        ct, ct_side = read_image(out / tp / "ct.nii.gz")
        spect, _ = read_image(out / tp / "spect.nii.gz")
        np.testing.assert_allclose(ct.affine, synthetic_patient.ct_affine, atol=TOL_MM)
        np.testing.assert_allclose(spect.affine, synthetic_patient.spect_affine, atol=TOL_MM)
        # CT written as stored - 1024 with slope 1: exact integers
        np.testing.assert_array_equal(ct.array, synthetic_patient.ct_hu)
        assert ct.unit == "HU" and spect.unit == "Bq/mL" and spect.array.dtype == np.float32
        truth = synthetic_patient.spect_bqml[tp]
        # uint16 quantisation with max -> 65000: error <= max/130000 per voxel
        np.testing.assert_allclose(spect.array, truth, rtol=0, atol=truth.max() / 65000)


@pytest.mark.parametrize("orientation", ["feet_first_supine", "oblique_head_first", "prone"])
def test_ct_series_in_any_orientation_lands_on_its_dicom_positions(tmp_path, orientation):
    rot = {"feet_first_supine": np.diag([-1.0, 1.0, -1.0]),  # r = -x_LPS (towards R), c = +P, n = -S
           "oblique_head_first": _rotation("y", 8) @ _rotation("z", -23),
           "prone": np.diag([-1.0, -1.0, 1.0])}[orientation]
    r, c = rot[:, 0], rot[:, 1]
    hu = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4) - 50
    geometry = dict(origin_lps=(10.0, -20.0, 35.0), row_cos=r, col_cos=c, spacing_ijk=(0.8, 1.1, 2.0))
    paths = fac.write_ct_series(tmp_path / "ct", hu, **geometry, study_uid=generate_uid(),
                                for_uid=generate_uid(), when=dt.datetime(2026, 1, 1, 8))
    scan = scan_folder(tmp_path / "ct")
    image = read_ct_series(scan.series[0].files, scan.series[0].headers)
    assert len(paths) == 4
    truth = fac.truth_affine(**geometry)
    np.testing.assert_allclose(image.affine, truth, atol=TOL_MM)
    np.testing.assert_array_equal(image.array, hu)


def test_ct_with_a_missing_slice_is_rejected_naming_a_file(tmp_path):
    hu = np.zeros((4, 4, 6), np.int16)
    paths = fac.write_ct_series(tmp_path / "ct", hu, origin_lps=(0, 0, 0), row_cos=(1, 0, 0), col_cos=(0, 1, 0),
                                spacing_ijk=(1, 1, 2), study_uid=generate_uid(), for_uid=generate_uid(),
                                when=dt.datetime(2026, 1, 1, 8))
    paths[3].unlink()
    scan = scan_folder(tmp_path / "ct")
    with pytest.raises(InputError, match="missing slice") as err:
        read_ct_series(scan.series[0].files, scan.series[0].headers)
    assert err.value.path.endswith(".dcm")


def test_ct_with_gantry_tilt_is_rejected(tmp_path):
    hu = np.zeros((4, 4, 3), np.int16)
    paths = fac.write_ct_series(tmp_path / "ct", hu, origin_lps=(0, 0, 0), row_cos=(1, 0, 0), col_cos=(0, 1, 0),
                                spacing_ijk=(1, 1, 2), study_uid=generate_uid(), for_uid=generate_uid(),
                                when=dt.datetime(2026, 1, 1, 8))
    for p in paths:
        fac.edit_header(p, p, GantryDetectorTilt="12")
    scan = scan_folder(tmp_path / "ct")
    with pytest.raises(InputError, match="gantry tilt"):
        read_ct_series(scan.series[0].files, scan.series[0].headers)


def test_real_feet_first_ct_agrees_with_simpleitk_world_geometry(real_ct_dir):
    import SimpleITK as sitk

    from pipeline.imageio import from_sitk

    scan = scan_folder(real_ct_dir)
    cts = scan.of_kind("ct")
    assert len(cts) == 1
    ours = read_ct_series(cts[0].files, cts[0].headers)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(real_ct_dir)))
    ref = from_sitk(reader.Execute(), "HU")
    assert ours.shape == ref.shape
    # Same world position for every voxel corner of the grid and the same HU at matching voxels,
    # whatever order each reader stacks the slices in.
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.integers(0, ours.shape, size=(2000, 3)),
                          np.array([[0, 0, 0], [511, 511, 302], [0, 511, 150], [511, 0, 0]])])
    world = ours.index_to_world(idx)
    ref_idx = ref.world_to_index(world)
    np.testing.assert_allclose(ref_idx, np.round(ref_idx), atol=1e-3)  # voxel centres coincide (< 0.003 mm)
    r = np.round(ref_idx).astype(int)
    np.testing.assert_array_equal(ours.array[tuple(idx.T)], ref.array[tuple(r.T)])
    # Feet-first: the file with the highest z (S) position is InstanceNumber 1; our k runs to +S
    assert ours.direction_ras[2, 2] > 0.99
