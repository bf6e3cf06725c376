"""HU -> density: published Schneider et al. (2000) line segments, masses by summation."""

import numpy as np
import pytest

from pipeline.segment.density import hu_to_density_g_per_ml, structure_stats


def test_density_matches_schneider_2000_segments_at_reference_points():
    # values computed by hand from Schneider, Bortfeld, Schlegel, PMB 45 (2000) 459, fig. 4 lines
    hu = np.array([-1000.0, -98.0, 0.0, 20.0, 50.0, 100.0, 1000.0])
    expected = np.array([1.03091 - 1.0297, 1.03091 - 1.0297e-3 * 98, 1.018, 1.03, 1.003 + 1.169e-3 * 50,
                         1.003 + 1.169e-3 * 100, 1.017 + 0.592])
    np.testing.assert_allclose(hu_to_density_g_per_ml(hu), expected, rtol=0, atol=1e-9)


def test_density_is_continuous_where_the_paper_is_and_clamps_below_air():
    # the adipose/soft-tissue joins at -98, 14 and 23 HU are continuous in the paper (within 0.001 g/mL)
    for h in (-98.0, 14.0, 23.0):
        lo, hi = hu_to_density_g_per_ml([h - 1e-6, h + 1e-6])
        assert abs(lo - hi) < 1e-3
    assert hu_to_density_g_per_ml([-3024.0])[0] == pytest.approx(hu_to_density_g_per_ml([-1000.0])[0])
    assert hu_to_density_g_per_ml([-1000.0])[0] >= 0.0


def test_custom_calibration_table_is_interpolated_linearly():
    table = ((-1000, 0.0), (0, 1.0), (1000, 2.0))
    np.testing.assert_allclose(hu_to_density_g_per_ml([-500, 500, 3000], table), [0.5, 1.5, 2.0])
    with pytest.raises(ValueError):
        hu_to_density_g_per_ml([0], ((0, 1.0), (0, 2.0)))


def test_structure_mass_is_density_times_volume_for_a_uniform_cube():
    lab = np.zeros((10, 10, 10), np.uint16)
    lab[2:7, 2:7, 2:7] = 3
    ct = np.full(lab.shape, 50.0)
    rows = structure_stats(lab, ct, 0.008, {3: "liver", 4: "spleen"})
    liver = rows[0]
    rho = 1.003 + 1.169e-3 * 50
    assert liver.volume_ml == pytest.approx(125 * 0.008)
    assert liver.mass_g == pytest.approx(125 * 0.008 * rho)
    assert liver.density_g_per_ml == pytest.approx(rho)
    assert rows[1].volume_ml == 0.0
