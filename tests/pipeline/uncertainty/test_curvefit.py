"""Fit covariance, TIA sensitivities and the vectorised refit against independent references.

References: the closed-form delta method of a mono-exponential's TIA; the kinetics stage's own
fit (scipy least_squares, several starts) for the covariance and the refit; finite differences
of a refit for d TIA / d A_i.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.kinetics.fitting import ErrorModel, fit_model
from pipeline.uncertainty.curvefit import (fit_covariance, integrate_many, model_and_jacobian, noise_sigma_mbq,
                                           refit_tia, tia_gradient, tia_point_sensitivity)

LP = math.log(2.0) / 159.528  # Lu-177, 1/h
T = np.array([1.0, 4.0, 24.0, 48.0, 168.0])
CURVES = {
    "mono": (450.0, 0.010),
    "uptake_washout": (76.0, 0.013, 1.5),
    "bi": (2.0, 0.007, 9.0, 0.5),
}


def _noisy(model, params, seed, rel=0.05):
    f, _ = model_and_jacobian(model, params, T, LP)
    return f * (1.0 + rel * np.random.default_rng(seed).standard_normal(T.size))


def test_mono_exponential_tia_variance_equals_the_closed_form_delta_method():
    # TIA = A0 / k, k = lambda + lp: var = var_A / k^2 + A0^2 var_l / k^4 - 2 A0 cov / k^3
    a0, lam = 450.0, 0.010
    cov = np.array([[25.0, 0.004], [0.004, 1e-6]])
    k = lam + LP
    closed = cov[0, 0] / k**2 + a0**2 * cov[1, 1] / k**4 - 2 * a0 * cov[0, 1] / k**3
    g = tia_gradient("mono", (a0, lam), LP)
    assert g @ cov @ g == pytest.approx(closed, rel=1e-12)  # complex step: exact to rounding


@pytest.mark.parametrize("model", sorted(CURVES))
def test_fit_covariance_equals_the_kinetics_stage_covariance(model):
    # same data, same error model: (J^T W J)^-1 times the chi-square inflation of fits.json
    y = _noisy(model, CURVES[model], seed=3)
    fit = fit_model(model, T, y, LP, ErrorModel())
    sigma = noise_sigma_mbq(y)
    cov, _ = fit_covariance(model, fit.params, T, y, sigma, LP)
    np.testing.assert_allclose(cov, np.asarray(fit.covariance), rtol=1e-5, atol=1e-14)
    g = tia_gradient(model, fit.params, LP)
    assert math.sqrt(g @ cov @ g) == pytest.approx(fit.tia_sd_mbq_h, rel=1e-5)


@pytest.mark.parametrize("model", sorted(CURVES))
def test_vectorised_refit_finds_the_kinetics_stage_optimum(model):
    # 40 noisy curves (5 %): the one-start Levenberg-Marquardt from the central estimate must land
    # on the multi-start least_squares optimum of the kinetics stage (TIA within 1e-5)
    ys = np.array([_noisy(model, CURVES[model], seed=s) for s in range(40)])
    tia, _, _ = refit_tia(model, CURVES[model], T, ys, LP, lambda a: noise_sigma_mbq(a))
    ref = np.array([fit_model(model, T, y, LP).tia_mbq_h for y in ys])
    close = np.abs(tia / ref - 1.0) < 1e-5
    assert close.mean() >= 0.95, np.abs(tia / ref - 1.0).max()


@pytest.mark.parametrize("model", ["mono", "uptake_washout"])
def test_tia_point_sensitivity_matches_finite_differences_of_the_refit(model):
    # on exact data (zero residuals) the Gauss-Newton information is the exact Hessian, so the
    # first-order sensitivity must equal the finite difference of a refit (with 5 % noise they
    # differ by the residual curvature term, 0.4 % here: that is the first-order approximation)
    y = _noisy(model, CURVES[model], seed=5, rel=0.0)
    fit = fit_model(model, T, y, LP)
    sigma = noise_sigma_mbq(y)  # weights held fixed, as in the linearisation
    h = tia_point_sensitivity(model, fit.params, T, sigma, LP)
    fd = []
    for i in range(T.size):
        eps = 1e-4 * y[i]
        plus, minus = y.copy(), y.copy()
        plus[i] += eps
        minus[i] -= eps
        tp, _, _ = refit_tia(model, fit.params, T, plus[None], LP, lambda a: sigma[None])
        tm, _, _ = refit_tia(model, fit.params, T, minus[None], LP, lambda a: sigma[None])
        fd.append((tp[0] - tm[0]) / (2 * eps))
    np.testing.assert_allclose(h, fd, rtol=1e-4, atol=1e-5 * np.abs(h).max())


def test_integrals_match_the_kinetics_models():
    from pipeline.kinetics.models import integrate

    for model, p in CURVES.items():
        assert integrate_many(model, np.array(p)[None], LP)[0] == pytest.approx(integrate(model, p, 0, np.inf, LP),
                                                                               rel=1e-13)


def test_counts_noise_is_poisson():
    # 1e5 counts per MBq: 10 MBq gives 1e6 counts, SD 1e3 counts = 0.01 MBq
    assert noise_sigma_mbq([10.0, 40.0], "counts", counts_per_mbq=1e5)[0] == pytest.approx(0.01)
