"""Organ statistics and DVHs on constructed dose distributions with known answers."""

import numpy as np
import pytest

from pipeline.dose.organs import cumulative_dvh, cumulative_dvh_of_values, label_voxel_indices, organ_dose_table


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


@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_label_voxel_indices_are_the_voxels_of_boolean_masks_in_memory_order(layout, dtype):
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 0, 0, 1, 3, 7, 9, 200], size=(17, 13, 11)).astype(dtype)
    if np.dtype(dtype).kind == "i":
        labels[0, 0, :4] = -2  # negative labels are never reported
    labels = np.asarray(labels, order=layout)
    values = rng.normal(size=labels.shape)
    got = label_voxel_indices(labels, [1, 3, 7, 8])
    for k in (1, 3, 7, 8):
        expected = np.ravel(values, order=layout)[np.ravel(labels == k, order=layout)]
        np.testing.assert_array_equal(got.values(values, k), expected)
        assert got.indices[k].size == np.count_nonzero(labels == k)


def test_fast_dvh_equals_the_sorted_definition_with_doses_on_the_bin_edges():
    rng = np.random.default_rng(2)
    edges = np.linspace(0.0, 5.0, 51)
    # half the voxels exactly on bin edges: ">= edge" must count them in that bin
    dose = np.concatenate([rng.uniform(0, 5.2, 500), rng.choice(edges, 500)])
    mask = np.ones(dose.size, bool)
    np.testing.assert_array_equal(cumulative_dvh_of_values(dose, edges), cumulative_dvh(dose, mask, edges))
    # non-increasing edges take the general path and still agree
    odd = np.array([0.0, 2.0, 2.0, 1.0, 6.0])
    np.testing.assert_array_equal(cumulative_dvh_of_values(dose, odd), cumulative_dvh(dose, mask, odd))


def test_organ_table_from_precomputed_voxels_equals_the_mask_based_table():
    rng = np.random.default_rng(3)
    labels = np.asfortranarray(rng.choice([0, 1, 2], size=(20, 20, 20)))
    dose = rng.uniform(0, 10, labels.shape)
    rho = rng.uniform(0.9, 1.9, labels.shape)
    names = {1: "a", 2: "b"}
    fast = organ_dose_table(dose, labels, names, 0.1, rho, 7.4, voxels=label_voxel_indices(labels, names))
    for row, (k, name) in zip(fast, names.items()):
        m = labels == k
        mass = rho[m] * 0.1
        assert row.mean_gy == pytest.approx(np.sum(dose[m] * mass) / np.sum(mass), rel=1e-12)
        assert row.mass_g == pytest.approx(mass.sum(), rel=1e-12)
        assert row.d2_gy == np.percentile(dose[m], 98) and row.max_gy == dose[m].max()
