"""Voxel-level partial-volume correction (pipeline.kinetics.pvc_voxel) on phantoms with a known answer.

Sphere phantom (hand-computable): spheres of 10, 15, 20, 30 and 40 mm diameter, concentration
``contrast x 1000`` Bq/mL, in a warm ellipsoidal body of 1000 Bq/mL, in air. The truth is drawn
on a 1 mm grid, blurred there by a Gaussian PSF (``scipy.ndimage.gaussian_filter``, FWHM 8 mm),
binned 2 x 2 x 2 to the 2 mm "SPECT" grid and given Poisson noise (100 counts per background
voxel, 10 % noise). The labels are drawn on the 1 mm grid and brought to the SPECT grid by the
pipeline's occupancy. So the imaging (blur before binning) is not the correction's own model
(blur of the binned image): the test is not an inverse crime. Expected: the true concentrations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.kinetics.pvc_voxel import (psf_fwhm_vector, small_region_volume_ml,
                                         voxel_partial_volume_correction)
from pipeline.kinetics.stage import KineticsOptions, compute_kinetics
from pipeline.kinetics.tac import label_occupancy



def _phantom_module():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("kinetics_test_phantom_pvc", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_PH = _phantom_module()
LP_LU177 = _PH.LP_LU177

DIAMETERS_MM = (10.0, 15.0, 20.0, 30.0, 40.0)
CENTRES_X_MM = (22.0, 52.0, 88.0, 134.0, 192.0)
FINE_MM, BIN = 1.0, 2
SHAPE_FINE = (248, 112, 96)  # 248 x 112 x 96 mm
BODY_SEMI_MM = (116.0, 44.0, 40.0)
FWHM_MM = 8.0
BG_BQ_PER_ML = 1000.0


def _fine_geometry():
    ax = [(np.arange(n) + 0.5) * FINE_MM for n in SHAPE_FINE]
    centre = np.array([n * FINE_MM / 2 for n in SHAPE_FINE])
    x, y, z = np.meshgrid(*ax, indexing="ij", sparse=True)
    body = ((x - centre[0]) / BODY_SEMI_MM[0]) ** 2 + ((y - centre[1]) / BODY_SEMI_MM[1]) ** 2 \
        + ((z - centre[2]) / BODY_SEMI_MM[2]) ** 2 <= 1.0
    labels = np.where(body, 7, 0).astype(np.int16)
    for n, (cx, d) in enumerate(zip(CENTRES_X_MM, DIAMETERS_MM)):
        inside = (x - (cx + 6.0)) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= (d / 2) ** 2
        labels[inside] = 100 + n
    return labels


def _bin(a):
    s = a.shape
    return a.reshape(s[0] // BIN, BIN, s[1] // BIN, BIN, s[2] // BIN, BIN).mean(axis=(1, 3, 5))


@pytest.fixture(scope="module")
def spheres():
    labels = _fine_geometry()
    sigma_fine = np.asarray(psf_fwhm_vector((FWHM_MM, FWHM_MM, FWHM_MM))) / 2.3548 / FINE_MM
    # imaging is linear: blur the body and the spheres once, combine per contrast
    body = _bin(gaussian_filter((labels > 0).astype(float), sigma_fine, mode="constant"))
    hot = _bin(gaussian_filter((labels >= 100).astype(float), sigma_fine, mode="constant"))
    sp = FINE_MM * BIN
    grid_aff = np.diag([sp, sp, sp, 1.0])
    grid_aff[:3, 3] = sp / 2
    fine_aff = np.diag([FINE_MM, FINE_MM, FINE_MM, 1.0])
    fine_aff[:3, 3] = FINE_MM / 2
    label_img = Image(labels, fine_aff, "label")
    grid = Image(np.zeros(body.shape, np.float32), grid_aff, "Bq/mL")
    occ = label_occupancy(label_img, grid)
    names = {7: "body", **{100 + n: f"sphere_{d:g}mm" for n, d in enumerate(DIAMETERS_MM)}}
    interior = {100 + n: _bin((labels == 100 + n).astype(float)) >= 1.0 for n in range(len(DIAMETERS_MM))}
    background = _bin((labels == 7).astype(float)) >= 1.0
    near = background & (gaussian_filter(_bin((labels >= 100).astype(float)), FWHM_MM / sp) > 0.01)
    return dict(body=body, hot=hot, grid=grid, occ=occ, names=names, interior=interior, background=background,
                near=near, labels=labels)


def _observed(sph, contrast, seed=0, counts_per_bg_voxel=100.0):
    """Blurred, binned, Poisson-noisy image, Bq/mL."""
    img = BG_BQ_PER_ML * (sph["body"] + (contrast - 1.0) * sph["hot"])
    rng = np.random.default_rng(seed)
    scale = counts_per_bg_voxel / BG_BQ_PER_ML
    return sph["grid"].with_array((rng.poisson(np.clip(img, 0, None) * scale) / scale).astype(np.float32))


@pytest.fixture(scope="module")
def corrected(spheres):
    out = {}
    for contrast in (2.0, 4.0, 8.0):
        obs = _observed(spheres, contrast, seed=int(contrast))
        vp = voxel_partial_volume_correction([obs], spheres["occ"], spheres["names"], "rbv", FWHM_MM)
        out[contrast] = (obs, vp)
    return out


@pytest.mark.parametrize("contrast", [2.0, 4.0, 8.0])
def test_spheres_above_twice_the_fwhm_recovered_within_5_percent(spheres, corrected, contrast):
    obs, vp = corrected[contrast]
    x = vp.corrected[0]
    occ = spheres["occ"]
    rows = []
    for n, d in enumerate(DIAMETERS_MM):
        lid = 100 + n
        true_bq = contrast * BG_BQ_PER_ML
        by_activity = vp.organ_activity_mbq[0][lid] * 1e6 / occ.volume_ml(lid) / true_bq
        interior = float(x[spheres["interior"][lid]].mean()) / true_bq
        uncorrected = float(obs.array[spheres["interior"][lid]].mean()) / true_bq
        rows.append((d, uncorrected, by_activity, interior))
        if d > 2 * FWHM_MM:
            # 5 % (issue) on both readings: activity / volume, and the mean of the voxels wholly inside
            assert by_activity == pytest.approx(1.0, abs=0.05), d
            assert interior == pytest.approx(1.0, abs=0.05), d
    print(f"contrast {contrast:g}: " + "; ".join(f"{d:g} mm RC {u:.3f} -> {a:.3f} (activity) {i:.3f} (interior)"
                                                   for d, u, a, i in rows))


@pytest.mark.parametrize("contrast", [2.0, 4.0, 8.0])
def test_background_not_over_corrected_by_more_than_2_percent(spheres, corrected, contrast):
    _, vp = corrected[contrast]
    x = vp.corrected[0]
    bg = float(x[spheres["background"]].mean()) / BG_BQ_PER_ML
    near = float(x[spheres["near"]].mean()) / BG_BQ_PER_ML
    body = vp.organ_activity_mbq[0][7] * 1e6 / spheres["occ"].volume_ml(7) / BG_BQ_PER_ML
    print(f"contrast {contrast:g}: background {bg:.4f}, within 1 FWHM of a sphere {near:.4f}, body label {body:.4f}")
    for v in (bg, near, body):
        assert v < 1.02  # issue: not over-corrected by more than 2 %
        assert v > 0.97  # nor under-corrected by more than the 10 % voxel noise averages to


def test_fov_total_conserved_and_no_voxel_changes_sign(spheres):
    # Gaussian noise with negative voxels (as after interpolation), contrast 8
    img = BG_BQ_PER_ML * (spheres["body"] + 7.0 * spheres["hot"])
    rng = np.random.default_rng(5)
    y = (img + 0.05 * img.max() * rng.standard_normal(img.shape)).astype(np.float32)
    vp = voxel_partial_volume_correction([spheres["grid"].with_array(y)], spheres["occ"], spheres["names"], "rbv",
                                         FWHM_MM)
    x, info = vp.corrected[0], vp.info[0]
    assert float(x.sum(dtype=np.float64)) == pytest.approx(float(y.sum(dtype=np.float64)), rel=1e-5)  # 1 % asked
    assert abs(info["raw_total_ratio"] - 1.0) < 0.01  # the correction itself, before the rescaling
    assert np.count_nonzero(y < 0) > 1000  # the test has negative input voxels
    assert not np.any((x < 0) & (y >= 0)) and not np.any((x > 0) & (y <= 0))
    assert info["negative_voxels_out"] <= info["negative_voxels_in"]


def test_regions_below_twice_fwhm_cubed_are_flagged(spheres, corrected):
    _, vp = corrected[4.0]
    limit = 2 * FWHM_MM ** 3 / 1000  # 1.024 mL
    assert small_region_volume_ml(FWHM_MM) == pytest.approx(limit)
    vol = {d: math.pi / 6 * d ** 3 / 1000 for d in DIAMETERS_MM}  # 0.52, 1.77, 4.2, ... mL
    assert set(vp.small_regions) == {100 + n for n, d in enumerate(DIAMETERS_MM) if vol[d] < limit} == {100}
    assert small_region_volume_ml((6.0, 6.0, 12.0)) == pytest.approx(2 * 6 * 6 * 12 / 1000)


def test_anisotropic_psf(spheres):
    """Axial FWHM 12 mm, transaxial 8 mm: the three-value PSF recovers, the isotropic 8 mm does not."""
    labels = spheres["labels"]
    sigma_fine = np.array([8.0, 8.0, 12.0]) / 2.3548 / FINE_MM
    hot = _bin(gaussian_filter((labels >= 100).astype(float), sigma_fine, mode="constant"))
    body = _bin(gaussian_filter((labels > 0).astype(float), sigma_fine, mode="constant"))
    obs = spheres["grid"].with_array((BG_BQ_PER_ML * (body + 3.0 * hot)).astype(np.float32))
    got = {}
    for fwhm in ((8.0, 8.0, 12.0), 8.0):
        vp = voxel_partial_volume_correction([obs], spheres["occ"], spheres["names"], "rbv", fwhm)
        got[np.size(fwhm)] = [vp.organ_activity_mbq[0][100 + n] * 1e6 / spheres["occ"].volume_ml(100 + n)
                              / (4 * BG_BQ_PER_ML) for n in range(len(DIAMETERS_MM))]
    for n, d in enumerate(DIAMETERS_MM):
        if d > 2 * 12.0:
            assert got[3][n] == pytest.approx(1.0, abs=0.05), d
            assert got[1][n] < got[3][n] - 0.01, d  # the axial blur left uncorrected (measured 2-4 %)
    print("anisotropic PSF, recovery by activity, 3-value / isotropic FWHM:",
          "; ".join(f"{d:g} mm {a:.3f} / {b:.3f}" for d, a, b in zip(DIAMETERS_MM, got[3], got[1])))


def test_psf_fwhm_validation():
    assert list(psf_fwhm_vector(11)) == [11.0, 11.0, 11.0]
    assert list(psf_fwhm_vector([10, 10, 14])) == [10.0, 10.0, 14.0]
    for bad in ([10, 12], 0, -3, [10, float("nan"), 10], "x"):
        with pytest.raises(InputError):
            psf_fwhm_vector(bad)


# ---- the kinetics stage with a voxel-level correction (conftest phantom, 10 mm PSF) ----

NAMES = {1: "kidney_left", 3: "liver", 4: "spleen", 7: "body"}


@pytest.fixture(scope="module")
def stage_runs(phantom_blurred):
    ph = phantom_blurred
    out = {}
    for pvc in ("none", "rbv"):
        out[pvc] = compute_kinetics(ph["spects"], ph["times_h"], ph["labels"], LP_LU177, label_names=NAMES,
                                    options=KineticsOptions(pvc=pvc, psf_fwhm_mm=None if pvc == "none" else 10.0))
    return out


def test_stage_rbv_recovers_the_true_organ_tia(phantom_blurred, stage_runs):
    truth = phantom_blurred["true_organ_tia_mbq_h"]
    none, rbv = stage_runs["none"], stage_runs["rbv"]
    for i, n in NAMES.items():
        if n == "body":
            continue
        # uniform organs, exact PSF, no noise: the model holds; 1 % for the organ fits of 5 points
        assert rbv.fits[i].tia_mbq_h == pytest.approx(truth[n], rel=0.01), n
        assert none.fits[i].tia_mbq_h < 0.9 * truth[n], n  # the loss that is corrected (15-29 %)
        assert rbv.correction[i] == "rbv"


def test_stage_without_pvc_is_unchanged_and_the_uncorrected_map_is_kept(stage_runs):
    none, rbv = stage_runs["none"], stage_runs["rbv"]
    assert none.voxel_pvc is None and none.tia_uncorrected is None
    # the uncorrected map of the rbv run is the same computation as the map without correction
    assert np.array_equal(rbv.tia_uncorrected.array, none.tia.array)
    assert float(rbv.tia.array.sum()) > float(none.tia.array.sum()) * 0.99
    # the corrected map is hotter in the kidney, where the blur took activity out
    k = none.occupancy.fraction(1) > 0.99
    assert float(rbv.tia.array[k].mean()) > 1.1 * float(none.tia.array[k].mean())


def test_organ_level_methods_refuse_an_anisotropic_psf(phantom_blurred):
    ph = phantom_blurred
    with pytest.raises(InputError, match="isotropic"):
        compute_kinetics(ph["spects"], ph["times_h"], ph["labels"], LP_LU177, label_names=NAMES,
                         options=KineticsOptions(pvc="gtm", psf_fwhm_mm=(10.0, 10.0, 14.0)))


def test_cli_writes_the_corrected_and_uncorrected_maps(tmp_path, phantom_blurred):
    from pipeline.imageio import make_sidecar, read_image, write_image
    from pipeline.kinetics.cli import main

    ph = phantom_blurred
    reg = tmp_path / "register"
    for n, (s, t) in enumerate(zip(ph["spects"], ph["times_h"])):
        write_image(reg / f"tp{n}" / "spect.nii.gz", s, make_sidecar(
            "activity_concentration", "Bq/mL", time_point=f"tp{n}", time_h=float(t), radionuclide="Lu-177",
            injected_activity_mbq=7400.0))
    write_image(tmp_path / "labels.nii.gz", ph["labels"], {"labels": {str(k): v for k, v in NAMES.items()}})
    (tmp_path / "labels.json").write_text(json.dumps({"labels": {str(k): v for k, v in NAMES.items()}}))
    assert main(["--register-dir", str(reg), "--labels", str(tmp_path / "labels.nii.gz"), "--out",
                 str(tmp_path / "k"), "--pvc", "rbv", "--psf-fwhm-mm", "10", "10", "10",
                 "--psf-source", "test phantom"]) == 0
    fits = json.loads((tmp_path / "k" / "fits.json").read_text())
    pv = fits["partial_volume_correction"]
    assert pv["method"] == "rbv" and pv["psf_fwhm_mm"] == [10.0, 10.0, 10.0] and pv["psf_source"] == "test phantom"
    assert len(pv["organ_correction_factor"]["kidney_left"]) == 5
    assert all(f > 1.1 for f in fits["organs"]["kidney_left"]["pvc_correction_factor"])
    assert len(pv["time_points"]) == 5 and all(abs(tp["rescale_factor"] - 1) < 0.01 for tp in pv["time_points"])
    unc, _ = read_image(tmp_path / "k" / "tia_uncorrected.nii.gz")
    cor, side = read_image(tmp_path / "k" / "tia.nii.gz")
    assert "rbv" in side["partial_volume_correction"] and unc.unit == cor.unit == "MBq*h/mL"
    assert main(["--register-dir", str(reg), "--labels", str(tmp_path / "labels.nii.gz"), "--out",
                 str(tmp_path / "k2"), "--pvc", "rbv", "--psf-fwhm-mm", "10", "12"]) == 2


def test_split_by_depth_kidney_shell_and_vertebra_rim():
    """Kidney ball of radius 20 mm: inside = ball of radius 20 - 8 = 12 mm; vertebra shell 4-10 mm
    around a marrow ball of radius 10 mm: the rim within 4 mm of the marrow becomes its own region."""
    from pipeline.kinetics.pvc_regions import INNER_OFFSET, NEAR_OFFSET, split_by_depth

    vox = 0.5
    n = 170  # 85 mm
    ax = (np.arange(n) + 0.5) * vox - n * vox / 2
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij", sparse=True)
    r_kid = np.sqrt((x - 21) ** 2 + y ** 2 + z ** 2)
    r_mar = np.sqrt((x + 21) ** 2 + y ** 2 + z ** 2)
    lab = np.zeros((n, n, n), np.int16)
    lab[r_kid <= 20] = 1
    lab[(r_mar > 10) & (r_mar <= 16)] = 6
    lab[r_mar <= 10] = 5
    out, parent = split_by_depth(Image(lab, np.diag([vox, vox, vox, 1.0]), "label"))
    assert parent == {1 + INNER_OFFSET: 1, 6 + NEAR_OFFSET: 6}
    v = vox ** 3
    # volumes against the spheres' closed forms; 5 %: the distances are between voxel centres, which
    # sit up to half a voxel (0.25 mm) beyond the surface: 0.1-0.2 mm on a 4 mm rim is 3-4 % of its volume
    assert np.count_nonzero(out.array == 1 + INNER_OFFSET) * v == pytest.approx(4 / 3 * math.pi * 12 ** 3, rel=0.05)
    assert np.count_nonzero(out.array == 6 + NEAR_OFFSET) * v == pytest.approx(
        4 / 3 * math.pi * (14 ** 3 - 10 ** 3), rel=0.05)
    # the 2 mm outer shell takes what the rim misses: 0.1-0.2 mm of 2 mm, 8 %
    assert np.count_nonzero(out.array == 6) * v == pytest.approx(4 / 3 * math.pi * (16 ** 3 - 14 ** 3), rel=0.08)
