"""Voxel-level partial-volume correction (``pvc="rbv"``) on the standard sample patient against the
UNBLURRED truth (issue 15).

Input, as in test_kinetics_sample_patient (registration is not under test here):
- noise-free: ``truth/spect_psf_<tp>.nii.gz`` (true activity in the reference pose, binned to the
  4.8 mm SPECT grid, blurred by the camera's 11 mm FWHM Gaussian PSF) used as the registered SPECT;
- noisy: each session's Poisson-noisy SPECT resampled onto the reference SPECT grid with the true
  rigid transform of truth.json (linear interpolation).
Labels: ``truth/labels.nii.gz`` (the correct labels).

References (independent of the correction):
- organ TIA: ``truth.json organs[name].tia_mbq_h``, the analytic integral over the true tissues of
  each label on the CT grid (no PSF, no SPECT grid);
- organ mean dose: :func:`pipeline.dose.stage.compute_dose` (called as a library, not edited) on
  the unblurred true TIA ``truth/tia.nii.gz`` resampled to the dose grid, with the same kernels, the
  noise-free CT and the same labels. The pipeline's doses come from the same call on the kinetics
  stage's TIA map with and without the correction.

The numbers measured are printed (``pytest -s``) and quoted in pipeline/kinetics/README.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.imageio import from_sitk, read_image, to_sitk
from pipeline.kinetics.stage import KineticsOptions, compute_kinetics

pytestmark = pytest.mark.slow

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")
LESIONS = ("liver_metastasis", "lymph_node", "bone_lesion")
MARROW = "marrow_L2L4"  # organ-level TIA only: the EANM marrow dose is computed from it
PSF_MM = 11.0  # the generator's camera PSF for Lu-177 (sample_data/presets.py), asserted below


def _generate(path, noise):
    from sample_data.generator import generate

    return generate(path, preset="standard", nuclide="Lu-177", seed=0, noise=noise, fmt="nifti")


def _registered(sample, noisy):
    import SimpleITK as sitk

    truth = json.loads((sample / "truth" / "truth.json").read_text())
    ref_grid, _ = read_image(sample / "truth" / "spect_psf_tia.nii.gz")
    out = []
    for tp in truth["time_points"]:
        tid = tp["id"]
        if not noisy:
            img, _ = read_image(sample / "truth" / f"spect_psf_{tid}.nii.gz")
        else:
            img, _ = read_image(sample / "nifti" / f"{tid}_spect.nii.gz")
            m = np.array(tp["transform"]["matrix_lps"])
            tr = sitk.AffineTransform(3)
            tr.SetMatrix(m[:3, :3].ravel().tolist())
            tr.SetTranslation(m[:3, 3].tolist())
            res = sitk.Resample(to_sitk(img.with_array(img.array.astype(np.float64))), to_sitk(ref_grid), tr,
                                sitk.sitkLinear, 0.0, sitk.sitkFloat64)
            img = from_sitk(res, "Bq/mL")
        out.append(img)
    return truth, out, np.array([tp["time_h"] for tp in truth["time_points"]])


def _kinetics(truth, spects, times, labels, pvc, fwhm=PSF_MM):
    names = {int(k): v for k, v in truth["labels"].items()}
    return compute_kinetics(spects, times, labels, truth["decay_constant_per_h"], label_names=names,
                            options=KineticsOptions(pvc=pvc, psf_fwhm_mm=None if pvc == "none" else fwhm))


class _Dose:
    """Organ mean doses (Gy) of a TIA map by the dose stage's library function."""

    def __init__(self, sample):
        from kernels.decay import load_decay

        self.ct, _ = read_image(sample / "truth" / "ct_noisefree.nii.gz")
        self.labels, _ = read_image(sample / "truth" / "labels.nii.gz")
        self.decay = load_decay("Lu-177")
        self.names = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen", 100: "liver_metastasis",
                      101: "lymph_node", 102: "bone_lesion"}

    def __call__(self, tia):
        from kernels.select import svalues_for_voxel_size
        from pipeline.dose.stage import compute_dose

        import dataclasses

        from pipeline.dose.stage import DoseSettings

        k = svalues_for_voxel_size("Lu-177", tia.voxel_size_mm, "water")
        # organ statistics from the dose grid resampled to the CT grid (the committed dose stage's way);
        # the dose stage is being extended concurrently, so its newer CT-grid option is set aside here
        fields = {f.name for f in dataclasses.fields(DoseSettings)}
        settings = DoseSettings(organ_grid="dose") if "organ_grid" in fields else DoseSettings()
        out = compute_dose(tia, self.ct, self.labels, self.names, electron_energy_mev=self.decay.electron_energy_mev,
                           photon_energy_mev=self.decay.photon_energy_mev, injected_activity_mbq=7400.0,
                           svalues_mgy_per_mbq_s=k.total_mgy_per_mbq_s, kernel_density_g_per_ml=k.density_g_per_ml,
                           settings=settings)
        return {o.name: o.mean_gy for o in out.organs}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from pipeline.grid import resample_to

    root = tmp_path_factory.mktemp("pvc_voxel_standard")
    out = {}
    dose_ref = None
    for noisy in (False, True):
        sample = _generate(root / ("noisy" if noisy else "noisefree"), noise=noisy)
        truth, spects, times = _registered(sample, noisy)
        assert truth["imaging"]["spect"]["psf_fwhm_mm"] == PSF_MM
        labels, _ = read_image(sample / "truth" / "labels.nii.gz")
        if dose_ref is None:
            dose = _Dose(sample)
            tia_true, _ = read_image(sample / "truth" / "tia.nii.gz")
            tia_true = resample_to(tia_true, spects[0], "linear", antialias=True)
            dose_ref = dose(tia_true.with_array(tia_true.array, unit="MBq*h/mL"))
        cases = [("none", PSF_MM), ("rbv", PSF_MM)]
        if not noisy:
            cases += [("rbv", 0.8 * PSF_MM), ("rbv", 1.2 * PSF_MM), ("iy", PSF_MM)]
        for pvc, fwhm in cases:
            res = _kinetics(truth, spects, times, labels, pvc, fwhm)
            by_name = {v: k for k, v in res.label_names.items()}
            tia_err = {n: res.fits[by_name[n]].tia_mbq_h / truth["organs"][n]["tia_mbq_h"] - 1
                       for n in ORGANS + LESIONS + (MARROW,)}
            d = dose(res.tia)
            dose_err = {n: d[n] / dose_ref[n] - 1 for n in ORGANS + LESIONS}
            key = ("noisy" if noisy else "noise-free", pvc, round(fwhm / PSF_MM, 2))
            out[key] = {"tia": tia_err, "dose": dose_err, "res": res, "spects": spects}
            print(key, " ".join(f"{n}: TIA {100 * tia_err[n]:+.1f} % dose {100 * dose_err[n]:+.1f} %"
                                for n in ORGANS + LESIONS), f"{MARROW}: TIA {100 * tia_err[MARROW]:+.1f} %")
    return out


