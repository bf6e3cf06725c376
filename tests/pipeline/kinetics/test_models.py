"""Each kinetic model against closed-form integrals written out here and numerical quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from pipeline.kinetics import models

LP = math.log(2.0) / (6.647 * 24.0)  # Lu-177 physical decay constant, 1/h

CASES = {
    "mono": (1000.0, 0.02),
    "uptake_washout": (800.0, 0.01, 0.7),
    "bi": (600.0, 0.005, 400.0, 0.2),
    "tri_uptake": (500.0, 0.003, 300.0, 0.05, 0.9),
}


def closed_form_total(name, p, lp=LP):
    """Integral 0..inf, written out per model (independent of the package's term representation)."""
    if name == "mono":
        return p[0] / (p[1] + lp)
    if name == "uptake_washout":
        return p[0] / (p[1] + lp) - p[0] / (p[2] + lp)
    if name == "bi":
        return p[0] / (p[1] + lp) + p[2] / (p[3] + lp)
    return p[0] / (p[1] + lp) + p[2] / (p[3] + lp) - (p[0] + p[2]) / (p[4] + lp)


def direct_value(name, p, t, lp=LP):
    if name == "mono":
        return p[0] * math.exp(-(p[1] + lp) * t)
    if name == "uptake_washout":
        return p[0] * (math.exp(-(p[1] + lp) * t) - math.exp(-(p[2] + lp) * t))
    if name == "bi":
        return p[0] * math.exp(-(p[1] + lp) * t) + p[2] * math.exp(-(p[3] + lp) * t)
    return (p[0] * math.exp(-(p[1] + lp) * t) + p[2] * math.exp(-(p[3] + lp) * t)
            - (p[0] + p[2]) * math.exp(-(p[4] + lp) * t))


@pytest.mark.parametrize("name", list(CASES))
def test_integral_to_infinity_matches_closed_form(name):
    p = CASES[name]
    # rounding only: both are a handful of floating-point operations
    assert models.integrate(name, p, decay_constant_per_h=LP) == pytest.approx(closed_form_total(name, p), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_evaluate_matches_direct_formula(name):
    p = CASES[name]
    t = np.array([0.0, 0.5, 3.0, 24.0, 200.0])
    expect = [direct_value(name, p, ti) for ti in t]
    np.testing.assert_allclose(models.evaluate(name, p, t, LP), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("limits", [(0.0, 5.0), (4.0, 48.0), (24.0, 1000.0)])
def test_partial_integral_matches_quadrature(name, limits):
    p = CASES[name]
    ref, err = quad(lambda t: direct_value(name, p, t), *limits, epsabs=0, epsrel=1e-12, limit=200)
    # quad converges to ~1e-12 relative on smooth sums of exponentials
    assert models.integrate(name, p, *limits, decay_constant_per_h=LP) == pytest.approx(ref, rel=1e-9)


def test_parameters_by_name_with_physical_decay_inside():
    params = {"A": 800.0, "lambda_washout_per_h": 0.01, "lambda_uptake_per_h": 0.7, "lambda_phys_per_h": LP}
    assert models.integrate("uptake_washout", params) == pytest.approx(
        closed_form_total("uptake_washout", CASES["uptake_washout"]), rel=1e-12)


def test_uptake_models_start_at_zero():
    assert models.evaluate("uptake_washout", CASES["uptake_washout"], 0.0, LP) == pytest.approx(0.0, abs=1e-9)
    assert models.evaluate("tri_uptake", CASES["tri_uptake"], 0.0, LP) == pytest.approx(0.0, abs=1e-9)


def test_effective_half_lives_combine_biological_and_physical():
    th = models.effective_half_lives_h("mono", (1.0, 0.02), LP)
    # 1/T_eff = 1/T_bio + 1/T_phys
    t_bio = math.log(2) / 0.02
    t_phys = 6.647 * 24.0
    assert th["washout"] == pytest.approx(1.0 / (1.0 / t_bio + 1.0 / t_phys), rel=1e-12)


def test_zero_biological_rate_integrates_physical_decay_only():
    # mono with lambda_bio = 0: integral = A0 * T_phys / ln2
    assert models.integrate("mono", (100.0, 0.0), decay_constant_per_h=LP) == pytest.approx(
        100.0 * 6.647 * 24.0 / math.log(2), rel=1e-12)


def test_missing_decay_constant_and_bad_names_are_clear():
    with pytest.raises(ValueError, match="physical decay constant"):
        models.evaluate("mono", (1.0, 0.1), 1.0)
    with pytest.raises(ValueError, match="unknown kinetic model"):
        models.integrate("quad", (1.0,), decay_constant_per_h=LP)
    with pytest.raises(ValueError, match="takes 3 parameters"):
        models.integrate("uptake_washout", (1.0, 0.1), decay_constant_per_h=LP)
