"""Organ statistics and DVHs on constructed dose distributions with known answers."""

import numpy as np
import pytest

from pipeline.dose.organs import cumulative_dvh, organ_dose_table


def test_organ_table_on_a_linear_dose_ramp():
    # 1000 voxels of one organ, doses 0.01 .. 10.00 Gy uniformly spaced
    dose = (np.arange(1, 1001) / 100.0).reshape(10, 10, 10)
    labels = np.ones((10, 10, 10), int)
    rho = np.full(dose.shape, 1.05)
    (row,) = organ_dose_table(dose, labels, {1: "kidney_left"}, 0.1, rho, injected_activity_gbq=7.4)
    assert row.volume_ml == pytest.approx(100.0)
    assert row.mass_g == pytest.approx(105.0)
    assert row.mean_gy == pytest.approx(5.005)
    assert row.mean_gy_per_gbq == pytest.approx(5.005 / 7.4)
    assert row.min_gy == pytest.approx(0.01) and row.max_gy == pytest.approx(10.0)
    # D98: 98 % of the volume gets at least ~0.21 Gy; D2: 2 % gets at least ~9.8 Gy
    assert row.d98_gy == pytest.approx(0.2098, abs=0.002)
    assert row.d2_gy == pytest.approx(9.8002, abs=0.002)
    assert row.d50_gy == pytest.approx(row.median_gy)


def test_mean_dose_is_mass_weighted():
    dose = np.array([1.0, 3.0]).reshape(2, 1, 1)
    rho = np.array([1.0, 3.0]).reshape(2, 1, 1)
    (row,) = organ_dose_table(dose, np.ones((2, 1, 1), int), {1: "x"}, 1.0, rho, None)
    assert row.mean_gy == pytest.approx((1 * 1 + 3 * 3) / 4)


def test_empty_structure_is_an_error_naming_it():
    with pytest.raises(ValueError, match="spleen"):
        organ_dose_table(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), int), {4: "spleen"}, 1.0, np.ones((2, 2, 2)), None)


def test_cumulative_dvh_is_one_at_zero_and_falls_to_zero_above_max():
    dose = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1)
    v = cumulative_dvh(dose, np.ones_like(dose, bool), np.array([0.0, 1.0, 2.5, 4.0, 4.1]))
    np.testing.assert_allclose(v, [1.0, 1.0, 0.5, 0.25, 0.0])