@pytest.mark.parametrize("noise", ["noise-free", "noisy"])
def test_uncorrected_organs_are_low_against_the_unblurred_truth(runs, noise):
    # the known partial-volume loss (README: kidneys 14-15 %, spleen 8 % in dose): the reference is sensitive
    err = runs[(noise, "none", 1.0)]["dose"]
    for n in ("kidney_left", "kidney_right"):
        assert err[n] < -0.08, n


@pytest.mark.parametrize("noise", ["noise-free", "noisy"])
def test_rbv_organ_tia_and_dose_within_5_percent_of_the_unblurred_truth(runs, noise):
    r = runs[(noise, "rbv", 1.0)]
    for n in ORGANS:
        # 5 %: the criterion for kidneys, liver and spleen
        assert abs(r["tia"][n]) < 0.05, (n, r["tia"][n])
        assert abs(r["dose"][n]) < 0.05, (n, r["dose"][n])


@pytest.mark.parametrize("noise", ["noise-free", "noisy"])
def test_rbv_marrow_voi_tia_within_5_percent(runs, noise):
    # the EANM marrow dose is computed from this organ-level TIA (measured -0.1 / +1.6 %; -12 / -15 %
    # uncorrected; +18 % before the vertebra rim next to the VOI became a region of its own)
    assert abs(runs[(noise, "rbv", 1.0)]["tia"][MARROW]) < 0.05


def test_iterative_yang_agrees_with_rbv_noise_free(runs):
    iy, rbv = runs[("noise-free", "iy", 1.0)], runs[("noise-free", "rbv", 1.0)]
    for n in ORGANS + LESIONS:
        # measured within 0.4 % of RBV (both within 5 % of the truth); iy is 4x slower (benchmark_pvc)
        assert abs(iy["tia"][n]) < 0.05 and abs(iy["dose"][n] - rbv["dose"][n]) < 0.01, n


@pytest.mark.parametrize("noise", ["noise-free", "noisy"])
def test_rbv_lesion_dose_within_15_percent_of_the_unblurred_truth(runs, noise):
    r = runs[(noise, "rbv", 1.0)]
    for n in LESIONS:
        # 15 %: the criterion for lesions
        assert abs(r["tia"][n]) < 0.15, (n, r["tia"][n])
        assert abs(r["dose"][n]) < 0.15, (n, r["dose"][n])


@pytest.mark.parametrize("noise", ["noise-free", "noisy"])
def test_fov_activity_conserved_and_no_negative_voxels_introduced(runs, noise):
    r = runs[(noise, "rbv", 1.0)]
    vp = r["res"].voxel_pvc
    for spect, x, info in zip(r["spects"], vp.corrected, vp.info):
        y = np.asarray(spect.array, np.float64)
        # 1 % (issue): the rescaling makes it exact to float32 round-off
        assert float(x.sum(dtype=np.float64)) == pytest.approx(float(y.sum()), rel=1e-4)
        # before the rescaling the correction itself moved the total by less than 2 %
        assert abs(info["raw_total_ratio"] - 1) < 0.02
        assert np.count_nonzero(x < 0) <= np.count_nonzero(y < 0)
        assert not np.any((x < 0) & (y >= 0))


def test_psf_20_percent_off_moves_the_kidney_dose_in_the_expected_direction(runs):
    narrow = runs[("noise-free", "rbv", 0.8)]["dose"]
    right = runs[("noise-free", "rbv", 1.0)]["dose"]
    wide = runs[("noise-free", "rbv", 1.2)]["dose"]
    for n in ("kidney_left", "kidney_right", "spleen"):
        # a too-narrow PSF under-corrects, a too-wide one over-corrects
        assert narrow[n] < right[n] < wide[n], n
