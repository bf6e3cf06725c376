"""Physics validation of the committed kernel data and of the point-kernel integration.

References (../shared/notes/physics.md section 3):

- Lanconelli N et al., "A free database of radionuclide voxel S values for the dosimetry of
  nonuniform activity distributions", Phys Med Biol 2012;57:517-533 (DOSXYZnrc, soft tissue).
- MIRD Pamphlet No. 17, Bolch WE et al., J Nucl Med 1999;40:11S-36S (soft tissue).

Each test skips, naming the file, when the committed data it needs are absent.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from kernels.decay import load_decay
from kernels.kernel_data import (MEDIA, available_voxel_svalues, data_dir, dpk_path, load_point_kernel,
                                 load_voxel_svalues, vsv_path)
from kernels.vsv import MEV_PER_MBQ_S_TO_MGY_KG, svalues_from_point_kernel

NUCLIDES = ("Cu-67", "Lu-177", "Y-90")
#: Direct Monte Carlo cubes contracted by the issue (tests skip, naming the file, when one is absent),
#: plus any other committed size.
DIRECT_SIZES_MM = (3.0, 3.9, 4.42, 4.7952, 4.8)
DIRECT_CASES = sorted(set(itertools.product(NUCLIDES, MEDIA, DIRECT_SIZES_MM))
                      | {c for c in available_voxel_svalues() if c[0] in NUCLIDES})

# Lanconelli 2012, soft tissue, mGy/(MBq*s): S000, S001, S011 (physics notes section 3).
LANCONELLI = {
    ("Y-90", 3.0): (1.59, 0.275, 0.0950),
    ("Y-90", 4.8): (0.573, 0.0763, 0.0178),
    ("Y-90", 6.0): (0.342, 0.0380, 6.86e-3),
    ("Lu-177", 4.8): (0.178, 2.46e-3, 8.65e-5),
}
# MIRD Pamphlet 17, Y-90 soft tissue S000, mGy/(MBq*s).
MIRD17_Y90_S000 = {3.0: 1.61, 6.0: 0.346}
OFFSETS = ((0, 0, 0), (0, 0, 1), (0, 1, 1))


def _require(path):
    if not path.exists():
        pytest.skip(f"committed kernel data {path.relative_to(data_dir().parent)} not present")


@functools.lru_cache(maxsize=None)
def point_kernel(nuclide, medium):
    _require(dpk_path(nuclide, medium))
    return load_point_kernel(nuclide, medium)


@functools.lru_cache(maxsize=None)
def integrated(nuclide, medium, size, extent_mm=None):
    """S-values integrated from the committed point kernel (no user cache involved)."""
    return svalues_from_point_kernel(point_kernel(nuclide, medium), size, extent_mm=extent_mm)


@functools.lru_cache(maxsize=None)
def direct(nuclide, medium, size):
    _require(vsv_path(nuclide, medium, size))
    return load_voxel_svalues(nuclide, medium, size)


def direct_beta_only(nuclide, medium, size):
    """The beta-spectrum-only direct cube (validation run of the Monte Carlo CLI), as arrays."""
    path = data_dir() / "validation" / "vsv" / vsv_path(nuclide, medium, size).name.replace(".npz", "_beta-only.npz")
    _require(path)
    with np.load(path) as z:
        return {k: np.asarray(z[k], dtype=float) for k in z.files}


def at(cube, offset):
    """Value at ``offset`` from the centre voxel."""
    c = np.array(cube.shape) // 2
    return float(np.asarray(cube)[tuple(c + np.asarray(offset))])


def orbit_at(cube, offset):
    """Mean over the voxels equivalent to ``offset`` under the 48 symmetries of a cube (e.g. the six
    face neighbours for (0, 0, 1)): the best estimate from a Monte Carlo cube."""
    vals = {tuple(np.array(p) * np.array(sg)) for p in itertools.permutations(offset)
            for sg in itertools.product([1, -1], repeat=3)}
    return float(np.mean([at(cube, v) for v in vals]))


def mass_kg(size, medium):
    return MEDIA[medium] * size**3 * 1e-6


# ------------------------------------------------------------------ published values

# The Y-90 point kernel is scored in 1 mm cells and unfolded exactly (kernels/data/README.md): in
# 0.13 mm cells the engine put S000 3.4 % low at 3 mm and S011 3.5 % high at 6 mm, outside 3 %.
@pytest.mark.parametrize("size", [3.0, 4.8, 6.0])
def test_y90_integrated_svalues_match_lanconelli_within_3_percent(size):
    # 3 % is the tolerance; published codes differ by 2-3 % in the Y-90 source voxel.
    sv = integrated("Y-90", "tissue", size, 2 * size)
    for off, ref in zip(OFFSETS, LANCONELLI[("Y-90", size)]):
        assert at(sv.total_mgy_per_mbq_s, off) == pytest.approx(ref, rel=0.03), off


@pytest.mark.parametrize("size", [3.0, 4.8, 6.0])
def test_y90_direct_svalues_match_lanconelli_within_3_percent(size):
    sv = direct("Y-90", "tissue", size)
    for off, ref in zip(OFFSETS, LANCONELLI[("Y-90", size)]):
        assert orbit_at(sv.total_mgy_per_mbq_s, off) == pytest.approx(ref, rel=0.03), off


@pytest.mark.parametrize("size", [3.0, 6.0])
def test_y90_integrated_source_voxel_matches_mird17_within_3_percent(size):
    ref = MIRD17_Y90_S000[size]
    assert at(integrated("Y-90", "tissue", size, 2 * size).total_mgy_per_mbq_s, (0, 0, 0)) == pytest.approx(ref, rel=0.03)


@pytest.mark.parametrize("size", [3.0, 6.0])
def test_y90_direct_source_voxel_matches_mird17_within_3_percent(size):
    ref = MIRD17_Y90_S000[size]
    assert at(direct("Y-90", "tissue", size).total_mgy_per_mbq_s, (0, 0, 0)) == pytest.approx(ref, rel=0.03)


def test_lu177_beta_plus_photon_direct_cube_matches_lanconelli_within_5_percent():
    # Like with like: Lanconelli's Lu-177 matches beta + photons without conversion/Auger electrons.
    # Electrons from the beta-only validation cube, photons from the committed full photon cube
    # (the beta-only run's own photon cube has low statistics, kernels/data/README.md).
    electrons = direct_beta_only("Lu-177", "tissue", 4.8)["electron_mgy_per_mbq_s"]
    photons = direct("Lu-177", "tissue", 4.8).photon_mgy_per_mbq_s
    for off, ref in zip(OFFSETS, LANCONELLI[("Lu-177", 4.8)]):
        val = orbit_at(electrons, off) + orbit_at(photons, off)
        assert val == pytest.approx(ref, rel=0.05), off


def test_lu177_integrated_source_voxel_without_conversion_electrons_matches_lanconelli_within_5_percent():
    # The committed kernel is the full decay. Conversion and Auger electrons of Lu-177 (14.6 keV per
    # decay, <= 0.2 MeV, CSDA range <= 0.4 mm) stay in a 4.8 mm voxel with a fraction between 0.95 and
    # 1 (straight-line escape bound 3R/(4a) <= 6 %); taking 0.975 leaves a systematic of +-0.4 % of S000.
    sv = integrated("Lu-177", "tissue", 4.8, 9.6)
    d = load_decay("Lu-177")
    e_ce = d.conversion_energy_mev + d.auger_energy_mev
    ce_local = 0.975 * e_ce * MEV_PER_MBQ_S_TO_MGY_KG / mass_kg(4.8, "tissue")
    s000_beta_photons = at(sv.total_mgy_per_mbq_s, (0, 0, 0)) - ce_local
    assert s000_beta_photons == pytest.approx(LANCONELLI[("Lu-177", 4.8)][0], rel=0.05)
    # S001: conversion electrons hardly reach the neighbour (< 1e-3 of S000); compare directly.
    assert at(sv.total_mgy_per_mbq_s, (0, 0, 1)) == pytest.approx(LANCONELLI[("Lu-177", 4.8)][1], rel=0.05)


def test_lu177_full_decay_source_voxel_is_about_8_percent_above_lanconelli():
    # Physics notes: a full-decay Lu-177 kernel comes out about 8 % higher in S000 than Lanconelli's
    # beta + photon value; accepted band 4-12 % (the 5 % comparison tolerance around +8 %).
    ref = LANCONELLI[("Lu-177", 4.8)][0]
    ratio = at(integrated("Lu-177", "tissue", 4.8, 9.6).total_mgy_per_mbq_s, (0, 0, 0)) / ref
    assert 1.04 <= ratio <= 1.12
    if vsv_path("Lu-177", "tissue", 4.8).exists():
        ratio_direct = orbit_at(direct("Lu-177", "tissue", 4.8).total_mgy_per_mbq_s, (0, 0, 0)) / ref
        assert 1.04 <= ratio_direct <= 1.12


# ------------------------------------------------------------------ energy conservation

def _fraction_inside_cube(kernel_fraction, edges, size, half_width, n=1_000_000, seed=0):
    """Fraction of a radial kernel's energy emitted uniformly in the central voxel that lands inside the
    (2h+1)^3 cube: numpy sampling of the shell histogram (uniform in r within a shell)."""
    rng = np.random.default_rng(seed)
    f = np.asarray(kernel_fraction, float)
    b = rng.choice(len(f), size=n, p=f / f.sum())
    r = edges[b] + rng.random(n) * (edges[b + 1] - edges[b])
    x = (rng.random((n, 3)) - 0.5) * size
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    inside = np.all(np.abs(x + r[:, None] * u) < (half_width + 0.5) * size, axis=1)
    return float(np.mean(inside)) * f.sum()


@pytest.mark.parametrize("nuclide,medium", list(itertools.product(NUCLIDES, MEDIA)))
def test_integrated_cubes_conserve_emitted_electron_energy_within_1_percent(nuclide, medium):
    # Electron cube (100 mm reach, bremsstrahlung tail included) sum x voxel mass = emitted electron
    # energy per decay within 1 % (the tolerance; Y-90 loses 0.2 % beyond 100 mm).
    k = point_kernel(nuclide, medium)
    sv = integrated(nuclide, medium, 4.8)
    absorbed = sv.electron_mgy_per_mbq_s.sum() * mass_kg(4.8, medium) / MEV_PER_MBQ_S_TO_MGY_KG
    assert absorbed == pytest.approx(k.electron_energy_mev, rel=0.01)


@pytest.mark.parametrize("nuclide,medium", list(itertools.product(("Cu-67", "Lu-177"), MEDIA)))
def test_integrated_photon_cubes_hold_the_photon_energy_absorbed_within_their_extent(nuclide, medium):
    # Photon cube sum x mass = photon energy x fraction absorbed inside the cube; that fraction from
    # numpy sampling of the kernel (1e6 decays, 0.1 % sigma). Tolerance 1 %.
    k = point_kernel(nuclide, medium)
    sv = integrated(nuclide, medium, 4.8)
    h = sv.photon_mgy_per_mbq_s.shape[0] // 2
    absorbed = sv.photon_mgy_per_mbq_s.sum() * mass_kg(4.8, medium) / MEV_PER_MBQ_S_TO_MGY_KG
    expected = k.photon_energy_mev * _fraction_inside_cube(k.photon_fraction, k.r_edges_mm, 4.8, h)
    assert absorbed == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("nuclide,medium,size", DIRECT_CASES)
def test_direct_cubes_conserve_energy(nuclide, medium, size):
    # Direct Monte Carlo: electron cube sum x mass = emitted electron energy (ICRP-107) within 1 %; photon cube
    # sum x mass = photon energy x fraction the point kernel deposits inside the same cube extent,
    # within 3 % (two independent Monte Carlo runs, photon statistics ~1 % each).
    sv = direct(nuclide, medium, size)
    m = mass_kg(size, medium)
    e_abs = np.sum(sv.electron_mgy_per_mbq_s, dtype=float) * m / MEV_PER_MBQ_S_TO_MGY_KG
    assert e_abs == pytest.approx(load_decay(nuclide).electron_energy_mev, rel=0.01)
    if np.asarray(sv.photon_mgy_per_mbq_s).size > 1 and load_decay(nuclide).photon_energy_mev > 1e-3:
        k = point_kernel(nuclide, medium)
        h = sv.photon_mgy_per_mbq_s.shape[0] // 2
        p_abs = np.sum(sv.photon_mgy_per_mbq_s, dtype=float) * m / MEV_PER_MBQ_S_TO_MGY_KG
        expected = k.photon_energy_mev * _fraction_inside_cube(k.photon_fraction, k.r_edges_mm, size, h)
        assert p_abs == pytest.approx(expected, rel=0.03)


# ------------------------------------------------------------------ the two routes

@pytest.mark.parametrize("nuclide,medium,size", DIRECT_CASES)
def test_direct_monte_carlo_and_point_kernel_integration_agree_within_3_percent(nuclide, medium, size):
    # The requirement for S000 and S001 (electrons + photons); the direct S001 is the mean of
    # the six face neighbours (statistical uncertainty ~0.2-0.4 %).
    dsv = direct(nuclide, medium, size)
    isv = integrated(nuclide, medium, size, 2 * size)
    for off in OFFSETS[:2]:
        assert at(isv.total_mgy_per_mbq_s, off) == pytest.approx(orbit_at(dsv.total_mgy_per_mbq_s, off), rel=0.03), off


@pytest.mark.parametrize("medium,size", [("tissue", 3.0), ("tissue", 4.8), ("tissue", 6.0), ("water", 3.0),
                                         ("water", 4.8)])
def test_y90_point_kernel_source_voxel_agrees_with_direct_cube_within_1_percent(medium, size):
    # Regression guard for the scoring-geometry deficiency (kernels/data/README.md): the fine-cell kernel
    # was 1.3-2.2 % below the direct cubes in S000. Budget for 1 %: statistics of the two runs (~0.2 %
    # each), shell-histogram and unfolding error of the 0.2 mm shells (< 0.3 %, README), and the engine's
    # remaining dependence on its region size (1 mm cells here, the voxel size in the direct run).
    dsv = direct("Y-90", medium, size)
    isv = integrated("Y-90", medium, size, 2 * size)
    assert at(isv.total_mgy_per_mbq_s, (0, 0, 0)) == pytest.approx(at(dsv.total_mgy_per_mbq_s, (0, 0, 0)), rel=0.01)


# ------------------------------------------------------------------ symmetry and anisotropy

def _orbit_mean(cube):
    """Mean over the 48 symmetries of a cube (8 reflections x 6 axis permutations)."""
    acc = np.zeros(cube.shape)
    for perm in itertools.permutations(range(3)):
        t = np.transpose(cube, perm)
        for flips in itertools.product([False, True], repeat=3):
            axes = tuple(i for i in range(3) if flips[i])
            acc += np.flip(t, axis=axes) if axes else t
    return acc / 48.0


@pytest.mark.parametrize("nuclide,medium,size", DIRECT_CASES)
def test_direct_cubes_are_symmetric_within_their_statistical_uncertainty(nuclide, medium, size):
    # Monte Carlo cubes are symmetric only statistically. (1) The centre of the deposited energy
    # lies at the source voxel's centre: per axis within 5 sigma (sigma from the voxel
    # uncertainties) and within 5 % of a voxel side (a source or grid offset would show here).
    # (2) Each voxel's deviation from the mean of its 48 symmetric partners, z in units of its own
    # 1-sigma. 10-batch sigmas follow Student's t (9 degrees of freedom, median |z| 0.70) and are
    # often too small for skewed photon/bremsstrahlung deposits, so: median |z| < 1.5 over voxels
    # with relative uncertainty < 5 % (sigmas right within about 2x), and max |z| < 8 where the
    # uncertainty is < 2 % (a local asymmetry of several sigma).
    sv = direct(nuclide, medium, size)
    for cube, unc in ((sv.electron_mgy_per_mbq_s, sv.electron_rel_unc), (sv.photon_mgy_per_mbq_s, sv.photon_rel_unc)):
        cube = np.asarray(cube, float)
        unc = np.asarray(unc, float)
        if cube.size == 1:
            continue
        assert all(n % 2 == 1 for n in cube.shape) and len(set(cube.shape)) == 1
        g = (np.arange(cube.shape[0]) - cube.shape[0] // 2) * size
        for axis in range(3):
            shape = [1, 1, 1]
            shape[axis] = -1
            x = g.reshape(shape)
            centre = np.sum(x * cube) / cube.sum()
            sigma = np.sqrt(np.sum((x * cube * unc) ** 2)) / cube.sum()
            assert abs(centre) < 5 * sigma and abs(centre) < 0.05 * size, (axis, centre, sigma)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(cube - _orbit_mean(cube)) / (cube * unc)
        usable = (cube > 0) & (unc > 0)
        assert np.count_nonzero(usable & (unc < 0.05)) >= 5
        assert np.median(z[usable & (unc < 0.05)]) < 1.5
        assert np.max(z[usable & (unc < 0.02)], initial=0.0) < 8.0


@pytest.mark.parametrize("nuclide", NUCLIDES)
def test_integrated_cubes_have_exact_cubic_and_anisotropic_symmetry(nuclide):
    cube = integrated(nuclide, "tissue", 4.8, 24.0).total_mgy_per_mbq_s
    assert np.allclose(_orbit_mean(cube), cube, rtol=1e-12, atol=0)
    aniso = integrated(nuclide, "tissue", (4.0, 4.0, 2.0), 24.0).total_mgy_per_mbq_s
    for flips in itertools.product([False, True], repeat=3):
        axes = tuple(i for i in range(3) if flips[i])
        other = np.flip(aniso, axis=axes) if axes else aniso
        assert np.allclose(other, aniso, rtol=1e-12, atol=0)
        assert np.allclose(np.transpose(other, (1, 0, 2)), aniso, rtol=1e-12, atol=0)


@pytest.mark.parametrize("nuclide", NUCLIDES)
def test_anisotropic_voxels_conserve_energy_and_reduce_to_the_cubic_result(nuclide):
    k = point_kernel(nuclide, "tissue")
    sv = integrated(nuclide, "tissue", (4.0, 4.0, 2.0))
    m = MEDIA["tissue"] * 32.0 * 1e-6
    absorbed = sv.electron_mgy_per_mbq_s.sum() * m / MEV_PER_MBQ_S_TO_MGY_KG
    assert absorbed == pytest.approx(k.electron_energy_mev, rel=0.01)
    near_cubic = integrated(nuclide, "tissue", (4.0, 4.0, 4.0 + 1e-6), 8.0).total_mgy_per_mbq_s
    cubic = integrated(nuclide, "tissue", 4.0, 8.0).total_mgy_per_mbq_s
    assert np.allclose(near_cubic, cubic, rtol=1e-5)
