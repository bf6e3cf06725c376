"""Boundary-shift and misregistration sensitivities against closed forms; planning at confidence
against the dose stage's planning and against quantiles of a known distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.dose.planning import activity_for_bed_limit_gbq
from pipeline.dose.radiobiology import LQParameters
from pipeline.uncertainty.geometry import boundary_shift_relative_sd, registration_relative_sd
from pipeline.uncertainty.planning import allowed_activity_gbq, plan_with_confidence


def test_misregistration_of_a_uniform_box_loses_the_shifted_slab():
    # uniform dose in a 20 x 16 x 10 voxel box (1 x 1 x 2 mm voxels), nothing outside: shifting by h
    # along axis a loses the fraction h / L_a (linear interpolation of a step is exact for |h| < 1 voxel),
    # so the relative SD is h sqrt(sum_a 1 / L_a^2) with h = TRE / sqrt(3)
    dose = np.zeros((40, 40, 30))
    dose[10:30, 12:28, 10:20] = 5.0
    mask = dose > 0
    spacing = (1.0, 1.0, 2.0)
    tre = 0.9 * math.sqrt(3)  # 0.9 mm per axis: under one voxel on every axis
    lengths = np.array([20.0, 16.0, 20.0])  # mm
    expected = 0.9 * math.sqrt(np.sum(1.0 / lengths**2))
    assert registration_relative_sd(dose, mask, spacing, tre) == pytest.approx(expected, rel=1e-9)
    assert registration_relative_sd(dose, mask, spacing, 0.0) == 0.0


def test_boundary_shift_of_a_sphere_with_a_linear_radial_dose():
    # D(r) = 1 - r / (2 R) inside and out: mean over a ball of radius rho is 1 - 3 rho / (8 R);
    # a boundary shift delta changes it by -3 delta / (8 R) (first order), so the relative SD is
    # (3 delta / 8 R) / (1 - 3/8) for a shift SD delta, and the volume by 4 pi R^2 delta.
    # Measured: 1 mm voxels, 0.25-1 voxel shifts within 1.5 %: tolerance 3 %; 1 x 1 x 2 mm
    # voxels, 0.5 mm shift (a quarter of the long side) -7 %: tolerance 10 %
    R = 20.0
    for spacing, delta, tol in (((1.0, 1.0, 1.0), 0.5, 0.03), ((1.0, 1.0, 1.0), 0.25, 0.03),
                                ((1.0, 1.0, 2.0), 0.5, 0.10)):
        axes = [(np.arange(int(64 / h)) - (64 / h - 1) / 2.0) * h for h in spacing]
        r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
        dose = 1.0 - r / (2 * R)
        out = boundary_shift_relative_sd(dose, r <= R, spacing, delta)
        expected = (3 * delta / (8 * R)) / (1 - 3 / 8)
        assert out["relative_sd"] == pytest.approx(expected, rel=tol), spacing
        dv = (out["volume_ml"]["plus"] - out["volume_ml"]["minus"]) / 2 * 1000.0
        assert dv == pytest.approx(4 * math.pi * R**2 * delta, rel=tol), spacing


def test_allowed_activity_matches_the_dose_stage_formulas():
    lq = LQParameters(2.6, 2.8)
    d = np.array([0.3, 0.5, 0.8])
    a = allowed_activity_gbq(d, 40.0, "bed", 0.07, 2.6)
    ref = [activity_for_bed_limit_gbq(v, 40.0, 0.07, lq) for v in d]
    np.testing.assert_allclose(a, ref, rtol=1e-14)
    np.testing.assert_allclose(allowed_activity_gbq(d, 23.0, "absorbed_dose"), 23.0 / d, rtol=1e-15)


def _planning_json():
    return {"activity_gbq": None, "allowed_activity_gbq": [
        {"organ": "kidneys", "quantity": "absorbed_dose", "limit": 23, "activity_gbq": None},
        {"organ": "kidneys", "quantity": "bed", "limit": 40, "activity_gbq": None},
        {"organ": "red_marrow", "quantity": "absorbed_dose", "limit": 2, "activity_gbq": None}]}


def test_planning_at_confidence_against_known_quantiles():
    # kidney dose lognormal with 10 % log-SD, marrow fixed: the 95 % activity of the dose limit is
    # limit / (d exp(1.645 * 0.1)); the joint activity here equals the kidney's (marrow far away)
    rng = np.random.default_rng(5)
    inj = 7.4
    kid = 3.5 * np.exp(0.1 * rng.standard_normal(200000))
    marrow = np.full(kid.size, 0.05)
    plan = plan_with_confidence(_planning_json(), {"kidneys": 3.5, "red_marrow": 0.05},
                                {"kidneys": 0.1, "red_marrow": 0.0}, {"kidneys": kid, "red_marrow": marrow},
                                {"kidneys": {"central": 0.0, "draws": np.zeros(kid.size)}}, inj, 0.95,
                                {"kidneys": (2.6, 2.8)})
    d = 3.5 / inj
    assert plan["central_activity_gbq"] == pytest.approx(23.0 / d, rel=1e-12)
    row = next(r for r in plan["limits"] if r["organ"] == "kidneys" and r["quantity"] == "absorbed_dose")
    assert row["mc_activity_gbq"] == pytest.approx(23.0 / (d * math.exp(1.644854 * 0.1)), rel=0.003)
    assert row["analytic_activity_gbq"] == pytest.approx(23.0 / (d * (1 + 1.644854 * 0.1)), rel=1e-6)
    assert plan["mc_joint_activity_gbq"] <= plan["mc_per_limit_activity_gbq"] + 1e-12
    # at 50 % confidence the analytic planned activity is the central one
    p50 = plan_with_confidence(_planning_json(), {"kidneys": 3.5, "red_marrow": 0.05},
                               {"kidneys": 0.1, "red_marrow": 0.0}, {"kidneys": kid, "red_marrow": marrow},
                               {"kidneys": {"central": 0.0}}, inj, 0.5, {"kidneys": (2.6, 2.8)})
    assert p50["analytic_activity_gbq"] == pytest.approx(p50["central_activity_gbq"], rel=1e-12)
