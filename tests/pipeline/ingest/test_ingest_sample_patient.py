"""The sample patient's DICOM ingests to its ground truth (noise-free small preset).

Reference: ``truth/`` written by the generator from its own in-memory images
(truth.json, labels, noise-free CT, PSF-blurred SPECT truth), never read by ingest.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

import ingest_dicom_factory as fac
from pipeline.imageio import read_image
from pipeline.ingest.cli import main

ORGANS = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen"}


@pytest.fixture(scope="module")
def truth(sample_patient):
    return json.loads((sample_patient / "truth" / "truth.json").read_text())


def _weighted_centroid(image, mask):
    """Activity-weighted centroid (RAS+ mm) of ``image`` over the boolean ``mask``."""
    idx = np.argwhere(mask)
    w = image.array[mask].astype(float)
    return (image.index_to_world(idx) * w[:, None]).sum(0) / w.sum()


def _labels_on(image, labels):
    """Truth label at every voxel centre of ``image`` (nearest neighbour by world position)."""
    ijk = np.rint(labels.world_to_index(image.world_grid())).astype(int)
    inside = np.all((ijk >= 0) & (ijk < labels.shape), axis=-1)
    ijk = np.clip(ijk, 0, np.array(labels.shape) - 1)
    return np.where(inside, labels.array[ijk[..., 0], ijk[..., 1], ijk[..., 2]], 0)


def test_times_are_exact(sample_ingest, truth):
    manifest = json.loads((sample_ingest / "manifest.json").read_text())
    got = {tp["time_point"]: tp for tp in manifest["time_points"]}
    assert set(got) == {tp["id"] for tp in truth["time_points"]}
    for tp in truth["time_points"]:
        assert got[tp["id"]]["time_h"] == tp["time_h"]  # exact: both are whole seconds
        assert got[tp["id"]]["acquisition_datetime"] == tp["acquisition_datetime"]
    assert manifest["injection_datetime"] == truth["injection_datetime"]
    assert manifest["injected_activity_mbq"] == truth["injected_activity_mbq"]
    assert manifest["radionuclide"] == truth["radionuclide"]
    assert manifest["reference_time_point"] == truth["reference_time_point"]


def test_total_activity_in_the_field_of_view_matches_the_truth_within_1_percent(sample_ingest, truth):
    # Truth: activity binned into the SPECT field of view before the PSF blur; the blur moves a
    # little activity across the axial FOV ends, hence 1 % (measured: under 0.1 %).
    for tp in truth["time_points"]:
        spect, side = read_image(sample_ingest / tp["id"] / "spect.nii.gz")
        total_mbq = float(spect.array.sum(dtype=np.float64)) * spect.voxel_volume_ml / 1e6
        assert total_mbq == pytest.approx(tp["total_activity_in_spect_fov_mbq"], rel=0.01), tp["id"]
        assert side["total_activity_in_fov_mbq"] == pytest.approx(total_mbq, rel=1e-6)


def test_reference_session_geometry_matches_the_truth(sample_patient, sample_ingest, truth):
    ref = truth["reference_time_point"]
    labels, _ = read_image(sample_patient / "truth" / "labels.nii.gz")
    # CT: same voxels in the world and the same HU as the noise-free truth CT
    ct, _ = read_image(sample_ingest / ref / "ct.nii.gz")
    truth_ct, _ = read_image(sample_patient / "truth" / "ct_noisefree.nii.gz")
    assert ct.same_grid(truth_ct, atol_mm=1e-3)
    np.testing.assert_array_equal(ct.array, truth_ct.array)
    # SPECT: organ centroids (activity-weighted within each truth organ) within 0.5 mm of the truth
    spect, _ = read_image(sample_ingest / ref / "spect.nii.gz")
    psf, _ = read_image(sample_patient / "truth" / f"spect_psf_{ref}.nii.gz")
    on_spect, on_psf = _labels_on(spect, labels), _labels_on(psf, labels)
    for label, name in ORGANS.items():
        a = _weighted_centroid(spect, on_spect == label)
        b = _weighted_centroid(psf, on_psf == label)
        assert np.linalg.norm(a - b) < 0.5, (name, a, b)


def test_moved_sessions_follow_the_true_patient_motion(sample_ingest, sample_patient, truth):
    # Each session's patient pose is a known rigid motion of the reference pose. Gaussian-windowed
    # (sigma 25 mm) activity centroids around each organ, ingested vs truth moved by matrix_ras.
    # Tolerance 2.5 mm (half a 4.8 mm SPECT voxel): the generator bins the moved phantom afresh, which
    # moves such centroids by up to 1.8 mm; an axis flip or a one-voxel shift moves them by >= 4.8 mm.
    labels, _ = read_image(sample_patient / "truth" / "labels.nii.gz")
    centres_ref = {label: labels.index_to_world(np.argwhere(labels.array == label)).mean(0) for label in ORGANS}

    def windowed(image, grid, centre, sigma=25.0):
        near = np.all(np.abs(grid - centre) < 4 * sigma, axis=1)  # the window is < 3e-4 beyond 4 sigma
        x, a = grid[near], image.array.reshape(-1)[near].astype(float)
        w = a * np.exp(-((x - centre) ** 2).sum(1) / (2 * sigma ** 2))
        return (w[:, None] * x).sum(0) / w.sum()

    for tp in truth["time_points"]:
        m = np.asarray(tp["transform"]["matrix_ras"])
        spect, _ = read_image(sample_ingest / tp["id"] / "spect.nii.gz")
        psf, _ = read_image(sample_patient / "truth" / f"spect_psf_{tp['id']}.nii.gz")
        grid, psf_grid = spect.world_grid().reshape(-1, 3), psf.world_grid().reshape(-1, 3)
        for label, name in ORGANS.items():
            c_tp = (m @ np.r_[centres_ref[label], 1.0])[:3]
            expected = (m @ np.r_[windowed(psf, psf_grid, centres_ref[label]), 1.0])[:3]
            assert np.linalg.norm(windowed(spect, grid, c_tp) - expected) < 2.5, (tp["id"], name)


# ---------------------------------------------------------------------------- variants
def _ingest_folder(folder, out, *extra):
    assert main([str(folder), "--patient-id", "SAMPLE01", "--out", str(out), *extra]) == 0
    spect, side = read_image(out / "t24h" / "spect.nii.gz")
    ct, _ = read_image(out / "t24h" / "ct.nii.gz")
    return ct, spect, side


@pytest.fixture(scope="module")
def reference_folder(sample_patient):
    return sample_patient / "dicom" / "t24h"


@pytest.fixture(scope="module")
def plain_reference(reference_folder, tmp_path_factory):
    return _ingest_folder(reference_folder, tmp_path_factory.mktemp("sample_plain") / "out")


def _assert_same_world(a, b, atol):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in a.shape], indexing="ij"), -1).reshape(-1, 3)
    other = b.world_to_index(a.index_to_world(idx))
    np.testing.assert_allclose(other, np.round(other), atol=1e-3)
    other = np.round(other).astype(int)
    assert np.all(other >= 0) and np.all(other < b.shape) and a.array.size == b.array.size
    np.testing.assert_allclose(a.array[tuple(idx.T)], b.array[tuple(other.T)], rtol=0, atol=atol)


def _assert_same(variant, plain):
    (ct, spect, side), (p_ct, p_spect, p_side) = variant, plain
    _assert_same_world(ct, p_ct, atol=0)
    # re-quantised to uint16 once more: up to max/65000 per voxel (two half-steps), 2x allowed
    _assert_same_world(spect, p_spect, atol=2 * p_spect.array.max() / 65000)
    assert side["time_h"] == p_side["time_h"] == 24.0
    assert side["injected_activity_mbq"] == pytest.approx(7400.0, rel=1e-9)


@pytest.fixture
def reference_copy(reference_folder, tmp_path):
    dst = tmp_path / "in"
    shutil.copytree(reference_folder, dst)
    return dst, dst / "spect" / "NM_0001.dcm"


def test_sample_shuffled_and_nested_files_give_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, _ = reference_copy
    files = sorted(folder.rglob("*.dcm"))
    random.Random(11).shuffle(files)
    mixed = tmp_path / "mixed"
    for n, f in enumerate(files):
        sub = mixed / f"d{n % 4}" / f"e{n % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.move(f, sub / f"{n:05d}.dcm")
    _assert_same(_ingest_folder(mixed, tmp_path / "out"), plain_reference)


def test_sample_negative_slice_spacing_gives_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, nm = reference_copy
    fac.to_negative_spacing(nm, nm)
    _assert_same(_ingest_folder(folder, tmp_path / "out"), plain_reference)


def test_sample_per_slice_spect_gives_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, nm = reference_copy
    fac.to_per_slice(nm, folder / "spect_slices")
    nm.unlink()
    _assert_same(_ingest_folder(folder, tmp_path / "out"), plain_reference)


def test_sample_counts_with_calibration_give_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, nm = reference_copy
    fac.to_counts(nm, nm, calibration_cps_per_mbq=12.0, frame_ms=20000, frames=60)
    _assert_same(_ingest_folder(folder, tmp_path / "out", "--calibration-cps-per-mbq", "12"), plain_reference)


def test_sample_decay_corrected_spect_gives_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, nm = reference_copy
    fac.to_decay_corrected(nm, nm, "ADMIN")
    _assert_same(_ingest_folder(folder, tmp_path / "out"), plain_reference)


def test_sample_activity_in_mbq_gives_the_same_volumes(reference_copy, plain_reference, tmp_path):
    folder, nm = reference_copy
    fac.with_total_dose(nm, nm, 7400.0)
    _assert_same(_ingest_folder(folder, tmp_path / "out"), plain_reference)
