"""Point kernel -> voxel S-values (kernels.vsv) against closed forms, conservation laws and
brute-force Monte Carlo sampling in numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kernels.kernel_data import PointKernel
from kernels.vsv import (
    absorbed_fractions,
    pair_probability,
    self_voxel_probability,
    svalue_scale_mgy_per_mbq_s,
    svalues_from_point_kernel,
)

# Shell edges fine near the origin, coarser outside (like a Monte Carlo kernel).
EDGES = np.concatenate([np.arange(0.0, 2.0, 0.02), np.arange(2.0, 12.0, 0.1), np.arange(12.0, 150.01, 1.0)])


def exp_fractions(length_mm: float, edges=EDGES) -> np.ndarray:
    """Shell fractions of an exponential radial density dF/dr = exp(-r/L)/L (truncated at the last edge)."""
    return np.diff(1.0 - np.exp(-edges / length_mm))


def brute_force_targets(fractions, voxel_size_mm, n, rng, edges=EDGES):
    """Monte Carlo: emission point uniform in voxel (0,0,0), radius from the shell histogram (uniform within
    a shell, i.e. the same piecewise-constant dF/dr), isotropic direction; returns target voxel indices."""
    a = np.asarray(voxel_size_mm, float)
    b = rng.choice(len(fractions), size=n, p=fractions / fractions.sum())
    r = edges[b] + rng.random(n) * (edges[b + 1] - edges[b])
    x = rng.random((n, 3)) * a
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    return np.floor((x + r[:, None] * u) / a).astype(int)


# ---------------------------------------------------------------------------------- P_st(r)

@pytest.mark.parametrize("a", [1.0, 3.0, 4.7952])
def test_numerical_self_voxel_probability_matches_closed_form_for_cubes(a):
    # P(r) = 1 - 3r/(2a) + 2r^2/(pi a^2) - r^3/(4 pi a^3) for r <= a; the quadrature is
    # exact to ~1e-9 (smooth-step Gauss-Legendre); 1e-7 leaves room for rounding.
    r = np.linspace(0.0, a, 41)
    assert np.allclose(pair_probability(r, (0, 0, 0), a), self_voxel_probability(r, a), rtol=0, atol=1e-7)
    # and the closed form is the one quoted in the physics notes
    ref = 1 - 1.5 * r / a + 2 * r**2 / (np.pi * a**2) - r**3 / (4 * np.pi * a**3)
    assert np.allclose(self_voxel_probability(r, a), ref, rtol=0, atol=1e-14)


def test_numerical_self_voxel_probability_matches_closed_form_for_anisotropic_voxels():
    a = (4.0, 4.0, 2.0)
    r = np.linspace(0.0, 2.0, 21)
    assert np.allclose(pair_probability(r, (0, 0, 0), a), self_voxel_probability(r, a), rtol=0, atol=1e-7)


def test_closed_form_self_voxel_probability_matches_brute_force_sampling():
    # Independent check of the closed form itself: 1e6 samples, binomial sigma <= 5e-4; 5 sigma.
    rng = np.random.default_rng(11)
    a = np.array([4.0, 3.0, 2.0])
    n = 1_000_000
    for r in (0.5, 1.7):
        x = rng.random((n, 3)) * a
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1)[:, None]
        y = x + r * u
        est = np.mean(np.all((y >= 0) & (y < a), axis=1))
        assert self_voxel_probability(r, a) == pytest.approx(est, abs=5 * np.sqrt(est * (1 - est) / n))


@pytest.mark.parametrize("a", [(3.0, 3.0, 3.0), (4.0, 4.0, 2.0), (2.5, 3.1, 4.7)])
def test_pair_probabilities_sum_to_one_over_all_targets(a):
    # A point at distance r from the source voxel lands in exactly one voxel: sum_t P_st(r) = 1.
    # Quadrature error ~1e-9 per target; 1e-7 on the sum.
    r = np.array([0.3, 2.9, 4.4, 7.3, 9.9])
    total = np.zeros_like(r)
    reach = [int(np.ceil(10.0 / ak)) + 1 for ak in a]
    for off in itertools.product(*(range(-h, h + 1) for h in reach)):
        total += pair_probability(r, off, a)
    assert np.allclose(total, 1.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("offset,r", [((1, 0, 0), 2.0), ((1, 1, 0), 4.0), ((1, 1, 1), 5.0), ((2, 1, 0), 6.5),
                                      ((0, 0, 2), 3.0)])
def test_pair_probability_matches_brute_force_sampling(offset, r):
    # Reference: numpy Monte Carlo with 1e6 random points/directions; tolerance 5 binomial sigma.
    rng = np.random.default_rng(abs(hash((offset, r))) % 2**32)
    a = np.array([3.0, 3.0, 2.0])
    n = 1_000_000
    x = rng.random((n, 3)) * a
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    idx = np.floor((x + r * u) / a)
    est = np.mean(np.all(idx == np.asarray(offset), axis=1))
    val = pair_probability([r], offset, a)[0]
    assert val == pytest.approx(est, abs=5 * np.sqrt(est * (1 - est) / n) + 1e-6)


# ---------------------------------------------------------------------------------- absorbed fractions

@pytest.mark.parametrize("a", [(3.0, 3.0, 3.0), (4.0, 4.0, 2.0)])
def test_absorbed_fractions_match_brute_force_monte_carlo(a):
    # Exponential electron-like (L = 2 mm) and photon-like (L = 40 mm) kernels; reference:
    # 1e6 sampled decays in numpy per component; tolerance 5 sigma (Poisson) + 1e-5 relative.
    rng = np.random.default_rng(5)
    fe, fp = exp_fractions(2.0), exp_fractions(40.0)
    h = (4, 4, 8)
    af = absorbed_fractions(EDGES, np.stack([fe, fp]), a, h)
    n = 1_000_000
    for comp, f in enumerate((fe, fp)):
        idx = brute_force_targets(f, a, n, rng)
        for off in [(0, 0, 0), (0, 0, 1), (1, 0, 0), (0, 1, 1), (1, 1, 1), (2, 0, 1), (3, 1, 2)]:
            est = np.mean(np.all(idx == off, axis=1)) * f.sum()
            sigma = np.sqrt(est * f.sum() / n)
            val = af.fraction[comp, h[0] + off[0], h[1] + off[1], h[2] + off[2]]
            assert val == pytest.approx(est, abs=5 * sigma + 1e-5 * val), (comp, off)


def test_uniform_ball_kernel_gives_exact_constant_fractions():
    # Energy spread uniformly in a ball of radius R: energy per mm^3 = 3/(4 pi R^3). Every target
    # voxel whose pairs are all closer than R absorbs exactly 3 V / (4 pi R^3) (the overlap function
    # integrates to V^2). dF/dr = 3 r^2 / R^3 is represented by 0.004 mm shells; the
    # piecewise-constant density changes the result by O(dr^2) (1.8e-5 at 0.01 mm, 4.4e-4 at
    # 0.05 mm in a refinement study), ~3e-6 here; tolerance 1e-5 relative.
    R = 12.0
    edges = np.linspace(0.0, R, 3001)
    f = np.diff((edges / R) ** 3)
    a = np.array([2.0, 2.0, 3.0])
    af = absorbed_fractions(edges, f, a, (6, 6, 4))
    expected = 3.0 * np.prod(a) / (4.0 * np.pi * R**3)
    checked = 0
    for off in itertools.product(range(-6, 7), range(-6, 7), range(-4, 5)):
        far_corner = (np.abs(off) + 1) * a
        if np.linalg.norm(far_corner) <= R:
            val = af.fraction[0, 6 + off[0], 6 + off[1], 4 + off[2]]
            assert val == pytest.approx(expected, rel=1e-5), off
            checked += 1
    assert checked > 50
    # and the whole ball's energy is in the cube
    assert af.fraction.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("a", [(3.0, 3.0, 3.0), (4.0, 4.0, 2.0), (2.2, 3.3, 4.4)])
def test_absorbed_fractions_conserve_energy_when_the_cube_holds_the_kernel(a):
    # dF/dr uniform on [0, 6 mm]: the cube reaches beyond 6 mm, so all energy is absorbed.
    # Tolerance 1e-6 (quadrature error ~1e-9 per voxel).
    edges = np.concatenate([np.arange(0.0, 1.0, 0.05), np.arange(1.0, 6.0001, 0.25)])
    f = np.diff(edges) / 6.0
    h = [int(np.ceil(6.0 / ak)) + 1 for ak in a]
    af = absorbed_fractions(edges, f, a, h)
    assert af.fraction.sum() == pytest.approx(1.0, abs=1e-6)


def _symmetries(a):
    """Axis permutations that keep the voxel sides, and all 8 reflections."""
    perms = [p for p in itertools.permutations(range(3)) if np.allclose(np.asarray(a)[list(p)], a)]
    flips = list(itertools.product([False, True], repeat=3))
    return perms, flips


@pytest.mark.parametrize("a,h", [((3.0, 3.0, 3.0), (5, 5, 5)), ((4.0, 4.0, 2.0), (4, 4, 8)),
                                 ((2.0, 3.0, 4.0), (6, 4, 3))])
def test_cubes_have_the_symmetry_of_the_voxel(a, h):
    # 48-fold for cubes; reflections plus swaps of equal sides otherwise. Symmetry comes from the
    # octant mirroring and permutation classes; it must hold to rounding (1e-14 relative).
    af = absorbed_fractions(EDGES, np.stack([exp_fractions(2.0), exp_fractions(40.0)]), a, h)
    perms, flips = _symmetries(a)
    assert len(perms) == {1: 6, 2: 2, 3: 1}[len(set(a))]
    for cube in af.fraction:
        for p in perms:
            for fl in flips:
                other = np.transpose(cube, p)
                axes = tuple(i for i in range(3) if fl[i])
                other = np.flip(other, axis=axes) if axes else other
                assert np.allclose(other, cube, rtol=1e-14, atol=0)
    # a swap of unequal sides is not a symmetry: the neighbour across the smaller face gets more
    c = tuple(h)
    ax_small, ax_big = int(np.argmin(a)), int(np.argmax(a))
    if a[ax_small] != a[ax_big]:
        n_small = list(c)
        n_small[ax_small] += 1
        n_big = list(c)
        n_big[ax_big] += 1
        assert af.fraction[0][tuple(n_small)] > 1.01 * af.fraction[0][tuple(n_big)]


def test_anisotropic_path_reduces_to_the_cubic_result_when_sides_are_equal():
    # (3, 3, 3 + 1e-7) takes the anisotropic path (no z swaps); continuity to 1e-5 relative.
    f = np.stack([exp_fractions(2.0), exp_fractions(40.0)])
    cubic = absorbed_fractions(EDGES, f, 3.0, (4, 4, 4))
    aniso = absorbed_fractions(EDGES, f, (3.0, 3.0, 3.0 + 1e-7), (4, 4, 4))
    assert np.allclose(aniso.fraction, cubic.fraction, rtol=1e-5, atol=0)


def test_far_rule_agrees_with_radial_integration():
    # Targets beyond the near radius use a Cartesian rule on a PCHIP-smoothed kernel; doing every
    # target radially must agree within 1e-3 relative wherever the value exceeds 1e-6 of the
    # source voxel (below that, the two representations of a coarse-binned tail may differ).
    f = np.stack([exp_fractions(2.0), exp_fractions(40.0)])
    default = absorbed_fractions(EDGES, f, (4.0, 4.0, 2.0), (4, 4, 7))
    radial = absorbed_fractions(EDGES, f, (4.0, 4.0, 2.0), (4, 4, 7), near_radius_mm=1e3)
    assert default.n_near < radial.n_near
    for c in range(2):
        big = radial.fraction[c] > 1e-6 * radial.fraction[c].max()
        rel = np.abs(default.fraction[c][big] - radial.fraction[c][big]) / radial.fraction[c][big]
        assert rel.max() < 1e-3


def test_uncertainty_of_a_single_shell_kernel_is_the_shell_uncertainty():
    # All energy in one shell: every voxel's value is proportional to that shell, so its relative
    # uncertainty equals the shell's (exactly, to rounding).
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    f = np.array([0.0, 1.0, 0.0])
    af = absorbed_fractions(edges, f, 2.0, 2, rel_unc=np.array([0.5, 0.03, 0.5]))
    nz = af.fraction[0] > 0
    assert np.allclose(af.rel_unc[0][nz], 0.03, rtol=1e-9)


def test_uncertainties_of_independent_shells_add_in_quadrature():
    # Two shells with equal rel. uncertainty u: the voxel's relative uncertainty lies in [u/sqrt(2), u].
    edges = np.array([0.0, 0.5, 1.0])
    af = absorbed_fractions(edges, np.array([0.5, 0.5]), 3.0, 1, rel_unc=np.array([0.1, 0.1]))
    u000 = af.rel_unc[0, 1, 1, 1]
    assert 0.1 / np.sqrt(2) - 1e-12 <= u000 < 0.1


# ---------------------------------------------------------------------------------- S-values

def test_svalue_scale_reproduces_local_deposition_constants():
    # physics notes section 1: local deposition of all Lu-177 electron energy (147.9 keV) is
    # 2.370e-5 mGy*kg per MBq*s, Y-90 (933.1 keV) 1.495e-4.
    for e_mev, ref in ((0.1479, 2.370e-5), (0.9331, 1.495e-4)):
        a = 4.0
        mass_kg = 1.0 * a**3 * 1e-6
        assert svalue_scale_mgy_per_mbq_s(e_mev, 1.0, a) * mass_kg == pytest.approx(ref, rel=1e-3)


def synthetic_kernel(medium="tissue", density=1.04, e_mev=0.15, p_mev=0.04):
    fe = exp_fractions(0.5)
    fp = exp_fractions(60.0)
    z = np.full_like(fe, 0.01)
    return PointKernel(nuclide="Lu-177", medium=medium, density_g_per_ml=density, r_edges_mm=EDGES,
                       electron_fraction=fe, photon_fraction=fp, electron_rel_unc=z, photon_rel_unc=z,
                       electron_energy_mev=e_mev, photon_energy_mev=p_mev, provenance={"engine": "synthetic"})


def test_svalue_cubes_conserve_emitted_energy():
    # Electron cube sum x voxel mass = emitted electron energy per decay (within 1e-4: the 0.5 mm
    # exponential is fully inside); photon cube sum x mass = photon energy x fraction absorbed in
    # the cube, the latter estimated independently by numpy sampling (2e6 decays, 5 sigma).
    k = synthetic_kernel()
    a = np.array([4.0, 4.0, 2.0])
    sv = svalues_from_point_kernel(k, a, extent_mm=60.0)
    mass_kg = k.density_g_per_ml * np.prod(a) * 1e-6
    mev = 1.602176634e-4  # mGy kg per (MeV/decay) per MBq*s
    e_sum = sv.electron_mgy_per_mbq_s.sum() * mass_kg / mev
    assert e_sum == pytest.approx(k.electron_energy_mev * k.electron_fraction.sum(), rel=1e-4)
    h = np.array(sv.photon_mgy_per_mbq_s.shape) // 2
    rng = np.random.default_rng(3)
    n = 2_000_000
    idx = brute_force_targets(k.photon_fraction, a, n, rng)
    inside = np.mean(np.all(np.abs(idx) <= h, axis=1)) * k.photon_fraction.sum()
    p_sum = sv.photon_mgy_per_mbq_s.sum() * mass_kg / mev / k.photon_energy_mev
    assert p_sum == pytest.approx(inside, abs=5 * np.sqrt(inside * (1 - inside) / n))
    assert 0.5 < p_sum < 0.99  # the 60 mm photon kernel really leaks out of a 60 mm cube


def test_svalues_total_is_sum_of_components_and_photons_can_be_left_out():
    k = synthetic_kernel()
    sv = svalues_from_point_kernel(k, 4.8, extent_mm=30.0)
    assert np.allclose(sv.total_mgy_per_mbq_s, sv.electron_mgy_per_mbq_s + sv.photon_mgy_per_mbq_s)
    no_ph = svalues_from_point_kernel(k, 4.8, extent_mm=30.0, photons=False)
    assert np.all(no_ph.photon_mgy_per_mbq_s == 0)
    assert np.allclose(no_ph.electron_mgy_per_mbq_s, sv.electron_mgy_per_mbq_s, rtol=1e-12)


def test_svalues_scale_inversely_with_density_of_the_kernel_medium():
    # Same fractions, density 1.00 vs 1.04: S scales as 1/rho (no other density handling here).
    w = svalues_from_point_kernel(synthetic_kernel("water", 1.00), 3.0, extent_mm=10.0, photons=False)
    t = svalues_from_point_kernel(synthetic_kernel("tissue", 1.04), 3.0, extent_mm=10.0, photons=False)
    assert np.allclose(w.electron_mgy_per_mbq_s, 1.04 * t.electron_mgy_per_mbq_s, rtol=1e-12)


def test_bad_kernel_arrays_are_rejected():
    with pytest.raises(ValueError):
        absorbed_fractions([0.0, 1.0], [0.5, 0.5], 3.0, 1)
    with pytest.raises(ValueError):
        absorbed_fractions([0.0, 1.0, 0.5], [0.5, 0.5], 3.0, 1)
    with pytest.raises(ValueError):
        absorbed_fractions([0.0, 1.0], [-0.5], 3.0, 1)
    with pytest.raises(ValueError):
        absorbed_fractions([0.0, 1.0], [0.5], (3.0, 0.0, 1.0), 1)
