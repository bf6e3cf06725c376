"""The photon Monte Carlo (pipeline.dose.photon_transport) against independent references.

References, each with its tolerance:

- NIST attenuation coefficients: Hubbell & Seltzer, NISTIR 5632 (1995), tables of mu/rho
  (with coherent scattering) for liquid water and ICRU-44 cortical bone: the XCOM-built table
  within 1 % (measured: within 0.3 %).
- Klein-Nishina: the analytic differential cross section (numerical integration), against the
  closed-form total cross section (1e-10) and textbook values (0.4927 b at 100 keV, 0.2112 b at
  1 MeV), and against the sampler's angular histogram (chi-square) and mean energy transfer
  (4 standard errors).
- Attenuation through matter (Woodcock tracking in heterogeneous media): a point source in
  nested cubes of bone and lung with every interaction absorbing: the escaped fraction is the
  analytic uncollided transmission, integrated over directions by quadrature (4 standard errors).
- An isolated uniform sphere of pure absorber: the escape probability of Case, de Hoffmann &
  Placzek (1953) for a uniform source in a sphere (2 %: the staircase surface of the voxel sphere).
- Point source in water: the EGSnrc point kernel of the project (kernels/data/dpk, ompmc 0.4.0,
  2e6 photons, the same 300 mm cylinder): energy per shell at 10-25 cm within 3 % (issue: 10 %;
  measured -0.3 .. +0.9 %), in the whole cylinder within 1 % (the kernel's own statistics ~0.3 %,
  ours ~0.3 % per shell; its physics may differ from ours in binding and coherent scattering).
- Uniform spheres (R 4-15 cm) inside the same water cylinder: the EGSnrc point kernel folded
  with the geometric reduction factor of a sphere (Berger 1968, MIRD Pamphlet 2), within 2 %
  (measured -0.3 .. +0.6 %).
- Energy conservation: deposited + escaped = emitted to 1e-9 (exact bookkeeping), and a point
  source at the centre of a 1.2 m water cube deposits at least 99 % of its energy (radiation
  equilibrium: at most e^-6 of the 208 keV primaries cross 60 cm of water).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from kernels.decay import load_decay
from kernels.photon_data import PhotonMediaTable, load_media_table, material_index_from_density
from pipeline.dose.photon_transport import (PhotonSource, PhotonTransportSettings, photon_source,
                                            sample_klein_nishina, transport_photons)

#: NISTIR 5632 (Hubbell & Seltzer 1995), mu/rho in cm^2/g (with coherent scattering), by MeV.
HUBBELL_SELTZER = {
    "water": {0.03: 0.3756, 0.05: 0.2269, 0.1: 0.1707, 0.15: 0.1505, 0.2: 0.1370, 0.3: 0.1186},
    "tissue_bone_1.0": {0.03: 1.331, 0.05: 0.4242, 0.1: 0.1855, 0.15: 0.1480, 0.2: 0.1309, 0.3: 0.1113},
}
ELECTRON_REST_MEV = 0.51099895


def _mono(energy_mev: float) -> PhotonSource:
    return PhotonSource(np.array([energy_mev]), np.array([1.0]), 0.0, "mono")


def test_xcom_table_matches_hubbell_seltzer_within_1_percent():
    t = load_media_table()
    for medium, ref in HUBBELL_SELTZER.items():
        for e, mu in ref.items():
            c = t.coefficients_cm2_per_g(medium, e)
            assert sum(c.values()) == pytest.approx(mu, rel=0.01), (medium, e)


def test_klein_nishina_cross_section_and_electron_density():
    # the closed form against the integral of the differential cross section (numerical), and the
    # textbook values: 0.4927 b at 100 keV, 0.2112 b at 1 MeV; water 3.343e23 electrons per gram
    from kernels.photon_data import ELECTRON_RADIUS_CM, klein_nishina_cm2_per_electron

    x, w = np.polynomial.legendre.leggauss(200)
    for e in (0.05, 0.1129, 0.2084, 1.0):
        k = e / ELECTRON_REST_MEV
        integral = np.pi * ELECTRON_RADIUS_CM**2 * np.sum(w * _kn_per_cos(k, x))
        assert klein_nishina_cm2_per_electron(e) == pytest.approx(integral, rel=1e-10)
    assert klein_nishina_cm2_per_electron([0.1, 1.0]) * 1e24 == pytest.approx([0.4927, 0.2112], abs=2e-4)
    assert load_media_table().electrons_per_g[0] == pytest.approx(3.343e23, rel=1e-3)


def test_material_index_follows_the_bone_mass_fraction():
    rho = np.array([0.0, 0.3, 1.0, 1.06, 1.49, 1.92, 2.5])
    idx = material_index_from_density(rho)
    assert list(idx[:4]) == [1, 1, 1, 1] and idx[5] == 11 and idx[6] == 11
    # 1.49 g/mL: half the volume bone, w = 1.92 * 0.5 / 1.49 = 0.644 -> 0.6
    assert idx[4] == 1 + 6


@njit
def _sample_many(energy_mev, n, seed):
    state = np.zeros(1, np.uint64)
    state[0] = seed
    out = np.empty((n, 2))
    for i in range(n):
        e, c = sample_klein_nishina(energy_mev, state)
        out[i, 0] = e
        out[i, 1] = c
    return out


def _kn_per_cos(k, cos_t):
    p = 1.0 / (1.0 + k * (1.0 - cos_t))
    return p * p * (p + 1.0 / p - (1.0 - cos_t * cos_t))


@pytest.mark.parametrize("energy_mev", [0.1129, 0.2084, 0.1846])
def test_klein_nishina_sampler_matches_the_analytic_cross_section(energy_mev):
    k = energy_mev / ELECTRON_REST_MEV
    s = _sample_many(energy_mev, 200_000, 12345)
    # kinematics: E' = E / (1 + k (1 - cos))
    np.testing.assert_allclose(s[:, 0], energy_mev / (1 + k * (1 - s[:, 1])), rtol=1e-12)
    edges = np.linspace(-1, 1, 21)
    x, w = np.polynomial.legendre.leggauss(40)
    expected = []
    for a, b in zip(edges[:-1], edges[1:]):
        c = 0.5 * (b - a) * x + 0.5 * (a + b)
        expected.append(0.5 * (b - a) * np.sum(w * _kn_per_cos(k, c)))
    expected = np.array(expected) / np.sum(expected) * len(s)
    counts, _ = np.histogram(s[:, 1], edges)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 45.3  # 19 degrees of freedom, p = 0.001
    # mean fraction of the energy given to the electron
    xx, ww = np.polynomial.legendre.leggauss(200)
    f = _kn_per_cos(k, xx)
    transfer = np.sum(ww * f * (1 - 1 / (1 + k * (1 - xx)))) / np.sum(ww * f)
    got = 1 - s[:, 0] / energy_mev
    assert got.mean() == pytest.approx(transfer, abs=4 * got.std() / np.sqrt(len(got)))


def _absorber_table() -> PhotonMediaTable:
    """The committed media with every interaction an absorption (same total attenuation)."""
    t = load_media_table()
    total = t.photoelectric_cm2_per_g + t.incoherent_cm2_per_g + t.coherent_cm2_per_g
    zero = np.zeros_like(total)
    return PhotonMediaTable(t.names, t.energy_mev, total, zero, zero, t.bone_mass_fraction, t.provenance,
                            np.zeros(len(t.names)))


@pytest.mark.parametrize("energy_mev", [0.1, 0.2])
def test_uncollided_transmission_through_bone_and_lung_is_the_analytic_attenuation(energy_mev):
    table = _absorber_table()
    h, n, inner = 2.0, 61, 21
    rho = np.full((n, n, n), 0.3)  # lung-like
    lo = (n - inner) // 2
    rho[lo:lo + inner, lo:lo + inner, lo:lo + inner] = 1.85  # cortical-bone-like
    mat = material_index_from_density(rho)
    src = np.zeros(rho.shape)
    src[n // 2, n // 2, n // 2] = 1.0
    nhist = 200_000
    res = transport_photons(rho, mat, (h, h, h), src, _mono(energy_mev), table=table,
                            settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=nhist))
    def mu(m):  # cm^2/g
        return sum(table.coefficients_cm2_per_g(table.names[int(m)], energy_mev).values())

    a, b = inner * h / 20.0, n * h / 20.0  # half-sides, cm
    tau = mu(mat[n // 2, n // 2, n // 2]) * 1.85 * a + mu(mat[0, 0, 0]) * 0.3 * (b - a)
    # escape = 6/(4 pi) * integral over one face of exp(-tau s) / s^3, s = sqrt(1 + u^2 + v^2)
    x, w = np.polynomial.legendre.leggauss(64)
    u, v = np.meshgrid(x, x, indexing="ij")
    s = np.sqrt(1 + u * u + v * v)
    escape = 6 / (4 * np.pi) * np.sum(np.outer(w, w) * np.exp(-tau * s) / s**3)
    got = res.energy_escaped_j / res.energy_emitted_j
    se = np.sqrt(escape * (1 - escape) / nhist)
    assert got == pytest.approx(escape, abs=4 * se), (got, escape)
    assert res.energy_deposited_j + res.energy_escaped_j == pytest.approx(res.energy_emitted_j, rel=1e-9)


def _case_escape(tau):
    """Escape probability from a uniform source in a sphere of optical radius tau (Case et al. 1953)."""
    return 3 / (8 * tau**3) * (2 * tau**2 - 1 + (1 + 2 * tau) * np.exp(-2 * tau))


def test_isolated_uniform_sphere_of_pure_absorber_escapes_as_case_de_hoffmann_placzek():
    # the closed form against its own quadrature (mean of exp(-mu * chord to the surface))
    rng = np.random.default_rng(1)
    p = rng.normal(size=(200_000, 3))
    r = rng.random(200_000) ** (1 / 3)
    pos = p / np.linalg.norm(p, axis=1)[:, None] * r[:, None]
    d = rng.normal(size=(200_000, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    pd = np.sum(pos * d, axis=1)
    chord = -pd + np.sqrt(pd**2 - np.sum(pos * pos, axis=1) + 1)
    assert np.mean(np.exp(-1.3 * chord)) == pytest.approx(_case_escape(1.3), rel=0.01)
    table = _absorber_table()
    h, radius_mm = 2.0, 60.0
    n = int(2 * radius_mm / h) + 3
    c = (np.arange(n) - (n - 1) / 2) * h
    X, Y, Z = np.meshgrid(c, c, c, indexing="ij")
    inside = X**2 + Y**2 + Z**2 <= radius_mm**2
    rho = np.where(inside, 1.0, 0.0)
    mat = np.ones(rho.shape, np.uint8)
    r_eq_cm = (3 * inside.sum() * h**3 / (4 * np.pi)) ** (1 / 3) / 10  # the voxel sphere's volume
    for e in (0.1, 0.2):
        res = transport_photons(rho, mat, (h, h, h), inside.astype(float), _mono(e), table=table,
                                settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=200_000))
        mu = sum(table.coefficients_cm2_per_g("soft_tissue_icru4", e).values())
        assert res.energy_escaped_j / res.energy_emitted_j == pytest.approx(_case_escape(mu * r_eq_cm), rel=0.02)


def _cylinder(h=4.0, n=151):
    c = (np.arange(n) - n // 2) * h
    X, Y, Z = np.meshgrid(c, c, c, indexing="ij")
    rho = np.where((X**2 + Y**2 <= 300.0**2) & (np.abs(Z) <= 300.0), 1.0, 0.0)
    return rho, np.sqrt(X**2 + Y**2 + Z**2), h


@pytest.fixture(scope="module")
def cylinder():
    return _cylinder()


@pytest.mark.parametrize("nuclide", ["Lu-177", "Cu-67"])
def test_point_source_dose_at_10_to_25_cm_matches_the_egsnrc_point_kernel(cylinder, nuclide):
    from kernels.kernel_data import load_point_kernel

    rho, r, h = cylinder
    n = rho.shape[0]
    src = np.zeros(rho.shape)
    src[n // 2, n // 2, n // 2] = 1.0
    res = transport_photons(rho, np.zeros(rho.shape, np.uint8), (h, h, h), src, photon_source(load_decay(nuclide)),
                            settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=400_000,
                                                             batch_histories=50_000))
    energy = res.dose_gy * rho * h**3 * 1e-6  # J per voxel
    k = load_point_kernel(nuclide, "water")
    cum = np.concatenate([[0.0], np.cumsum(k.photon_fraction)])
    for a, b in ((100, 150), (150, 200), (200, 250)):
        mine = energy[(r >= a) & (r < b)].sum() / res.energy_emitted_j
        ref = np.interp(b, k.r_edges_mm, cum) - np.interp(a, k.r_edges_mm, cum)
        print(f"{nuclide} {a}-{b} mm: {mine:.5f} vs EGSnrc {ref:.5f} ({100 * (mine / ref - 1):+.2f} %)")
        assert mine == pytest.approx(ref, rel=0.03), (a, b)
    in_cylinder = k.provenance["photon_run"]["fraction_in_cylinder"]
    assert res.energy_deposited_j / res.energy_emitted_j == pytest.approx(in_cylinder, rel=0.01)
    assert res.energy_deposited_j + res.energy_escaped_j == pytest.approx(res.energy_emitted_j, rel=1e-9)


def _sphere_reduction(r, radius):
    """Mean probability that a point at distance r from a uniform point of a sphere lies in it."""
    x = np.minimum(r / radius, 2.0)
    return np.where(r < 2 * radius, 1 - 0.75 * x + x**3 / 16, 0.0)


@pytest.mark.parametrize("nuclide", ["Lu-177", "Cu-67"])
def test_absorbed_fraction_of_uniform_spheres_in_water_matches_the_egsnrc_kernel(cylinder, nuclide):
    from kernels.kernel_data import load_point_kernel

    rho, r, h = cylinder
    k = load_point_kernel(nuclide, "water")
    edges = np.asarray(k.r_edges_mm)
    src = photon_source(load_decay(nuclide))
    for radius in (40.0, 60.0, 100.0, 150.0):
        inside = r <= radius
        res = transport_photons(rho, np.zeros(rho.shape, np.uint8), (h, h, h), inside.astype(float), src,
                                settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=200_000,
                                                                 batch_histories=25_000))
        mine = (res.dose_gy * inside).sum() * h**3 * 1e-6 / res.energy_emitted_j
        r_eq = (3 * inside.sum() * h**3 / (4 * np.pi)) ** (1 / 3)
        # the kernel's shells, each averaged over 8 radii
        rr = edges[:-1, None] + (np.arange(8) + 0.5)[None, :] / 8 * np.diff(edges)[:, None]
        ref = float(np.sum(k.photon_fraction * _sphere_reduction(rr, r_eq).mean(axis=1)))
        print(f"{nuclide} R {radius / 10:.0f} cm: absorbed fraction {mine:.4f} vs EGSnrc kernel {ref:.4f} "
              f"({100 * (mine / ref - 1):+.2f} %)")
        assert mine == pytest.approx(ref, rel=0.02), radius


def test_large_water_phantom_conserves_energy_and_absorbs_nearly_all_of_it():
    h, n = 12.0, 101  # 1.21 m cube
    rho = np.ones((n, n, n))
    src = np.zeros(rho.shape)
    src[n // 2, n // 2, n // 2] = 1.0
    res = transport_photons(rho, np.zeros(rho.shape, np.uint8), (h, h, h), src, photon_source(load_decay("Lu-177")),
                            settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=200_000))
    assert res.energy_deposited_j + res.energy_escaped_j == pytest.approx(res.energy_emitted_j, rel=1e-9)
    assert (res.dose_gy * rho).sum() * h**3 * 1e-6 == pytest.approx(res.energy_deposited_j, rel=1e-9)
    assert res.energy_deposited_j / res.energy_emitted_j > 0.99


def test_same_result_on_any_number_of_threads_and_each_seed_its_own():
    import numba

    rho = np.ones((30, 30, 30))
    src = np.zeros(rho.shape)
    src[10:20, 10:20, 10:20] = 1.0
    kw = dict(settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=100_000, batch_histories=10_000))
    mat = np.ones(rho.shape, np.uint8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = transport_photons(rho, mat, (4.0,) * 3, src, photon_source(load_decay("Lu-177")), **kw)
        numba.set_num_threads(before)
        many = transport_photons(rho, mat, (4.0,) * 3, src, photon_source(load_decay("Lu-177")), **kw)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.dose_gy, many.dose_gy)
    other = transport_photons(rho, mat, (4.0,) * 3, src, photon_source(load_decay("Lu-177")),
                              settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=100_000,
                                                               batch_histories=10_000, seed=7))
    assert not np.array_equal(one.dose_gy, other.dose_gy)


def test_lines_below_the_cut_are_deposited_where_they_are_emitted():
    cu = load_decay("Cu-67")
    src = photon_source(cu)
    assert src.energy_mev.min() >= 0.005 and src.local_energy_mev_per_decay > 0
    total = src.transported_energy_mev_per_decay + src.local_energy_mev_per_decay
    assert total == pytest.approx(cu.photon_energy_mev, rel=1e-12)
    # a vacuum grid: every transported photon escapes, the local lines stay
    rho = np.zeros((5, 5, 5))
    rho[2, 2, 2] = 1.0
    dec = np.zeros(rho.shape)
    dec[2, 2, 2] = 1.0
    res = transport_photons(rho, np.ones(rho.shape, np.uint8), (1e-3,) * 3, dec, src,
                            settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=100_000))
    local_j = 1e6 * src.local_energy_mev_per_decay * 1.602176634e-13
    assert res.energy_deposited_j == pytest.approx(local_j, rel=1e-3)


def test_stopping_rule_reaches_the_target_on_every_region():
    rho = np.ones((40, 40, 40))
    src = np.zeros(rho.shape)
    src[15:25, 15:25, 15:25] = 1.0
    regions = np.zeros(rho.shape, np.int64)
    regions[15:25, 15:25, 15:25] = 1
    regions[28:34, 28:34, 28:34] = 2  # outside the source: fewer photons
    res = transport_photons(rho, np.ones(rho.shape, np.uint8), (5.0,) * 3, src, photon_source(load_decay("Lu-177")),
                            regions=regions, settings=PhotonTransportSettings(target_rel_sd=0.02,
                                                                              max_histories=2_000_000,
                                                                              batch_histories=10_000))
    assert set(res.region_rel_sd) == {1, 2}
    assert max(res.region_total_rel_sd.values()) <= 0.02
    assert res.info["batches"] > 8  # the pilot batches were not enough: the rule asked for more
    assert res.region_rel_sd[2] > res.region_rel_sd[1]
    assert res.histories < 2_000_000


def test_photon_dose_in_lung_is_the_dose_to_lung_not_the_water_dose_over_its_density():
    # Reference: for the same photon fluence the absorbed dose per mass is the same in lung and in
    # soft tissue (equal mu_en/rho; ICRP lung has the elements of soft tissue). A lung slab lets more
    # primaries through but scatters less itself, so the photon dose in a lung slab 6-10 cm from a
    # source stays near the dose at the same place in water, far from the 1/rho (x 3.8) of a water
    # kernel with density correction. Tolerance: 0.7-1.3 times the water value (measured 0.92).
    h, n = 5.0, 61
    src = np.zeros((n, n, n))
    src[28:33, 28:33, 28:33] = 1.0
    water = np.ones((n, n, n))
    lung = water.copy()
    lung[:, :, 42:50] = 0.26  # a 40 mm lung slab 55-95 mm from the source's centre
    s = PhotonTransportSettings(target_rel_sd=0.0, max_histories=400_000, batch_histories=50_000)
    src_lines = photon_source(load_decay("Lu-177"))
    d_w = transport_photons(water, material_index_from_density(water), (h,) * 3, src, src_lines, settings=s)
    d_l = transport_photons(lung, material_index_from_density(lung), (h,) * 3, src, src_lines, settings=s)
    slab = (slice(25, 36), slice(25, 36), slice(43, 49))
    ratio = d_l.dose_gy[slab].mean() / d_w.dose_gy[slab].mean()
    print(f"lung slab / water: {ratio:.3f}")
    assert 0.7 < ratio < 1.3


def test_photons_born_in_vacuum_reach_the_matter_by_its_solid_angle():
    # A source in vacuum 39 mm in front of the 120 mm square face of a dense absorber (every
    # interaction absorbs; mean free path 0.27 mm, so photons entering near the edge cannot leave
    # through the sides): the absorbed fraction is the face's solid angle over 4 pi,
    # 4 arcsin(a^2 / (a^2 + 4 d^2)) / (4 pi) (on-axis square). Tests the flight from a source
    # outside the box of matter into it. Tolerance 4 SD.
    table = _absorber_table()
    h = 2.0
    rho = np.zeros((60, 60, 80))
    rho[:, :, 40:] = 200.0
    mat = np.full(rho.shape, 11, np.uint8)
    src = np.zeros(rho.shape)
    src[30, 30, 20] = 1.0  # centre 61 mm, 61 mm, 41 mm; the face at z = 80 mm
    n = 200_000
    res = transport_photons(rho, mat, (h, h, h), src, _mono(0.1), table=table,
                            settings=PhotonTransportSettings(target_rel_sd=0.0, max_histories=n))
    a, d = 120.0, 39.0
    expected = 4 * np.arcsin(a**2 / (a**2 + 4 * d**2)) / (4 * np.pi)
    got = res.energy_deposited_j / res.energy_emitted_j
    assert got == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / n))
