"""The numba core of the photon Monte Carlo (:mod:`pipeline.dose.photon_transport`): one history at a time.

Array in, array out; no work at import time (the functions compile on first use and are cached).
Units: lengths in mm, energies in MeV, linear attenuation coefficients in 1/mm per g/mL of density
(``rho * mu_x[medium, energy]``), tables on a log-uniform energy grid (``log_e0``, ``inv_dlog``).

Random numbers: SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014), one stream per history, 2^32 draws apart, seeded from the batch's seed: a history
that changes (e.g. another source voxel) leaves every other history's random numbers alone, and
the result does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["run_batches", "sample_klein_nishina", "ELECTRON_REST_MEV"]

ELECTRON_REST_MEV = 0.51099895

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_STREAM_STRIDE = np.uint64(0x9E3779B97F4A7C15 << 32 & 0xFFFFFFFFFFFFFFFF)


@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _uniform(state) -> float:
    """Next uniform number in [0, 1) of the SplitMix64 generator (Steele, Lea & Flood, OOPSLA 2014)
    whose 64-bit state is ``state[0]``."""
    state[0] += _GOLDEN
    return float(_mix64(state[0]) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _history_state(batch_seed, history, state):
    """Start the stream of one history: 2^32 draws apart from the next history's, so that a history
    that changes (another source voxel) never shifts the random numbers of the others."""
    state[0] = _mix64(np.uint64(batch_seed) * _GOLDEN + np.uint64(1)) + np.uint64(history) * _STREAM_STRIDE


@njit(cache=True)
def sample_klein_nishina(energy_mev: float, state):
    """Scattered photon energy (MeV) and cos(theta) from the Klein-Nishina distribution.

    Kahn's rejection method (H. Kahn, "Applications of Monte Carlo", RM-1237-AEC, RAND 1956;
    as described in Lux & Koblinger, Monte Carlo Particle Transport Methods, 1991): with
    ``k = E / m c^2`` and ``x = E / E'`` in ``[1, 1 + 2k]``. ``state``: generator state (uint64
    array of one element, :func:`_uniform`).
    """
    k = energy_mev / ELECTRON_REST_MEV
    while True:
        r1 = _uniform(state)
        r2 = _uniform(state)
        r3 = _uniform(state)
        if r1 <= (1.0 + 2.0 * k) / (9.0 + 2.0 * k):
            x = 1.0 + 2.0 * k * r2
            if r3 <= 4.0 * (1.0 / x - 1.0 / (x * x)):
                break
        else:
            x = (1.0 + 2.0 * k) / (1.0 + 2.0 * k * r2)
            c = 1.0 - (x - 1.0) / k
            if r3 <= 0.5 * (c * c + 1.0 / x):
                break
    return energy_mev / x, 1.0 - (x - 1.0) / k


@njit(cache=True)
def _rotate(u, v, w, cos_t, phi):
    """Direction after a deflection by polar angle acos(cos_t) and azimuth phi."""
    sin_t = np.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    cp, sp = np.cos(phi), np.sin(phi)
    if abs(w) > 0.99999:
        return sin_t * cp, sin_t * sp, cos_t * np.sign(w)
    s = np.sqrt(1.0 - w * w)
    un = u * cos_t + sin_t * (u * w * cp - v * sp) / s
    vn = v * cos_t + sin_t * (v * w * cp + u * sp) / s
    wn = w * cos_t - sin_t * s * cp
    return un, vn, wn


@njit(cache=True)
def _interp(table, row, log_e, log_e0, inv_dlog):
    """``table[row]`` at ``exp(log_e)``: linear between the log-uniform grid points, constant beyond."""
    t = (log_e - log_e0) * inv_dlog
    n = table.shape[1]
    if t <= 0.0:
        return table[row, 0]
    if t >= n - 1:
        return table[row, n - 1]
    i = int(t)
    f = t - i
    return table[row, i] * (1.0 - f) + table[row, i + 1] * f


@njit(cache=True)
def _box_entry(x, y, z, u, v, w, box_mm) -> float:
    """Distance along (u, v, w) from (x, y, z), outside the box, to just inside it; -1 if the ray misses."""
    t_lo, t_hi = 0.0, np.inf
    for p, d, lo, hi in ((x, u, box_mm[0], box_mm[3]), (y, v, box_mm[1], box_mm[4]), (z, w, box_mm[2], box_mm[5])):
        if abs(d) < 1e-12:
            if p < lo or p >= hi:
                return -1.0
            continue
        a, b = (lo - p) / d, (hi - p) / d
        t_lo = max(t_lo, min(a, b))
        t_hi = min(t_hi, max(a, b))
    if t_hi <= t_lo:
        return -1.0
    return t_lo + 1e-9 * (t_hi - t_lo)


@njit(cache=True)
def _histories(n, seed, density, material, voxel_mm, box_mm, src_grid, src_cdf, src_flat, line_cdf, line_e, mu_pe,
               mu_inc, mu_coh, majorant, log_e0, inv_dlog, e_cut, edep):
    """Run ``n`` histories of the batch ``seed`` (one random stream per history), depositing into ``edep``
    (flat over ``density``, MeV per history). Linear coefficients in 1/mm are ``rho * mu_x[material]``.
    ``density`` and ``material`` are the box of the grid that holds all matter; ``src_flat`` indexes
    the whole grid, whose shape and the box's first voxel are ``src_grid`` (ni, nj, nk, i0, j0, k0).

    Returns
    -------
    (emitted MeV, escaped MeV, real collisions, tentative collisions)
    """
    st = np.zeros(1, np.uint64)
    nx, ny, nz = density.shape
    dx, dy, dz = voxel_mm[0], voxel_mm[1], voxel_mm[2]
    # the box of the voxels with matter (outside it all is vacuum): a photon that leaves it never
    # comes back (the box is convex), and a photon born outside it flies straight to it or escapes
    x0, y0, z0, x1, y1, z1 = box_mm[0], box_mm[1], box_mm[2], box_mm[3], box_mm[4], box_mm[5]
    emitted = 0.0
    escaped = 0.0
    n_real = 0
    n_tent = 0
    for h in range(n):
        _history_state(seed, h, st)
        s = np.searchsorted(src_cdf, _uniform(st) * src_cdf[-1], side="right")
        s = min(s, src_flat.size - 1)
        v0 = src_flat[s]
        x = (v0 // (src_grid[1] * src_grid[2]) - src_grid[3] + _uniform(st)) * dx
        y = ((v0 // src_grid[2]) % src_grid[1] - src_grid[4] + _uniform(st)) * dy
        z = (v0 % src_grid[2] - src_grid[5] + _uniform(st)) * dz
        li = np.searchsorted(line_cdf, _uniform(st) * line_cdf[-1], side="right")
        e = line_e[min(li, line_e.size - 1)]
        emitted += e
        w = 2.0 * _uniform(st) - 1.0
        phi = 2.0 * np.pi * _uniform(st)
        sin_t = np.sqrt(max(0.0, 1.0 - w * w))
        u = sin_t * np.cos(phi)
        v = sin_t * np.sin(phi)
        if x < x0 or y < y0 or z < z0 or x >= x1 or y >= y1 or z >= z1:
            t_in = _box_entry(x, y, z, u, v, w, box_mm)
            if t_in < 0.0:
                escaped += e
                continue
            x += u * t_in
            y += v * t_in
            z += w * t_in
        log_e = np.log(e)
        mu_max = _interp(majorant, 0, log_e, log_e0, inv_dlog)
        while True:
            step = -np.log(1.0 - _uniform(st)) / mu_max
            x += u * step
            y += v * step
            z += w * step
            if x < x0 or y < y0 or z < z0 or x >= x1 or y >= y1 or z >= z1:
                escaped += e
                break
            n_tent += 1
            ix = min(int(x / dx), nx - 1)
            iy = min(int(y / dy), ny - 1)
            iz = min(int(z / dz), nz - 1)
            rho = density[ix, iy, iz]
            if rho <= 0.0:
                continue
            m = material[ix, iy, iz]
            a_pe = rho * _interp(mu_pe, m, log_e, log_e0, inv_dlog)
            a_inc = rho * _interp(mu_inc, m, log_e, log_e0, inv_dlog)
            a_coh = rho * _interp(mu_coh, m, log_e, log_e0, inv_dlog)
            r = _uniform(st) * mu_max
            if r >= a_pe + a_inc + a_coh:
                continue  # null collision
            n_real += 1
            flat = (ix * ny + iy) * nz + iz
            if r < a_pe:
                edep[flat] += e
                break
            if r < a_pe + a_inc:
                e_new, cos_t = sample_klein_nishina(e, st)
                edep[flat] += e - e_new
                e = e_new
                if e < e_cut:
                    edep[flat] += e
                    break
                u, v, w = _rotate(u, v, w, cos_t, 2.0 * np.pi * _uniform(st))
                log_e = np.log(e)
                mu_max = _interp(majorant, 0, log_e, log_e0, inv_dlog)
            # coherent: counted in the attenuation, no deflection, nothing deposited
    return emitted, escaped, n_real, n_tent


@njit(parallel=True, cache=True)
def run_batches(seeds, n_per_batch, density, material, voxel_mm, box_mm, src_grid, src_cdf, src_flat, line_cdf, line_e,
                 mu_pe, mu_inc, mu_coh, majorant, log_e0, inv_dlog, e_cut):
    """``seeds.size`` batches of ``n_per_batch`` histories in parallel (:func:`_histories`).

    Returns
    -------
    edep : numpy.ndarray, shape (batches, density.size)
        MeV deposited per voxel of the box, per batch.
    stats : numpy.ndarray, shape (batches, 4)
        MeV emitted, MeV escaped, real and tentative collisions, per batch.
    """
    nb = seeds.size
    nvox = density.size
    edep = np.zeros((nb, nvox))
    stats = np.zeros((nb, 4))
    for b in prange(nb):
        em, es, nr, nt = _histories(n_per_batch, seeds[b], density, material, voxel_mm, box_mm, src_grid, src_cdf,
                                    src_flat, line_cdf, line_e, mu_pe, mu_inc, mu_coh, majorant, log_e0, inv_dlog,
                                    e_cut, edep[b])
        stats[b, 0] = em
        stats[b, 1] = es
        stats[b, 2] = nr
        stats[b, 3] = nt
    return edep, stats
