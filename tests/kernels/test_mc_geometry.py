"""Grids, unit factors and the cell-to-shell mapping of the Monte Carlo generators (no engine needed)."""

import numpy as np
import pytest

from kernels.mc.pointkernel import cell_to_shell_weights, shell_edges_mm
from kernels.mc.svalues import csda_range_mm, phantom_bounds_cm, svalue_factor


def test_svalue_factor_matches_local_deposition_constant_of_physics_notes():
    # Physics notes: Lu-177 electrons deposited locally give 2.370e-5 mGy*kg per MBq*s.
    from kernels.decay import load_decay

    e = load_decay("Lu-177").electron_energy_mev
    assert svalue_factor(e, 1.0) == pytest.approx(2.370e-5, rel=1e-3)
    # Definition check: 1 MeV per decay into 1 kg is 1.602176634e-13 J * 1e6 /s per MBq = 1.602e-7 Gy/(MBq s).
    assert svalue_factor(1.0, 1.0) == pytest.approx(1.602176634e-4, rel=1e-12)


def test_range_formula_gives_known_csda_ranges():
    # Physics notes: CSDA range in water at the endpoint: Y-90 11.2 mm, Lu-177 1.7 mm, Cu-67 2.1 mm
    # (Katz-Penfold is an empirical fit: within 10 %).
    assert csda_range_mm(2.2801) == pytest.approx(11.2, rel=0.1)
    assert csda_range_mm(0.4978) == pytest.approx(1.7, rel=0.1)
    assert csda_range_mm(0.5617) == pytest.approx(2.1, rel=0.1)
    assert csda_range_mm(2.2801, 1.04) == pytest.approx(csda_range_mm(2.2801) / 1.04)


def test_phantom_bounds_are_centred_uniform_block_with_padding():
    b = phantom_bounds_cm(4.8, 20)
    assert np.all(np.diff(b) > 0)
    np.testing.assert_allclose(b, -b[::-1], atol=1e-12)
    inner = b[3:-3]
    assert inner.size == 42
    np.testing.assert_allclose(np.diff(inner), 0.48)
    assert b[-1] == pytest.approx(30.0)


def test_shell_edges_fine_then_growing_to_r_max():
    e = shell_edges_mm(1.6, 300.0)
    w = np.diff(e)
    assert e[0] == 0 and e[-1] == pytest.approx(300.0)
    np.testing.assert_allclose(w[:80], 0.02)
    assert np.all(w > 0) and np.all(np.diff(w[100:-1]) > 0)


def test_cell_to_shell_weights_conserve_volume_exactly_in_shells():
    # Ring x slab cells on the shell edges (slabs mirrored) cover every sphere of radius <= r_max:
    # the summed cell volumes assigned to shell n must equal 4/3 pi (r1^3 - r0^3) (analytic).
    r = shell_edges_mm(1.0, 10.0, n_fine=10, growth=1.3)
    z = np.concatenate([-r[:0:-1], r])
    w = cell_to_shell_weights(r, z, r, subsamples=24)
    vol_cells = np.pi * np.diff(r ** 2)[:, None] * np.diff(z)[None, :]
    shell_vol = np.einsum("ij,ijn->n", vol_cells, w)
    exact = 4.0 / 3.0 * np.pi * np.diff(r ** 3)
    # Midpoint sub-sampling with 24x24 sub-cells: a few tenths of a percent per shell.
    np.testing.assert_allclose(shell_vol, exact, rtol=2e-2)
    assert shell_vol.sum() == pytest.approx(exact.sum(), rel=2e-3)
    assert np.all(w.sum(axis=2) <= 1.0 + 1e-12)
