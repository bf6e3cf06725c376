"""Ground truth bookkeeping: maps, organ tables, analytic kinetics, SPECT conservation."""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest

from pipeline.imageio import read_image


def _truth(root):
    return json.loads((root / "truth" / "truth.json").read_text())


def _f(model, p, t, lp):
    """The generating models, written out again independently of sample_data.kinetics."""
    if model == "mono_exponential":
        return p["a"] * math.exp(-(p["lambda_bio_per_h"] + lp) * t)
    if model == "uptake_washout":
        return p["a"] * (math.exp(-(p["lambda_washout_per_h"] + lp) * t) - math.exp(-(p["lambda_uptake_per_h"] + lp) * t))
    if model == "bi_exponential":
        return p["a1"] * math.exp(-(p["lambda1_per_h"] + lp) * t) + p["a2"] * math.exp(-(p["lambda2_per_h"] + lp) * t)
    raise AssertionError(model)


def _tia(model, p, lp):
    if model == "mono_exponential":
        return p["a"] / (p["lambda_bio_per_h"] + lp)
    if model == "uptake_washout":
        return p["a"] * (1 / (p["lambda_washout_per_h"] + lp) - 1 / (p["lambda_uptake_per_h"] + lp))
    return p["a1"] / (p["lambda1_per_h"] + lp) + p["a2"] / (p["lambda2_per_h"] + lp)


def test_organ_activities_equal_the_analytic_kinetics(small_noisefree):
    truth = _truth(small_noisefree)
    lp = math.log(2) / truth["half_life_h"]
    ia = truth["injected_activity_mbq"]
    checked = set()
    for name, organ in truth["organs"].items():
        gen = organ["generating_model"]
        if gen == "composite":
            continue
        for row in truth["time_points"]:
            expected = ia * _f(gen["model"], gen["parameters"], row["time_h"], lp)
            assert organ["activity_mbq"][row["id"]] == pytest.approx(expected, rel=1e-9), (name, row["id"])
        assert organ["tia_mbq_h"] == pytest.approx(ia * _tia(gen["model"], gen["parameters"], lp), rel=1e-9)
        checked.add(name)
    assert {"kidney_left", "kidney_right", "liver", "spleen", "marrow_L2L4", "lymph_node", "bone_lesion"} <= checked
    # the generating models the README promises
    models = {n: truth["organs"][n]["generating_model"]["model"] for n in checked}
    assert models["liver"] == "mono_exponential" and models["spleen"] == "bi_exponential"
    assert models["kidney_left"] == "uptake_washout" and models["marrow_L2L4"] == "bi_exponential"


def test_activity_maps_sum_to_the_organ_table(small_noisefree):
    truth = _truth(small_noisefree)
    labels, _ = read_image(small_noisefree / "truth" / "labels.nii.gz")
    for row in truth["time_points"]:
        act, side = read_image(small_noisefree / "truth" / f"activity_{row['id']}.nii.gz")
        assert side["unit"] == "Bq/mL" and act.same_grid(labels)
        for name, organ in truth["organs"].items():
            got = float(act.array[labels.array == organ["label"]].astype(float).sum()) * act.voxel_volume_ml / 1e6
            # float32 storage of the map: 1e-5 relative
            assert got == pytest.approx(organ["activity_mbq"][row["id"]], rel=1e-5, abs=1e-9), (name, row["id"])
    tia, side = read_image(small_noisefree / "truth" / "tia.nii.gz")
    assert side["unit"] == "MBq*h/mL"
    for name, organ in truth["organs"].items():
        got = float(tia.array[labels.array == organ["label"]].astype(float).sum()) * tia.voxel_volume_ml
        assert got == pytest.approx(organ["tia_mbq_h"], rel=1e-5), name


