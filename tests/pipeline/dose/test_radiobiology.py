"""BED/EQD2 against the closed mono-exponential form and a direct numerical double integral."""

import numpy as np
import pytest

from pipeline.dose.radiobiology import (
    LQParameters,
    bed_gy,
    bed_mono_exponential_gy,
    bed_numeric_gy,
    eqd2_gy,
    exponential_terms_dose_gy,
    lq_g_factor_per_gy,
)

KIDNEY = LQParameters(alpha_beta_gy=2.6, repair_half_time_h=2.8)


def test_sum_of_exponentials_reduces_to_the_mono_exponential_closed_form():
    # Lu-177 kidney-like: T_eff = 50 h, D = 20 Gy
    lam = np.log(2) / 50.0
    a = 20.0 * lam
    g = lq_g_factor_per_gy([a], [lam], KIDNEY.repair_constant_per_h)
    closed = bed_mono_exponential_gy(20.0, lam, KIDNEY)
    assert bed_gy(20.0, g, KIDNEY) == pytest.approx(closed, rel=1e-12)
    # hand value: mu = ln2/2.8, lambda = ln2/50 -> lambda/(mu+lambda) = 2.8/52.8
    assert closed == pytest.approx(20.0 * (1 + 20.0 * (2.8 / 52.8) / 2.6), rel=1e-12)


def test_uptake_washout_bed_matches_direct_numerical_double_integral():
    # Ddot = a (exp(-l1 t) - exp(-l2 t)): uptake with rate l2, washout l1 (1/h)
    l1, l2, a = 0.02, 0.5, 0.9
    coeffs, rates = [a, -a], [l1, l2]
    dose = exponential_terms_dose_gy(coeffs, rates)
    g = lq_g_factor_per_gy(coeffs, rates, KIDNEY.repair_constant_per_h)
    numeric = bed_numeric_gy(lambda t: a * (np.exp(-l1 * t) - np.exp(-l2 * t)), KIDNEY, t_max_h=2000.0)
    # tolerance 1e-4: trapezoid steps of 0.01 h against hours-long time constants
    assert bed_gy(dose, g, KIDNEY) == pytest.approx(numeric, rel=1e-4)


def test_bi_exponential_bed_matches_direct_numerical_double_integral():
    coeffs, rates = [1.2, 0.3], [0.3, 0.01]
    dose = exponential_terms_dose_gy(coeffs, rates)
    g = lq_g_factor_per_gy(coeffs, rates, KIDNEY.repair_constant_per_h)
    numeric = bed_numeric_gy(lambda t: 1.2 * np.exp(-0.3 * t) + 0.3 * np.exp(-0.01 * t), KIDNEY, t_max_h=3000.0)
    assert bed_gy(dose, g, KIDNEY) == pytest.approx(numeric, rel=1e-4)


def test_acute_limit_gives_g_of_one_and_slow_delivery_g_near_zero():
    fast = lq_g_factor_per_gy([1e6], [1e6], KIDNEY.repair_constant_per_h)
    slow = lq_g_factor_per_gy([1e-6], [1e-6], KIDNEY.repair_constant_per_h)
    assert fast == pytest.approx(1.0, rel=1e-5)
    assert slow < 1e-4


def test_eqd2_of_2gy_fractions_is_the_physical_dose():
    # 10 acute fractions of 2 Gy: BED = 20 (1 + 2/2.6) -> EQD2 = 20 Gy
    bed = 20.0 * (1 + 2.0 / 2.6)
    assert eqd2_gy(bed, KIDNEY) == pytest.approx(20.0, rel=1e-12)


def test_non_positive_rates_are_refused():
    with pytest.raises(ValueError, match="positive"):
        lq_g_factor_per_gy([1.0], [0.0], 0.2)
