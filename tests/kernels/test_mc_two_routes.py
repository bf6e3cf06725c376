"""Two routes to the same voxel S-values must agree: the committed direct Monte Carlo cubes
(voxel phantom, source uniform in the central voxel) and the committed radial point kernels
(separate cylinder runs), integrated over source and target voxels.

The integration here is deliberately simple and independent of kernels' own integrator:
S(t<-s) = E/m_t * sum_i F_i * P_st(shell i), with P_st the probability that a point at a distance
uniform in shell i, random direction, from a uniform point of voxel s falls in voxel t, estimated
by sampling (fixed seed).
"""

import numpy as np
import pytest

from kernels.kernel_data import MEDIA, available_voxel_svalues, load_point_kernel, load_voxel_svalues

MEV_TO_J = 1.602176634e-13


def _shell_probabilities(r_edges_mm, a_mm, n_per_shell=6000, seed=0):
    """P(self voxel) and P(one given face neighbour) for each shell; shells beyond a*sqrt(6) get 0."""
    rng = np.random.default_rng(seed)
    n_shell = r_edges_mm.size - 1
    p0, p1 = np.zeros(n_shell), np.zeros(n_shell)
    use = np.flatnonzero(r_edges_mm[:-1] < a_mm * np.sqrt(6.0))
    m = n_per_shell
    for i in use:
        src = (rng.random((m, 3)) - 0.5) * a_mm
        cos_t = 2 * rng.random(m) - 1
        phi = 2 * np.pi * rng.random(m)
        sin_t = np.sqrt(1 - cos_t ** 2)
        d = np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
        r = rng.uniform(r_edges_mm[i], r_edges_mm[i + 1], m)
        idx = np.floor((src + r[:, None] * d) / a_mm + 0.5).astype(int)
        absval = np.abs(idx)
        p0[i] = np.mean(np.all(idx == 0, axis=1))
        face = (absval.sum(axis=1) == 1)
        p1[i] = np.mean(face) / 6.0
    return p0, p1


def _two_routes(nuclide, medium, size):
    v = load_voxel_svalues(nuclide, medium, size)
    k = load_point_kernel(nuclide, medium)
    p0, p1 = _shell_probabilities(k.r_edges_mm, size)
    mass_kg = size ** 3 * 1e-6 * MEDIA[medium]
    f = MEV_TO_J * 1e6 * 1e3 / mass_kg
    dpk = {
        "S000": f * (k.electron_energy_mev * k.electron_fraction @ p0 + k.photon_energy_mev * k.photon_fraction @ p0),
        "S001": f * (k.electron_energy_mev * k.electron_fraction @ p1 + k.photon_energy_mev * k.photon_fraction @ p1),
    }
    t = v.total_mgy_per_mbq_s
    c = t.shape[0] // 2
    direct = {"S000": t[c, c, c],
              "S001": np.mean([t[c + 1, c, c], t[c - 1, c, c], t[c, c + 1, c], t[c, c - 1, c], t[c, c, c + 1],
                               t[c, c, c - 1]])}
    return direct, dpk


CASES = [(n, m, s) for n, m, s in available_voxel_svalues() if s in (3.0, 4.8, 6.0)]


@pytest.mark.parametrize("nuclide,medium,size", CASES)
def test_direct_cubes_and_point_kernel_integration_agree(nuclide, medium, size):
    direct, dpk = _two_routes(nuclide, medium, size)
    # Issue 4: within 3 % in S000 and S001. Sampling error of P here: <0.3 % (S000), <1 % (S001).
    for key in ("S000", "S001"):
        assert dpk[key] == pytest.approx(direct[key], rel=0.03), (key, direct[key], dpk[key])