def test_kidney_cortex_is_three_times_hotter_than_medulla_and_the_metastasis_core_is_cold(small_noisefree):
    truth = _truth(small_noisefree)
    tissues, _ = read_image(small_noisefree / "truth" / "tissues.nii.gz")
    act, _ = read_image(small_noisefree / "truth" / "activity_t24h.nii.gz")
    ids = {v["name"]: int(k) for k, v in truth["tissues"].items()}
    mean = lambda name: float(act.array[tissues.array == ids[name]].mean())
    assert mean("kidney_left_cortex") / mean("kidney_left_medulla") == pytest.approx(3.0, rel=1e-5)
    assert mean("liver_metastasis_core") < 0.1 * mean("liver_metastasis_rim")
    # the rim and the core follow different time courses, so voxel-wise integration matters
    act1, _ = read_image(small_noisefree / "truth" / "activity_t1h.nii.gz")
    m1 = lambda name: float(act1.array[tissues.array == ids[name]].mean())
    assert abs(m1("liver_metastasis_rim") / m1("liver_metastasis_core")
               - mean("liver_metastasis_rim") / mean("liver_metastasis_core")) > 1.0


def test_whole_body_retention_falls_through_bladder_excretion(small_noisefree):
    truth = _truth(small_noisefree)
    lp = math.log(2) / truth["half_life_h"]
    rows = truth["time_points"]
    # retention in the phantom corrected for physical decay falls after the bladder empties
    corrected = [r["total_activity_mbq"] * math.exp(lp * r["time_h"]) for r in rows]
    assert corrected[-1] < 0.8 * corrected[0]
    assert all(b < a for a, b in zip(corrected, corrected[1:]))


def _nm_total_mbq(path):
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    voxel_ml = float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) * float(ds.SpacingBetweenSlices) / 1000.0
    return float(values.sum()) * voxel_ml / 1e6


def test_noise_free_spect_total_in_the_fov_equals_the_true_total_within_1_percent(small_noisefree):
    truth = _truth(small_noisefree)
    for row in truth["time_points"]:
        got = _nm_total_mbq(small_noisefree / "dicom" / row["id"] / "spect" / "NM_0001.dcm")
        # the PSF moves activity across the two axial faces of the FOV; the issue asks for 1 %
        assert got == pytest.approx(row["total_activity_in_spect_fov_mbq"], rel=0.01), row["id"]
        # and the FOV holds most of the digital patient's activity
        assert row["total_activity_in_spect_fov_mbq"] <= row["total_activity_mbq"]


def test_noisy_spect_is_unbiased_and_noisy(small_dicom, small_noisefree):
    truth = _truth(small_dicom)
    for row in truth["time_points"]:
        noisy = _nm_total_mbq(small_dicom / "dicom" / row["id"] / "spect" / "NM_0001.dcm")
        clean = _nm_total_mbq(small_noisefree / "dicom" / row["id"] / "spect" / "NM_0001.dcm")
        # Poisson noise on > 1e6 counts: the total agrees to far better than 1 %
        assert noisy == pytest.approx(clean, rel=0.01)
    a = pydicom.dcmread(small_dicom / "dicom" / "t168h" / "spect" / "NM_0001.dcm")
    b = pydicom.dcmread(small_noisefree / "dicom" / "t168h" / "spect" / "NM_0001.dcm")
    va = a.pixel_array * float(a.RescaleSlope)
    vb = b.pixel_array * float(b.RescaleSlope)
    assert not np.allclose(va, vb, rtol=1e-3)


def test_psf_truth_is_the_reference_spect_without_noise(small_noisefree):
    """The reference session (identity pose) of the noise-free run equals spect_psf_<ref>."""
    truth = _truth(small_noisefree)
    ref = truth["reference_time_point"]
    psf, _ = read_image(small_noisefree / "truth" / f"spect_psf_{ref}.nii.gz")
    ds = pydicom.dcmread(small_noisefree / "dicom" / ref / "spect" / "NM_0001.dcm")
    dicom = np.transpose(ds.pixel_array.astype(float), (2, 1, 0)) * float(ds.RescaleSlope)
    # uint16 quantisation: half a step of the rescale slope
    assert np.abs(dicom - psf.array).max() <= 0.5 * float(ds.RescaleSlope) + 1e-3
    # and the PSF truth of the TIA integrates to the true TIA in the FOV to within 1 %
    tia_psf, _ = read_image(small_noisefree / "truth" / "spect_psf_tia.nii.gz")
    tia, _ = read_image(small_noisefree / "truth" / "tia.nii.gz")
    assert float(tia_psf.array.sum()) * tia_psf.voxel_volume_ml == pytest.approx(
        float(tia.array.astype(float).sum()) * tia.voxel_volume_ml, rel=0.01)  # measured 0.16 %
