"""`spectdose uncertainty` on a small synthetic results folder: outputs, atomicity, agreement of
the two propagations, planning at the central estimate equal to the dose stage's, errors."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from pipeline.dose.planning import OrganLimit, plan_activity
from pipeline.dose.radiobiology import LQParameters, lq_g_factor_per_gy
from pipeline.kinetics.fitting import ErrorModel, fit_tac
from pipeline.kinetics.models import exponential_terms
from pipeline.uncertainty.cli import main
from pipeline.uncertainty.stage import BUDGET_COLUMNS

LP = math.log(2.0) / 159.528
T = np.array([1.0, 4.0, 24.0, 48.0, 168.0])
NAMES = {1: "kidney_left", 2: "kidney_right", 3: "liver", 5: "marrow_L2L4"}
# true organ curves (MBq): uptake-washout kidneys, mono-exponential liver, bi-exponential-like marrow VOI
CURVES = {
    1: lambda t: 130.0 * (np.exp(-(0.0139 + LP) * t) - np.exp(-(1.2 + LP) * t)),
    2: lambda t: 120.0 * (np.exp(-(0.0154 + LP) * t) - np.exp(-(1.2 + LP) * t)),
    3: lambda t: 400.0 * np.exp(-(0.0116 + LP) * t),
    5: lambda t: 0.9 * np.exp(-(0.0069 + LP) * t) + 4.0 * np.exp(-(0.5 + LP) * t),
}
INJECTED_MBQ = 7400.0


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    root = tmp_path_factory.mktemp("unc") / "P1"
    shape, h = (48, 48, 36), 2.0
    affine = np.diag([h, h, h, 1.0])
    g = np.indices(shape).astype(float) * h
    labels = np.zeros(shape, np.int16)
    labels[(g[0] - 60) ** 2 + (g[1] - 48) ** 2 + (g[2] - 36) ** 2 <= 14.0**2] = 1
    labels[(g[0] - 30) ** 2 + (g[1] - 48) ** 2 + (g[2] - 36) ** 2 <= 13.0**2] = 2
    labels[((g[0] - 45) / 25) ** 2 + ((g[1] - 65) / 14) ** 2 + ((g[2] - 45) / 16) ** 2 <= 1] = 3
    labels[40:46, 20:26, 4:14] = 5
    rng = np.random.default_rng(0)
    tia = {}
    fits = {}
    for lab, name in NAMES.items():
        y = CURVES[lab](T) * (1 + 0.02 * rng.standard_normal(T.size))
        fit = fit_tac(T, y, LP)
        d = fit.to_dict()
        d.update({"label": lab, "volume_ml": float(np.sum(labels == lab)) * h**3 / 1000})
        fits[name] = d
        tia[lab] = fit.tia_mbq_h
    # dose: each organ's TIA spread over its mask and blurred (a dose-like smooth map), Gy
    dose = np.zeros(shape)
    for lab in NAMES:
        m = labels == lab
        dose[m] += 0.8 * tia[lab] / 1000.0 / m.sum() * 100.0
    dose = ndimage.gaussian_filter(dose, 1.5)
    for sub in ("dose", "segment", "kinetics"):
        (root / sub).mkdir(parents=True)
    nib.save(nib.Nifti1Image(dose.astype(np.float32), affine), str(root / "dose" / "dose_ct.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), str(root / "segment" / "labels.nii.gz"))
    (root / "kinetics" / "fits.json").write_text(json.dumps({
        "injected_activity_mbq": INJECTED_MBQ, "lambda_phys_per_h": LP,
        "time_points": [{"id": f"t{int(t)}h", "time_h": float(t)} for t in T],
        "options": {"error_model": ErrorModel().describe()}, "organs": fits}))
    rows, mean = [], {}
    for lab, name in NAMES.items():
        m = labels == lab
        mean[name] = float(dose[m].mean())
        rows.append({"label": lab, "name": name, "mean_gy": mean[name], "mass_g": float(m.sum()) * h**3 / 1000 * 1.05})
    with open(root / "dose" / "organ_doses.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    mu = math.log(2) / 2.8
    gk = {}
    with open(root / "dose" / "bed.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["label", "name", "g_factor", "alpha_beta_gy", "repair_half_time_h"])
        w.writeheader()
        for lab in (1, 2):
            c, r = exponential_terms(fits[NAMES[lab]]["method"], fits[NAMES[lab]]["chosen_params"], LP)
            gk[lab] = lq_g_factor_per_gy(c, r, mu)
            w.writerow({"label": lab, "name": NAMES[lab], "g_factor": gk[lab], "alpha_beta_gy": 2.6,
                        "repair_half_time_h": 2.8})
    marrow_gy = 0.9 * mean["marrow_L2L4"]
    (root / "dose" / "marrow.json").write_text(json.dumps({"absorbed_dose_gy": marrow_gy, "red_marrow_mass_g": 1170}))
    masses = {r["name"]: r["mass_g"] for r in rows}
    kid = (mean["kidney_left"] * masses["kidney_left"] + mean["kidney_right"] * masses["kidney_right"]) / (
        masses["kidney_left"] + masses["kidney_right"])
    plan = plan_activity([OrganLimit("kidneys", kid / 7.4, 23.0, 40.0, (gk[1] + gk[2]) / 2, LQParameters(2.6, 2.8)),
                          OrganLimit("red_marrow", marrow_gy / 7.4, 2.0)])
    (root / "dose" / "planning.json").write_text(json.dumps(plan))
    return root


@pytest.fixture(scope="module")
def outputs(patient):
    assert main(["--patient-dir", str(patient), "--mc-draws", "2000"]) == 0
    out = patient / "uncertainty"
    return json.loads((out / "uncertainty.json").read_text()), list(csv.DictReader(open(out / "budget.csv")))


def test_writes_both_files_and_nothing_else(patient, outputs):
    assert sorted(p.name for p in (patient / "uncertainty").iterdir()) == ["budget.csv", "uncertainty.json"]
    assert not [p for p in patient.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_every_organ_has_both_propagations_in_agreement(outputs):
    # 2 % noise: every fit selects its generating model. (With 4 % noise the right kidney's AICc
    # picks the mono-exponential, the misfit inflates the covariance to ~20 % per point and the
    # Monte Carlo SD is 11 % above the first-order one: the QC check then warns.)
    result, _ = outputs
    assert {n: s["method"] for n, s in result["organs"].items()} == {
        "kidney_left": "uptake_washout", "kidney_right": "uptake_washout", "liver": "mono", "marrow_L2L4": "bi"}
    assert set(result["organs"]) == set(NAMES.values())
    for name, s in list(result["organs"].items()) + [("red_marrow", result["red_marrow_eanm"])]:
        assert s["analytic_sd_gy"] > 0
        assert abs(s["mc_to_analytic_sd"] - 1) <= 0.10, (name, s["mc_to_analytic_sd"])
        lo, hi = s["mc_interval95_gy"]
        assert lo < s["central_gy"] < hi
    assert result["qc_summary"]
    # the EANM marrow dose has no S-value or density term
    assert result["red_marrow_eanm"]["budget"]["s_value"]["sd_gy"] == 0.0


def test_central_planned_activity_equals_the_dose_stage(patient, outputs):
    result, _ = outputs
    plan = json.loads((patient / "dose" / "planning.json").read_text())
    assert result["planning"]["central_activity_gbq"] == pytest.approx(plan["activity_gbq"], rel=1e-12)
    assert result["planning"]["mc_joint_activity_gbq"] < plan["activity_gbq"]
    assert result["planning"]["analytic_activity_gbq"] < plan["activity_gbq"]


def test_budget_csv_has_every_source_and_the_totals(outputs):
    _, budget = outputs
    assert tuple(budget[0]) == BUDGET_COLUMNS
    kl = [r for r in budget if r["structure"] == "kidney_left" and r["quantity"] == "absorbed_dose"]
    shares = [float(r["variance_share"]) for r in kl if r["source"] not in ("total_analytic", "total_monte_carlo_robust")]
    assert len(shares) == 8 and sum(shares) == pytest.approx(1.0, abs=1e-5)
    assert {r["structure"] for r in budget if r["quantity"] == "bed"} == {"kidney_left", "kidney_right", "kidneys"}


def test_bad_setting_is_one_line_and_exit_2(patient, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("uncertainty:\n  confidence: 1.5\n")
    assert main(["--patient-dir", str(patient), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "confidence" in err[0]
    assert not (tmp_path / "o").exists()


def test_subcommand_is_registered():
    from pipeline.cli import available_subcommands

    assert available_subcommands()["uncertainty"][0] == "pipeline.uncertainty.cli"


def test_report_shows_the_budget_only_when_the_stage_ran(patient, outputs, tmp_path):
    from pipeline.report.build import report_sections
    from pipeline.report.uncertainty import uncertainty_section

    anchors = [a for a, *_ in report_sections(patient)]
    assert anchors.index("uncertainty") == anchors.index("planning") + 1
    html = uncertainty_section(patient)
    assert "Uncertainty budget" in html and "Left kidney" in html and "95 % confidence" in html
    assert "earlier cycle" not in html and "Reduced-protocol" not in html  # a fitted study: not its columns
    assert uncertainty_section(tmp_path) is None
