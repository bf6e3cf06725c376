"""Kinetic models: closed-form integrals against numerical quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate as spi

from sample_data.kinetics import COMPARTMENTS, evaluate, integrate

LAMBDA_LU177 = math.log(2) / (6.647 * 24)  # physics notes: Lu-177 half-life 6.647 d


@pytest.mark.parametrize("name", sorted(COMPARTMENTS))
def test_closed_form_integral_equals_quadrature(name):
    c = COMPARTMENTS[name]
    num, err = spi.quad(lambda t: float(evaluate(c.model, c.parameters, t, LAMBDA_LU177)), 0, np.inf, limit=500,
                       epsabs=0.0, epsrel=1e-10)
    # quad is accurate to ~1e-8 relative on smooth exponentials
    assert integrate(c.model, c.parameters, LAMBDA_LU177) == pytest.approx(num, rel=1e-6)


def test_models_include_physical_decay_and_uptake_starts_at_zero():
    p = {"a": 0.02, "lambda_uptake_per_h": 1.0, "lambda_washout_per_h": 0.01}
    assert evaluate("uptake_washout", p, 0.0, LAMBDA_LU177) == 0.0
    # with no biological clearance the mono-exponential decays physically: half after T1/2
    half = evaluate("mono_exponential", {"a": 1.0, "lambda_bio_per_h": 0.0}, 6.647 * 24, LAMBDA_LU177)
    assert half == pytest.approx(0.5, rel=1e-12)


def test_the_generating_models_differ_between_organs():
    # the kinetics engineer checks model selection against these
    assert COMPARTMENTS["liver"].model == "mono_exponential"
    assert COMPARTMENTS["spleen"].model == "bi_exponential"
    assert COMPARTMENTS["kidney_left"].model == "uptake_washout"
    assert COMPARTMENTS["marrow"].model == "bi_exponential"
