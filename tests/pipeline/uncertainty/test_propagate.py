"""Analytic and Monte Carlo propagation against closed forms (products of independent factors,
fully correlated sums, the LQ g factor) and against each other on a fitted chain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.dose.radiobiology import lq_g_factor_per_gy
from pipeline.uncertainty.curvefit import model_and_jacobian, noise_sigma_mbq
from pipeline.uncertainty.inputs import OrganChain
from pipeline.uncertainty.propagate import (analytic_relative_variances, combine_analytic, g_factor_many,
                                            monte_carlo, summarise)
from pipeline.uncertainty.sources import SOURCE_NAMES, UncertaintySettings, settings_from_config

LP = math.log(2.0) / 159.528
T = (1.0, 4.0, 24.0, 48.0, 168.0)


def _chain(name="organ", label=1, dose=4.0, method="model_free", params=(), y=None, tia_rel=0.05, seg=0.02,
           reg=(0.0,) * 5, rec=0.0, rel_noise=0.10):
    if y is None:
        y = (10.0,) * 5
    sig = tuple(noise_sigma_mbq(np.asarray(y), "relative", rel_noise))
    tia = 1000.0
    if params:
        from pipeline.uncertainty.curvefit import integrate_many

        tia = float(integrate_many(method, np.array(params)[None], LP)[0])
    return OrganChain(name, label, dose, 150.0, tia, tia_rel, method, tuple(params), T, tuple(y), sig, LP, rec, seg,
                      tuple(reg), noise_model=("relative", rel_noise, 0.02, None))


def test_product_of_independent_factors_adds_relative_variances():
    # D = D0 * TIA * (1/CF) * R * B * S / rho: first order, relative variances add
    s = UncertaintySettings(calibration_relative_sd=0.03, psf_fwhm_relative_sd=0.05, s_value_relative_sd=0.02,
                            density_relative_sd=0.01)
    c = _chain(tia_rel=0.05, seg=0.02, rec=0.3)
    var = analytic_relative_variances(c, s)
    expected = 0.03**2 + 0.05**2 + (0.3 * 0.05) ** 2 + 0.02**2 + 0.02**2 + 0.01**2
    assert sum(var.values()) == pytest.approx(expected, rel=1e-12)
    # Monte Carlo of the same chain, 40 000 draws: SE of an SD 0.35 %; the exact 1/(1 + u z) of
    # calibration and density adds ~u^2 = 0.1 % relative: 2 % tolerance
    mc = monte_carlo([c], s, n_draws=40000, seed=1)
    sd_mc = np.std(mc["doses"]["organ"], ddof=1) / c.dose_gy
    assert sd_mc == pytest.approx(math.sqrt(expected), rel=0.02)


def test_shared_calibration_is_fully_correlated_between_organs():
    # two organs with only the calibration: the SD of their sum is the sum of the SDs (correlation 1)
    s = UncertaintySettings(calibration_relative_sd=0.05, s_value_relative_sd=0, density_relative_sd=0)
    a = _chain("a", 1, 3.0, tia_rel=0.0, seg=0.0)
    b = _chain("b", 2, 1.0, tia_rel=0.0, seg=0.0)
    var = combine_analytic([a, b], [1.0, 1.0], s)
    assert math.sqrt(var["calibration"]) == pytest.approx(0.05 * 4.0, rel=1e-12)
    mc = monte_carlo([a, b], s, n_draws=20000, seed=2)
    assert np.corrcoef(mc["doses"]["a"], mc["doses"]["b"])[0, 1] == pytest.approx(1.0, abs=1e-9)
    # independent sources (segmentation) add in quadrature
    s2 = UncertaintySettings(calibration_relative_sd=0, s_value_relative_sd=0, density_relative_sd=0)
    a2, b2 = _chain("a", 1, 3.0, tia_rel=0.0, seg=0.1), _chain("b", 2, 1.0, tia_rel=0.0, seg=0.1)
    var2 = combine_analytic([a2, b2], [1.0, 1.0], s2)
    assert math.sqrt(var2["segmentation"]) == pytest.approx(math.hypot(0.3, 0.1), rel=1e-12)


@pytest.mark.parametrize("model,params,rel_noise,tol", [
    ("mono", (450.0, 0.010), 0.01, 0.03),          # linear regime: first order exact, SE 1.6 %
    ("uptake_washout", (76.0, 0.013, 1.5), 0.10, 0.10),  # the stage's default noise: criterion of #18
])
def test_fitted_chain_analytic_and_monte_carlo_sd_agree(model, params, rel_noise, tol):
    f, _ = model_and_jacobian(model, params, np.array(T), LP)
    s = UncertaintySettings(calibration_relative_sd=0, s_value_relative_sd=0, density_relative_sd=0,
                            activity_relative_sd=rel_noise)
    c = _chain(method=model, params=params, y=tuple(f), seg=0.0, reg=(0.05, 0.05, 0.0, 0.05, 0.05),
               rel_noise=rel_noise)
    var = analytic_relative_variances(c, s)
    assert var["registration"] > 0 and var["activity_noise"] > 0
    mc = monte_carlo([c], s, n_draws=4000, seed=3)
    summ = summarise(c.dose_gy, {k: v * c.dose_gy**2 for k, v in var.items()}, mc["doses"]["organ"])
    assert summ["mc_to_analytic_sd"] == pytest.approx(1.0, abs=tol)
    assert set(summ["budget"]) == set(SOURCE_NAMES)
    assert sum(b["variance_share"] for b in summ["budget"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("model,params", [("mono", (1.0, 0.01)), ("uptake_washout", (1.0, 0.013, 1.5)),
                                          ("bi", (2.0, 0.007, 9.0, 0.5)), ("tri_uptake", (2.0, 0.01, 3.0, 0.1, 2.0))])
def test_g_factor_matches_the_dose_stage(model, params):
    from pipeline.kinetics.models import exponential_terms

    mu = math.log(2.0) / 2.8
    coef, rate = exponential_terms(model, params, LP)
    ref = lq_g_factor_per_gy(coef, rate, mu)
    assert g_factor_many(model, np.array(params)[None], LP, mu)[0] == pytest.approx(ref, rel=1e-12)


def test_summary_interval_of_a_normal_sample():
    draws = np.random.default_rng(4).normal(10.0, 1.0, 100000)
    out = summarise(10.0, {"calibration": 1.0}, draws)
    assert out["analytic_interval95_gy"] == pytest.approx([10 - 1.96, 10 + 1.96], abs=1e-3)
    assert out["mc_interval95_gy"] == pytest.approx([10 - 1.96, 10 + 1.96], abs=0.03)
    assert out["mc_sd_robust_gy"] == pytest.approx(1.0, abs=0.02)
    assert out["largest_source"] == "calibration"


def test_settings_from_config_and_validation():
    s = settings_from_config({"calibration_relative_sd": 0.05, "resources": {"threads": 1}}, mc_draws=500, seed=None)
    assert s.calibration_relative_sd == 0.05 and s.mc_draws == 500 and s.seed == UncertaintySettings().seed
    with pytest.raises(ValueError, match="confidence"):
        UncertaintySettings(confidence=1.0)
    with pytest.raises(ValueError, match="counts_per_mbq"):
        UncertaintySettings(activity_noise="counts")
    assert set(s.describe()["sources"]) == set(SOURCE_NAMES)


def test_model_selection_spread_of_two_candidates():
    # weights 0.7 / 0.3, TIA 100 (chosen) / 110: sqrt(0.3 * 10^2) / 100
    from pipeline.uncertainty.inputs import model_selection_relative_sd

    cands = [{"akaike_weight": 0.7, "tia_mbq_h": 100.0}, {"akaike_weight": 0.3, "tia_mbq_h": 110.0},
             {"akaike_weight": None, "tia_mbq_h": 500.0}]  # outside AICc's domain: not counted
    assert model_selection_relative_sd(cands, 100.0) == pytest.approx(math.sqrt(0.3) * 0.1, rel=1e-12)
    assert model_selection_relative_sd([{"akaike_weight": 1.0, "tia_mbq_h": 100.0}], 100.0) == 0.0
