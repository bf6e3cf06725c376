"""`spectdose uncertainty` on a reduced-protocol cycle of a course (one scan at 72 h and the
earlier cycle's fits): finite SDs with the earlier curve's uncertainty in the budget, analytic and
Monte Carlo in agreement, Hänscheid's method uncertainty, the earlier fits found or refused."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from pipeline.dose.planning import OrganLimit, plan_activity
from pipeline.kinetics.fitting import ErrorModel, fit_tac
from pipeline.kinetics.reduced import prior_from_fits_json, reduced_fit
from pipeline.uncertainty.cli import main
from pipeline.uncertainty.reduced import REDUCED_SOURCES
from pipeline.uncertainty.sources import SOURCE_NAMES

LP = math.log(2.0) / 159.528
T_FULL = np.array([1.0, 4.0, 24.0, 48.0, 168.0])
NAMES = {1: "kidney_left", 3: "liver"}
CURVES = {
    1: lambda t: 130.0 * (np.exp(-(0.0139 + LP) * t) - np.exp(-(1.2 + LP) * t)),
    3: lambda t: 400.0 * np.exp(-(0.0116 + LP) * t),
}


def _write_prior(course):
    rng = np.random.default_rng(1)
    organs = {}
    for lab, name in NAMES.items():
        fit = fit_tac(T_FULL, CURVES[lab](T_FULL) * (1 + 0.03 * rng.standard_normal(T_FULL.size)), LP)
        organs[name] = {**fit.to_dict(), "label": lab}
    fits = {"radionuclide": "Lu-177", "lambda_phys_per_h": LP, "organs": organs,
            "time_points": [{"id": f"t{int(t)}h", "time_h": float(t)} for t in T_FULL],
            "options": {"error_model": ErrorModel().describe()}}
    path = course / "c1" / "kinetics" / "fits.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(fits))
    return path, fits


def _write_cycle(course, cycle, method, prior_fits, named_prior, t_scan=72.0):
    """A reduced cycle's results folder (kinetics, segment, dose) with TIA by ``method`` from one
    scan at ``t_scan`` h."""
    root = course / cycle
    prior = prior_from_fits_json(prior_fits, named_prior) if method != "haenscheid" else None
    organs = {}
    t = np.array([t_scan])
    for lab, name in NAMES.items():
        y = 0.8 * CURVES[lab](t)
        organs[name] = {**reduced_fit(t, y, LP, method, name, prior, ErrorModel()).to_dict(), "label": lab}
    fits = {"radionuclide": "Lu-177", "lambda_phys_per_h": LP, "injected_activity_mbq": 6000.0,
            "time_points": [{"id": f"t{t_scan:g}h", "time_h": t_scan}], "organs": organs,
            "options": {"error_model": ErrorModel().describe(),
                        "reduced_protocol": {"method": method, "applied": True,
                                             "prior_fits": None if prior is None else named_prior}}}
    shape, h = (24, 24, 20), 4.0
    affine = np.diag([h, h, h, 1.0])
    g = np.indices(shape).astype(float) * h
    labels = np.zeros(shape, np.int16)
    labels[(g[0] - 60) ** 2 + (g[1] - 48) ** 2 + (g[2] - 40) ** 2 <= 14.0 ** 2] = 1
    labels[(g[0] - 30) ** 2 + (g[1] - 48) ** 2 + (g[2] - 40) ** 2 <= 18.0 ** 2] = 3
    dose = np.zeros(shape)
    for lab, name in NAMES.items():
        m = labels == lab
        dose[m] = organs[name]["tia_mbq_h"] / 1000.0 / m.sum() * 50.0
    dose = ndimage.gaussian_filter(dose, 1.0)
    for sub in ("dose", "segment", "kinetics"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "kinetics" / "fits.json").write_text(json.dumps(fits))
    nib.save(nib.Nifti1Image(dose.astype(np.float32), affine), str(root / "dose" / "dose_ct.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), str(root / "segment" / "labels.nii.gz"))
    rows = [{"label": lab, "name": name, "mean_gy": float(dose[labels == lab].mean()),
             "mass_g": float(np.sum(labels == lab)) * h ** 3 / 1000 * 1.05} for lab, name in NAMES.items()]
    with open(root / "dose" / "organ_doses.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plan = plan_activity([OrganLimit("kidneys", rows[0]["mean_gy"] / 6.0, 23.0)])
    (root / "dose" / "planning.json").write_text(json.dumps(plan))
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """c1 fitted; c2 (prior_cycle), c3 (madsen) and c4, c5 (haenscheid at 72 h and 168 h) reduced.
    c2 names its earlier fits by a path that moved (the results folder was copied): the sibling
    cycle c1 is used."""
    base = tmp_path_factory.mktemp("course") / "C01"
    prior_path, prior = _write_prior(base)
    moved = "/elsewhere/results/C01/c1/kinetics/fits.json"
    _write_cycle(base, "c2", "prior_cycle", prior, moved)
    _write_cycle(base, "c3", "madsen", prior, str(prior_path))
    _write_cycle(base, "c4", "haenscheid", prior, None)
    _write_cycle(base, "c5", "haenscheid", prior, None, t_scan=168.0)
    return base


def _run(cycle_dir, *extra):
    assert main(["--patient-dir", str(cycle_dir), "--mc-draws", "2000", *extra]) == 0
    out = cycle_dir / "uncertainty"
    return json.loads((out / "uncertainty.json").read_text()), list(csv.DictReader(open(out / "budget.csv")))


@pytest.mark.parametrize("cycle", ["c2", "c3"])
def test_reduced_cycle_with_earlier_kinetics_has_a_finite_sd_and_the_earlier_fit_in_its_budget(course, cycle):
    result, budget = _run(course / cycle)
    assert result["reduced_protocol"]["prior_fits"] == str(course / "c1" / "kinetics" / "fits.json")
    assert "prior_kinetics" in result["reduced_protocol"]["tia_sources"]
    for name in NAMES.values():
        s = result["organs"][name]
        assert math.isfinite(s["analytic_sd_gy"]) and 0.05 < s["analytic_relative_sd"] < 0.5
        assert s["budget"]["prior_kinetics"]["sd_gy"] > 0
        assert s["budget"]["reduced_method"]["sd_gy"] == 0.0
        assert s["reduced_protocol"]["prior_model"] in ("uptake_washout", "mono")
        assert abs(s["mc_to_analytic_sd"] - 1) <= 0.10, (name, s["mc_to_analytic_sd"])
    kl = [r for r in budget if r["structure"] == "kidney_left" and r["quantity"] == "absorbed_dose"]
    assert [r["source"] for r in kl] == list(SOURCE_NAMES + REDUCED_SOURCES) + ["total_analytic",
                                                                                 "total_monte_carlo_robust"]
    assert sum(float(r["variance_share"]) for r in kl[:-2]) == pytest.approx(1.0, abs=1e-5)
    assert math.isfinite(result["kidneys_mass_weighted"]["analytic_sd_gy"])
    assert result["qc_summary"]["warn"] == 0


def test_report_shows_the_reduced_cycle_sources_only_for_a_reduced_cycle(course):
    from pipeline.report.uncertainty import uncertainty_section

    _run(course / "c2")
    html = uncertainty_section(course / "c2")
    assert "s kinetics (Gy)" in html and "single-time-point method (Gy)" in html  # "earlier cycle's kinetics"
    assert "Reduced-protocol cycle" in html and "prior_cycle" in html


def test_madsen_earlier_rate_term_is_the_closed_form(course):
    result, _ = _run(course / "c3")
    prior = json.loads((course / "c1" / "kinetics" / "fits.json").read_text())["organs"]["liver"]
    assert prior["chosen_model"] == "mono"
    cand = next(c for c in prior["candidates"] if c["model"] == "mono")
    k = cand["params"]["lambda_bio_per_h"] + LP
    sd_k = cand["param_sd"]["lambda_bio_per_h"]
    s = result["organs"]["liver"]  # relative SD of A e^{kt}/k from k: |t - 1/k| SD_k
    assert s["budget"]["prior_kinetics"]["sd_gy"] / s["central_gy"] == pytest.approx(abs(72.0 - 1 / k) * sd_k, rel=1e-6)


def test_haenscheid_cycle_has_the_method_uncertainty_and_checks_its_range(course):
    result, _ = _run(course / "c4")
    s = result["organs"]["kidney_left"]
    assert s["budget"]["reduced_method"]["sd_gy"] / s["central_gy"] == pytest.approx(0.10 / math.sqrt(3))
    assert s["budget"]["prior_kinetics"]["sd_gy"] == 0.0
    assert "Hanscheid et al. J Nucl Med 2018" in s["reduced_protocol"]["method_uncertainty_source"]
    assert s["reduced_protocol"]["t_over_teff"] is None and "not checked" in s["reduced_protocol"]["teff_source"]
    assert "reduced_method" in result["reduced_protocol"]["tia_sources"]
    assert not [c for c in result["qc"] if c["name"] == "haenscheid_t_over_teff"]
    # with the earlier cycle's fits the range is checked: T_eff 38 h (kidney), 43 h (liver): inside at
    # 72 h, outside at 168 h (warn, and the larger mono-exponential error 1 - x 2^(1-x) as method SD)
    prior = str(course / "c1" / "kinetics" / "fits.json")
    for cycle, inside in (("c4", True), ("c5", False)):
        result, _ = _run(course / cycle, "--prior-fits", prior)
        checks = {c["subject"]: c for c in result["qc"] if c["name"] == "haenscheid_t_over_teff"}
        assert set(checks) == set(NAMES.values())
        for name in NAMES.values():
            red = result["organs"][name]["reduced_protocol"]
            x = red["t_over_teff"]
            assert (0.77 <= x <= 2.44) is inside
            assert checks[name]["status"] == ("pass" if inside else "warn")
            assert red["method_relative_sd"] == pytest.approx(max(0.10, 1 - x * 2 ** (1 - x)) / math.sqrt(3))


def test_missing_or_changed_earlier_fits_are_refused_naming_the_file(course, tmp_path, capsys):
    import shutil

    cyc = tmp_path / "C02" / "c2"
    shutil.copytree(course / "c2", cyc)
    assert main(["--patient-dir", str(cyc), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "fits.json" in err and "--prior-fits" in err
    # an earlier fits.json that does not reproduce this cycle's TIA (changed since)
    changed = json.loads((course / "c1" / "kinetics" / "fits.json").read_text())
    changed["organs"]["liver"]["chosen_params"]["lambda_bio_per_h"] *= 1.1
    bad = tmp_path / "changed_fits.json"
    bad.write_text(json.dumps(changed))
    assert main(["--patient-dir", str(cyc), "--out", str(tmp_path / "o"), "--prior-fits", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "changed_fits.json" in err and "liver" in err
    assert not (tmp_path / "o").exists()
