"""Fits, model selection, model-free and single-time-point estimates, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.kinetics import fitting
from pipeline.kinetics.fitting import ErrorModel, fit_model, fit_models, fit_tac

LP = math.log(2.0) / (6.647 * 24.0)  # Lu-177, 1/h
DENSE_T = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 48.0, 96.0, 168.0, 240.0])
PROTOCOL_T = np.array([1.0, 4.0, 24.0, 48.0, 168.0])  # seed study (physics notes, section 6)

TRUE = {
    "mono": (1000.0, 0.02),
    "uptake_washout": (800.0, 0.01, 0.7),
    "bi": (600.0, 0.005, 400.0, 0.2),
    "tri_uptake": (500.0, 0.003, 300.0, 0.05, 0.9),
}


def curve(name, p, t, lp=LP):
    """Closed forms written out here, independent of pipeline.kinetics.models."""
    e = lambda rate: np.exp(-(rate + lp) * t)  # noqa: E731
    if name == "mono":
        return p[0] * e(p[1])
    if name == "uptake_washout":
        return p[0] * (e(p[1]) - e(p[2]))
    if name == "bi":
        return p[0] * e(p[1]) + p[2] * e(p[3])
    return p[0] * e(p[1]) + p[2] * e(p[3]) - (p[0] + p[2]) * e(p[4])


def total(name, p, lp=LP):
    k = lambda rate: rate + lp  # noqa: E731
    if name == "mono":
        return p[0] / k(p[1])
    if name == "uptake_washout":
        return p[0] / k(p[1]) - p[0] / k(p[2])
    if name == "bi":
        return p[0] / k(p[1]) + p[2] / k(p[3])
    return p[0] / k(p[1]) + p[2] / k(p[3]) - (p[0] + p[2]) / k(p[4])


@pytest.mark.parametrize("name", list(TRUE))
def test_fit_recovers_parameters_from_exact_data(name):
    y = curve(name, TRUE[name], DENSE_T)
    fit = fit_model(name, DENSE_T, y, LP)
    assert fit.status == "ok"
    # exact data: the optimiser's tolerance (1e-12) leaves ~1e-6 relative in weakly determined rates
    np.testing.assert_allclose(fit.params, TRUE[name], rtol=1e-4)
    assert fit.tia_mbq_h == pytest.approx(total(name, TRUE[name]), rel=1e-6)


@pytest.mark.parametrize("name", list(TRUE))
def test_aicc_selects_generating_model_on_noise_free_data(name):
    y = curve(name, TRUE[name], DENSE_T)
    fits = fit_models(DENSE_T, y, LP)
    weights = [f.akaike_weight for f in fits if f.akaike_weight is not None]
    assert len(weights) == 4  # N = 11 > K + 1 for every model
    assert sum(weights) == pytest.approx(1.0, abs=1e-12)
    best = max(fits, key=lambda f: f.akaike_weight)
    assert best.model == name


def test_protocol_selection_uses_only_admissible_models():
    # 5 time points: N > K + 1 holds for mono (K=2) and uptake-washout (K=3) only
    y = curve("uptake_washout", TRUE["uptake_washout"], PROTOCOL_T)
    res = fit_tac(PROTOCOL_T, y, LP)
    by = {c.model: c for c in res.candidates}
    assert by["bi"].aicc is None and by["tri_uptake"].aicc is None
    assert by["mono"].akaike_weight + by["uptake_washout"].akaike_weight == pytest.approx(1.0, abs=1e-12)
    assert res.method == "uptake_washout"
    assert res.tia_mbq_h == pytest.approx(total("uptake_washout", TRUE["uptake_washout"]), rel=1e-6)
    assert any("AICc needs N > K + 1" in f for f in res.fallbacks)


def test_aicc_and_weights_match_written_out_formulas():
    n, k, wrss = 7, 3, 2.5
    expect = n * math.log(wrss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    assert fitting.aicc(wrss, n, k) == pytest.approx(expect, rel=1e-14)
    assert fitting.aicc(wrss, 4, 3) is None  # N = K + 1: not admissible (Glatting 2007)
    w = fitting.akaike_weights([10.0, 12.0, None, 11.0])
    e = np.exp(-0.5 * np.array([0.0, 2.0, 1.0]))
    np.testing.assert_allclose(w, [e[0] / e.sum(), e[1] / e.sum(), 0.0, e[2] / e.sum()], rtol=1e-14)


def test_reported_tia_uncertainty_matches_monte_carlo_scatter():
    # Noise drawn from the stated error model (10 % relative); the delta-method SD should
    # describe the scatter of the fitted TIA: empirical SD within 25 % of the mean reported SD
    # (200 replicates: the SD of an SD estimate is ~5 %), and ~95 % of 1.96-SD intervals cover.
    rng = np.random.default_rng(1)
    p = TRUE["mono"]
    y0 = curve("mono", p, PROTOCOL_T)
    truth = total("mono", p)
    em = ErrorModel(relative_sd=0.10)
    tias, sds = [], []
    for _ in range(200):
        y = y0 * (1 + 0.10 * rng.standard_normal(y0.size))
        f = fit_model("mono", PROTOCOL_T, y, LP, em)
        tias.append(f.tia_mbq_h)
        sds.append(f.tia_sd_mbq_h)
    tias, sds = np.array(tias), np.array(sds)
    assert np.std(tias) == pytest.approx(np.mean(sds), rel=0.25)
    cover = np.mean(np.abs(tias - truth) <= 1.96 * sds)
    assert 0.88 <= cover <= 1.0


def test_model_free_parts_are_explicit():
    t = np.array([2.0, 6.0, 30.0])
    y = np.array([10.0, 20.0, 5.0])
    mf = fitting.model_free_tia(t, y, LP, head="linear", tail="physical")
    assert mf.head_mbq_h == pytest.approx(10.0 * 2.0 / 2)  # triangle from (0, 0)
    assert mf.trapezoid_mbq_h == pytest.approx(4 * 15.0 + 24 * 12.5)
    assert mf.tail_mbq_h == pytest.approx(5.0 / LP)
    mf2 = fitting.model_free_tia(t, y, LP, head="constant", tail="physical")
    assert mf2.head_mbq_h == pytest.approx(10.0 * 2.0)  # rectangle


def test_model_free_fitted_tail_is_exact_for_exponential_tail():
    # last two points on a mono-exponential: the fitted tail integral is exact
    p = (1000.0, 0.03)
    y = curve("mono", p, PROTOCOL_T)
    mf = fitting.model_free_tia(PROTOCOL_T, y, LP, tail="fitted")
    assert mf.tail_rate_per_h == pytest.approx(0.03 + LP, rel=1e-10)
    assert mf.tail_mbq_h == pytest.approx(y[-1] / (0.03 + LP), rel=1e-10)


def test_hanscheid_is_exact_at_the_effective_half_life():
    # mono-exponential A0 exp(-k t): A(T_eff) = A0 / 2, so A(T) * 2T / ln2 = A0 T / ln2 = A0 / k
    k = 0.02 + LP
    t_eff = math.log(2) / k
    a0 = 500.0
    assert fitting.hanscheid_tia(a0 * math.exp(-k * t_eff), t_eff) == pytest.approx(a0 / k, rel=1e-12)


@pytest.mark.parametrize("ratio", [0.8, 1.5, 2.4])
def test_hanscheid_error_follows_closed_form(ratio):
    # Hanscheid / truth = (2/ln2) x exp(-x) with x = ln2 * t / T_eff; within 10 % for t/T_eff in
    # [0.77, 2.44] (Hanscheid 2018, physics notes section 5)
    k = 0.05
    t = ratio * math.log(2) / k
    a0 = 1.0
    x = math.log(2) * ratio
    got = fitting.hanscheid_tia(a0 * math.exp(-k * t), t) / (a0 / k)
    assert got == pytest.approx(2 / math.log(2) * x * math.exp(-x), rel=1e-12)
    assert abs(got - 1) <= 0.10


def test_madsen_is_exact_for_mono_exponential_with_true_rate():
    k = 0.013
    for t in (4.0, 24.0, 96.0):
        assert fitting.madsen_tia(700.0 * math.exp(-k * t), t, k) == pytest.approx(700.0 / k, rel=1e-12)


def test_single_time_point_uses_hanscheid_or_madsen_and_records_it():
    r = fit_tac([24.0], [100.0], LP)
    assert r.method == "hanscheid"
    assert r.tia_mbq_h == pytest.approx(100.0 * 48.0 / math.log(2))
    assert any("single time point" in f for f in r.fallbacks)
    r2 = fit_tac([24.0], [100.0], LP, population_effective_rate_per_h=0.02)
    assert r2.method == "madsen"
    assert r2.tia_mbq_h == pytest.approx(100.0 * math.exp(0.48) / 0.02)


def test_non_increasing_times_are_rejected_with_a_clear_message():
    with pytest.raises(InputError, match="strictly increasing.*t\\[2\\] = 4 h follows t\\[1\\] = 24 h"):
        fit_tac([1.0, 24.0, 4.0], [1.0, 2.0, 3.0], LP)
    with pytest.raises(InputError, match="strictly increasing"):
        fit_tac([1.0, 4.0, 4.0], [1.0, 2.0, 3.0], LP)
    with pytest.raises(InputError, match="negative time"):
        fit_tac([-1.0, 4.0], [1.0, 2.0], LP)


def test_all_zero_curve_gives_zero_and_records_fallback():
    r = fit_tac(PROTOCOL_T, np.zeros(5), LP)
    assert r.method == "zero" and r.tia_mbq_h == 0.0
    assert any("<= 0" in f for f in r.fallbacks)


def test_too_few_points_for_a_model_is_recorded_and_mono_used():
    y = curve("mono", TRUE["mono"], np.array([4.0, 24.0, 48.0]))
    r = fit_tac([4.0, 24.0, 48.0], y, LP)
    by = {c.model: c for c in r.candidates}
    assert by["bi"].status == "too_few_points" and by["tri_uptake"].status == "too_few_points"
    assert any("bi: not fitted, needs at least 4 time points (have 3)" in f for f in r.fallbacks)
    assert any("no model admissible" in f for f in r.fallbacks)
    assert r.method == "mono"
    assert r.tia_mbq_h == pytest.approx(total("mono", TRUE["mono"]), rel=1e-6)


def test_noisy_negative_points_do_not_break_the_fit():
    y = curve("mono", TRUE["mono"], PROTOCOL_T)
    y[-1] = -5.0
    r = fit_tac(PROTOCOL_T, y, LP)
    assert np.isfinite(r.tia_mbq_h) and r.tia_mbq_h > 0
    assert any("negative" in w for w in r.warnings)


def test_model_failing_goodness_of_fit_is_replaced_and_recorded():
    # a clearly bi-exponential curve at the 5 protocol times: mono and uptake-washout (the only
    # AICc-admissible models) are incompatible with the 10 % error model; the bi-exponential
    # (N = K + 1) fits exactly and is used, with the substitution recorded
    p = (300.0, 0.005, 700.0, 0.3)  # fast blood-like phase (T_bio 2.3 h) and slow retention
    y = curve("bi", p, PROTOCOL_T)
    r = fit_tac(PROTOCOL_T, y, LP)
    by = {c.model: c for c in r.candidates}
    assert by["mono"].chi2_p_value < 1e-3 and by["uptake_washout"].chi2_p_value < 1e-3
    assert r.method == "bi"
    assert r.tia_mbq_h == pytest.approx(total("bi", p), rel=1e-5)
    assert any("fails the chi-square test" in f and "bi used instead" in f for f in r.fallbacks)


@pytest.mark.parametrize("name", list(TRUE))
def test_analytic_jacobian_matches_finite_differences(name):
    p = np.array(TRUE[name])
    jac = fitting._jacobian(name, p, DENSE_T, LP)
    for j in range(p.size):
        h = 1e-6 * max(abs(p[j]), 1e-3)
        up, dn = p.copy(), p.copy()
        up[j] += h
        dn[j] -= h
        fd = (curve(name, up, DENSE_T) - curve(name, dn, DENSE_T)) / (2 * h)
        # central differences: O(h^2) truncation, ~1e-7 relative to the column's scale
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())
