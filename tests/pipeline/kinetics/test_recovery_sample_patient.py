"""Partial-volume correction on the sample patient of ``sample_data.generate`` against its analytic truth.

Input: the noise-free truth images ``truth/spect_psf_<tp>.nii.gz`` (the true activity in the
reference pose binned to the 4.8 mm SPECT grid and blurred by the camera's 11 mm FWHM Gaussian PSF),
used directly as the registered SPECT, and ``truth/labels.nii.gz``. Reference: ``truth.json``
``organs[name]`` (activity per time point and TIA, integrated analytically over the true tissues
of each label on the CT grid).

Measured (small preset, Lu-177, seed 0), error of the organ TIA against the truth:

============  =======  =======  =======  ============================
organ          none     rc       gtm      gtm, kidney cortex/medulla
============  =======  =======  =======  ============================
kidney_left   -23.8 %  -3.0 %   -6.8 %   -0.4 %
kidney_right  -22.8 %  -1.3 %   -6.5 %   -0.1 %
liver         -0.6 %   +13.3 %  +1.4 %   +0.7 %
spleen        -11.9 %  +15.0 %  +5.9 %   +3.2 %
============  =======  =======  =======  ============================

The GTM assumes a uniform concentration per region. The phantom's kidneys are a hot cortex
around a medulla at a third of its concentration (sample_data/anatomy.py): the activity sits at
the surface and spills out more than from a uniform kidney, so the organ-label GTM leaves -7 %.
With cortex and medulla as separate regions (from ``truth/tissues.nii.gz``) the GTM's model holds
and the kidneys come within 0.5 %. "rc" comes close for the kidneys only by cancellation (it
over-corrects through the ignored spill-in and under-corrects the cortex effect) and over-corrects
liver and spleen by 13-15 % (spill-in from each other, the kidneys and the body background).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.imageio import read_image
from pipeline.kinetics.stage import KineticsOptions, compute_kinetics

pytestmark = pytest.mark.slow

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    sample_data = pytest.importorskip("sample_data")
    try:
        generate = sample_data.generate
    except AttributeError:
        pytest.skip("sample_data.generate is not available")
    root = tmp_path_factory.mktemp("pvc_sample")
    generate(root / "sample", preset="small", nuclide="Lu-177", seed=0, noise=False, fmt="nifti")
    d = root / "sample" / "truth"
    truth = json.loads((d / "truth.json").read_text())
    tps = truth["time_points"]
    spects = [read_image(d / f"spect_psf_{tp['id']}.nii.gz")[0] for tp in tps]
    times = np.array([tp["time_h"] for tp in tps])
    labels = read_image(d / "labels.nii.gz")[0]
    tissues = read_image(d / "tissues.nii.gz")[0]
    assert truth["imaging"]["spect"]["psf_fwhm_mm"] == 11.0  # the camera PSF the correction is given
    return truth, spects, times, labels, tissues


def _run(sample, pvc, labels=None, names=None):
    truth, spects, times, lab, _ = sample
    names = names or {int(k): v for k, v in truth["labels"].items()}
    return compute_kinetics(spects, times, labels or lab, truth["decay_constant_per_h"], label_names=names,
                            options=KineticsOptions(pvc=pvc, psf_fwhm_mm=None if pvc == "none" else 11.0))


@pytest.fixture(scope="module")
def results(sample):
    return {m: _run(sample, m) for m in ("none", "rc", "gtm")}


def _errors(truth, res):
    by_name = {v: k for k, v in res.label_names.items()}
    return {n: res.fits[by_name[n]].tia_mbq_h / truth["organs"][n]["tia_mbq_h"] - 1 for n in ORGANS}


def test_uncorrected_kidney_tia_is_about_a_quarter_low(sample, results):
    err = _errors(sample[0], results["none"])
    # the known partial-volume loss (measured -23.8 / -22.8 %), spleen -11.9 %, liver -0.6 %
    for n in ("kidney_left", "kidney_right"):
        assert -0.30 < err[n] < -0.18, n
    assert abs(err["liver"]) < 0.03


def test_gtm_brings_every_organ_closer_to_the_truth(sample, results):
    err_none = _errors(sample[0], results["none"])
    err_gtm = _errors(sample[0], results["gtm"])
    for n in ("kidney_left", "kidney_right", "spleen"):
        assert abs(err_gtm[n]) < 0.5 * abs(err_none[n]), n
    # kidneys: the cortex/medulla structure the organ-level model ignores (measured -6.8/-6.5 %): 10 %
    for n in ("kidney_left", "kidney_right"):
        assert abs(err_gtm[n]) < 0.10, n
    # liver (measured +1.4 %): 3 %; spleen (+5.9 %; of which about +3 % is the 5-point fit, see
    # test_kinetics_sample_patient): 8 %
    assert abs(err_gtm["liver"]) < 0.03
    assert abs(err_gtm["spleen"]) < 0.08


def test_rc_over_corrects_organs_with_hot_neighbours(sample, results):
    err_rc = _errors(sample[0], results["rc"])
    # spill-in ignored: liver and spleen measured +13 / +15 %
    assert err_rc["liver"] > 0.08 and err_rc["spleen"] > 0.08


def test_gtm_with_kidney_cortex_and_medulla_as_regions_recovers_the_kidneys(sample):
    truth, _, _, labels, tissues = sample
    lab = np.asarray(labels.array).astype(np.int32)
    tis = np.asarray(tissues.array)
    ids = {v["name"]: int(k) for k, v in truth["tissues"].items()}
    lab[tis == ids["kidney_left_medulla"]] = 11
    lab[tis == ids["kidney_right_medulla"]] = 13
    names = {int(k): v for k, v in truth["labels"].items()} | {11: "kidney_left_medulla", 13: "kidney_right_medulla"}
    res = _run(sample, "gtm", labels.with_array(lab), names)
    for n, lid, med in (("kidney_left", 1, 11), ("kidney_right", 2, 13)):
        tia = res.fits[lid].tia_mbq_h + res.fits[med].tia_mbq_h
        # uniform regions as the GTM assumes (measured -0.4 / -0.1 %): 2 % (fit of 5 noise-free points)
        assert tia == pytest.approx(truth["organs"][n]["tia_mbq_h"], rel=0.02), n
        # activity per time point (no fit involved; measured -1.6 % at 1 h, when the blood pool inside
        # the non-uniform body region is hottest, then within 0.9 %): 2.5 %
        act = res.activity_mbq[lid] + res.activity_mbq[med]
        ref = np.array([truth["organs"][n]["activity_mbq"][tp["id"]] for tp in truth["time_points"]])
        np.testing.assert_allclose(act, ref, rtol=0.025, err_msg=n)
    for n, lid in (("liver", 3), ("spleen", 4)):
        # measured within 1.5 % (liver) and 1.1 % (spleen) at every time point: 2.5 %; the spleen's
        # +3.2 % TIA error is the 5-point fit of its bi-exponential (test_kinetics_sample_patient)
        ref = np.array([truth["organs"][n]["activity_mbq"][tp["id"]] for tp in truth["time_points"]])
        np.testing.assert_allclose(res.activity_mbq[lid], ref, rtol=0.025, err_msg=n)
