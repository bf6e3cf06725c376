"""Reduced protocols (one or two scans) with an earlier cycle's kinetics: organ fits, stage, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.kinetics.models import evaluate, integrate
from pipeline.kinetics.reduced import PriorKinetics, prior_from_fits_json, reduced_fit
from pipeline.kinetics.stage import KineticsOptions, compute_kinetics

LP = math.log(2.0) / (6.647 * 24.0)  # Lu-177, 1/h
UW = {"A": 100.0, "lambda_washout_per_h": math.log(2.0) / 30.0, "lambda_uptake_per_h": 1.2, "lambda_phys_per_h": LP}
MONO = {"A0": 50.0, "lambda_bio_per_h": math.log(2.0) / 60.0, "lambda_phys_per_h": LP}


def _prior(**curves):
    return PriorKinetics("cycle1/fits.json", "Lu-177", {k: v for k, v in curves.items()})


def test_prior_cycle_is_exact_when_only_the_amplitude_changed():
    prior = _prior(kidney_left=("uptake_washout", UW))
    truth = 0.7 * integrate("uptake_washout", UW)
    for t in ([72.0], [24.0, 96.0]):
        y = 0.7 * evaluate("uptake_washout", UW, t)
        fit = reduced_fit(t, y, LP, "prior_cycle", "kidney_left", prior)
        assert fit.method == "prior_cycle"
        assert fit.tia_mbq_h == pytest.approx(truth, rel=1e-10)
        assert fit.single_time_point["scale_to_prior"] == pytest.approx(0.7)
        assert fit.single_time_point["prior_source"] == "cycle1/fits.json"
        assert fit.tia_sd_mbq_h == pytest.approx(truth * 0.10 / math.sqrt(len(t)))


def test_madsen_uses_the_earlier_cycles_terminal_effective_rate():
    prior = _prior(liver=("mono", MONO))
    k = MONO["lambda_bio_per_h"] + LP
    y = 30.0 * math.exp(-k * 48.0)
    fit = reduced_fit([48.0], [y], LP, "madsen", "liver", prior)
    assert fit.method == "madsen"
    assert fit.tia_mbq_h == pytest.approx(30.0 / k, rel=1e-10)  # exact for a mono-exponential
    uw = reduced_fit([48.0], [1.0], LP, "madsen", "k", _prior(k=("uptake_washout", UW)))
    assert uw.single_time_point["prior_terminal_effective_half_life_h"] == pytest.approx(
        math.log(2.0) / (UW["lambda_washout_per_h"] + LP))


def test_haenscheid_needs_no_earlier_cycle_and_missing_organs_fall_back_to_it():
    fit = reduced_fit([72.0], [10.0], LP, "haenscheid", "spleen")
    assert fit.tia_mbq_h == pytest.approx(10.0 * 2 * 72.0 / math.log(2.0))
    fb = reduced_fit([72.0], [10.0], LP, "prior_cycle", "lesion_100", _prior(liver=("mono", MONO)))
    assert fb.method == "haenscheid"
    assert any("no fitted curve in the earlier cycle" in f for f in fb.fallbacks)


def test_errors_name_the_problem():
    with pytest.raises(InputError, match="needs the kinetics of an earlier cycle"):
        reduced_fit([72.0], [1.0], LP, "prior_cycle", "liver", None)
    with pytest.raises(InputError, match="not a reduced protocol"):
        reduced_fit([1.0, 4.0, 24.0], [1.0, 1.0, 1.0], LP, "haenscheid", "liver")
    with pytest.raises(InputError, match="another radionuclide"):
        reduced_fit([72.0], [1.0], math.log(2.0) / 64.1, "prior_cycle", "liver", _prior(liver=("mono", MONO)))
    with pytest.raises(InputError, match="no organ fits"):
        prior_from_fits_json({"organs": {}}, "x.json")


def test_prior_from_fits_json_keeps_only_fitted_models():
    fits = {"radionuclide": "Lu-177", "organs": {
        "liver": {"method": "mono", "chosen_model": "mono", "chosen_params": MONO},
        "spleen": {"method": "hanscheid", "chosen_model": None, "chosen_params": None}}}
    prior = prior_from_fits_json(fits, "f.json")
    assert set(prior.curves) == {"liver"}


def _phantom():
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    lab = np.zeros((12, 12, 12), np.int16)
    lab[3:7, 3:7, 3:7] = 1
    lab[7:10, 3:8, 4:8] = 3
    return Image(lab, aff, "label"), aff, lab


def test_stage_single_scan_with_prior_cycle_gives_organ_and_voxel_tia():
    labels, aff, lab = _phantom()
    t = 72.0
    kid = 0.6 * evaluate("uptake_washout", UW, t)
    liv = 1.3 * evaluate("mono", MONO, t)
    conc = np.zeros(lab.shape)
    vox_ml = 0.064
    conc[lab == 1] = kid / (lab == 1).sum() / vox_ml * 1e6
    conc[lab == 3] = liv / (lab == 3).sum() / vox_ml * 1e6
    spect = Image(conc.astype(np.float32), aff, "Bq/mL")
    prior = _prior(kidney_left=("uptake_washout", UW), liver=("mono", MONO))
    res = compute_kinetics([spect], [t], labels, LP, label_names={1: "kidney_left", 3: "liver"},
                           options=KineticsOptions(reduced="prior_cycle", prior=prior))
    assert res.fits[1].tia_mbq_h == pytest.approx(0.6 * integrate("uptake_washout", UW), rel=1e-4)
    assert res.fits[3].tia_mbq_h == pytest.approx(1.3 * integrate("mono", MONO), rel=1e-4)
    assert res.voxel_method == "organ-shape"
    assert res.voxel_check[1]["ratio"] == pytest.approx(1.0, rel=1e-3)
    assert any("reduced protocol" in w for w in res.warnings)
    with pytest.raises(InputError, match="earlier cycle"):
        compute_kinetics([spect], [t], labels, LP, options=KineticsOptions(reduced="madsen"))


def test_cli_needs_prior_fits_for_prior_cycle(tmp_path, capsys):
    from pipeline.kinetics.cli import main

    reg = tmp_path / "register"
    reg.mkdir()
    lab = tmp_path / "labels.nii.gz"
    lab.write_bytes(b"")
    code = main(["--register-dir", str(reg), "--labels", str(lab), "--out", str(tmp_path / "k"),
                 "--reduced", "prior_cycle"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("spectdose kinetics: error:")


def test_cli_states_the_reduced_protocol_in_fits_json(tmp_path):
    from pipeline.imageio import make_sidecar, write_image
    from pipeline.kinetics.cli import main

    labels, aff, lab = _phantom()
    conc = np.where(lab > 0, 2e5, 0.0).astype(np.float32)
    reg = tmp_path / "register"
    write_image(reg / "t72h" / "spect.nii.gz", Image(conc, aff, "Bq/mL"),
                make_sidecar("activity_concentration", "Bq/mL", time_point="t72h", time_h=72.0, radionuclide="Lu-177",
                             injected_activity_mbq=6000.0, patient_id="P1"))
    write_image(tmp_path / "labels.nii.gz", labels, {"labels": {"1": "kidney_left", "3": "liver"}})
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"radionuclide": "Lu-177", "organs": {
        "kidney_left": {"method": "uptake_washout", "chosen_model": "uptake_washout", "chosen_params": UW},
        "liver": {"method": "mono", "chosen_model": "mono", "chosen_params": MONO}}}))
    assert main(["--register-dir", str(reg), "--labels", str(tmp_path / "labels.nii.gz"), "--out",
                 str(tmp_path / "k"), "--reduced", "prior_cycle", "--prior-fits", str(prior)]) == 0
    fits = json.loads((tmp_path / "k" / "fits.json").read_text())
    red = fits["options"]["reduced_protocol"]
    assert red["applied"] and red["method"] == "prior_cycle" and red["prior_fits"] == str(prior)
    assert "earlier cycle" in red["statement"]
    assert fits["organs"]["kidney_left"]["method"] == "prior_cycle"
