"""Voxel S-values for any voxel size (anisotropic too) from a radial dose-point kernel.

A radial point kernel gives, for a point source in a homogeneous medium, the
fraction ``f_i`` of the emitted energy deposited in each spherical shell
``r_i <= r < r_{i+1}``, i.e. the radial density ``dF/dr = f_i / (r_{i+1} - r_i)``.
The fraction of the energy emitted uniformly in a source voxel ``s`` that is
absorbed in a target voxel ``t`` is

``phi(t <- s) = integral dF/dr(r) * P_st(r) dr``

where ``P_st(r)`` is the probability that a point at distance ``r`` in a
random direction from a uniformly random point of ``s`` lies in ``t``, and the
voxel S-value is ``S(t <- s) = E_decay * phi(t <- s) / m_t``.

``P_st`` is the spherical mean of the overlap volume of ``s`` shifted by ``d``
with ``t`` (a product of three triangle functions), divided by the voxel
volume. It is computed here by nested quadrature:

- the azimuthal integral of the product of two piecewise-linear triangle
  functions over a circle is done in closed form between its break angles;
- the polar integral (over ``z = r cos(theta)``, uniform on the sphere) uses
  Gauss-Legendre nodes on pieces split at every change of the integrand's
  form, with a smooth-step substitution that removes the square-root end
  behaviour of tangencies;
- in ``r``, ``P_st`` is sampled at Chebyshev points on pieces between its own
  break radii and integrated exactly bin by bin against the histogram
  ``dF/dr`` (Gauss-Legendre on the barycentric interpolant).

This avoids the ``1/r^2`` singularity of the dose-point kernel. For a
cubic self-voxel of side ``a`` and ``r <= a`` it reproduces
``P(r) = 1 - 3r/(2a) + 2r^2/(pi a^2) - r^3/(4 pi a^3)``. Far targets
(distance above a few voxels, where only smooth photon and bremsstrahlung
tails remain) use a Cartesian Gauss-Legendre rule on the overlap function
times the point kernel, whose radial density is the derivative of a monotone
(PCHIP) interpolant of the cumulative fraction, so that every shell keeps its
energy.

Statistical uncertainty of the kernel shells is propagated to each voxel,
shells taken as independent. Density scaling between media is *not* done
here: everything is in the kernel's own medium and density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

__all__ = [
    "MEV_PER_MBQ_S_TO_MGY_KG",
    "self_voxel_probability",
    "pair_probability",
    "AbsorbedFractions",
    "absorbed_fractions",
    "svalue_scale_mgy_per_mbq_s",
    "svalues_from_point_kernel",
    "default_half_width",
]

#: 1 MeV per decay at 1 MBq*s (1e6 decays) in 1 kg is 1.602176634e-4 mGy:
#: 1.602176634e-13 J/MeV * 1e6 decays * 1e3 mGy/Gy.
MEV_PER_MBQ_S_TO_MGY_KG = 1.602176634e-4

#: Gauss-Legendre order of the polar (z) rule per piece, the Chebyshev order in r
#: per piece, the Gauss-Legendre order per kernel bin, and the Cartesian order per
#: half-axis of the far rule. Convergence study: P_st within 1e-8 of the closed-form
#: self-voxel P(r) and summing to 1 within 1e-8 over all targets; doubling the near
#: orders changes Y-90 S-values by < 3e-7 relative; doubling the far order by < 0.2 %
#: in far voxels below 1e-6 of S000 (tests/kernels/test_vsv.py checks the rest against
#: brute-force sampling).
_N_POLAR = 8
_N_CHEB = 20
_N_BIN = 6
_N_FAR = 4

ALGORITHM_VERSION = "vsv-1"

#: Default reach of an S-value cube from the source voxel, mm.
DEFAULT_EXTENT_MM = 100.0


# --------------------------------------------------------------------------------------
# P_st(r): numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _insertion_sort(buf, n):
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit(cache=True)
def _tri(x, o, a):
    """Triangle function max(0, a - |x - o|) (overlap length of two segments of length a)."""
    v = a - abs(x - o)
    return v if v > 0.0 else 0.0


@njit(cache=True)
def _circle_integral(rho, ox, ax, oy, ay, buf):
    """Integral over phi in [0, 2 pi) of tri(rho cos phi; ox, ax) * tri(rho sin phi; oy, ay).

    Exact: between consecutive break angles both factors are linear in cos/sin.
    ``buf`` is scratch of length >= 16.
    """
    if rho <= 0.0:
        return 2.0 * math.pi * _tri(0.0, ox, ax) * _tri(0.0, oy, ay)
    # quick reject: the circle misses the support rectangle
    dx = max(0.0, abs(ox) - ax)
    dy = max(0.0, abs(oy) - ay)
    if dx * dx + dy * dy >= rho * rho:
        return 0.0
    two_pi = 2.0 * math.pi
    n = 0
    buf[n] = 0.0
    n += 1
    buf[n] = two_pi
    n += 1
    for m in range(3):
        c = ox + (m - 1) * ax
        if abs(c) < rho:
            t = math.acos(c / rho)
            buf[n] = t
            buf[n + 1] = two_pi - t
            n += 2
    for m in range(3):
        c = oy + (m - 1) * ay
        if abs(c) < rho:
            s = math.asin(c / rho)
            buf[n] = s + two_pi if s < 0.0 else s
            buf[n + 1] = math.pi - s
            n += 2
    _insertion_sort(buf, n)
    total = 0.0
    for k in range(n - 1):
        p0 = buf[k]
        p1 = buf[k + 1]
        if p1 - p0 <= 1e-15:
            continue
        pm = 0.5 * (p0 + p1)
        x = rho * math.cos(pm)
        ddx = x - ox
        if abs(ddx) >= ax:
            continue
        y = rho * math.sin(pm)
        ddy = y - oy
        if abs(ddy) >= ay:
            continue
        if ddx < 0.0:
            A = ax - ox
            B = rho
        else:
            A = ax + ox
            B = -rho
        if ddy < 0.0:
            C = ay - oy
            D = rho
        else:
            C = ay + oy
            D = -rho
        c0 = math.cos(p0)
        c1 = math.cos(p1)
        s0 = math.sin(p0)
        s1 = math.sin(p1)
        total += A * C * (p1 - p0) + A * D * (c0 - c1) + B * C * (s1 - s0) + 0.5 * B * D * (s1 * s1 - s0 * s0)
    return total


@njit(cache=True)
def _pair_probability_scalar(r, o, a, gl_t, gl_w, zbuf, abuf):
    """P_st(r) for target-centre offset ``o`` (mm) and voxel sides ``a`` (mm)."""
    ox, oy, oz = o[0], o[1], o[2]
    ax, ay, az = a[0], a[1], a[2]
    vol = ax * ay * az
    if r <= 0.0:
        return _tri(0.0, ox, ax) * _tri(0.0, oy, ay) * _tri(0.0, oz, az) / vol
    z_lo = max(-r, oz - az)
    z_hi = min(r, oz + az)
    if z_lo >= z_hi:
        return 0.0
    n = 0
    zbuf[n] = z_lo
    n += 1
    zbuf[n] = z_hi
    n += 1
    if z_lo < oz < z_hi:
        zbuf[n] = oz
        n += 1
    r2 = r * r
    # radii of the circle at which its break structure changes: tangency to a kink
    # line (|c|) and passage through a kink corner (sqrt(cx^2 + cy^2)).
    for mx in range(4):
        for my in range(4):
            if mx == 0 and my == 0:
                continue
            cx = ox + (mx - 2) * ax if mx > 0 else 0.0
            cy = oy + (my - 2) * ay if my > 0 else 0.0
            rc2 = cx * cx + cy * cy
            if rc2 < r2:
                zc = math.sqrt(r2 - rc2)
                if z_lo < zc < z_hi:
                    zbuf[n] = zc
                    n += 1
                if z_lo < -zc < z_hi:
                    zbuf[n] = -zc
                    n += 1
    _insertion_sort(zbuf, n)
    total = 0.0
    ng = gl_t.shape[0]
    for k in range(n - 1):
        z0 = zbuf[k]
        z1 = zbuf[k + 1]
        length = z1 - z0
        if length <= 1e-14 * r:
            continue
        for j in range(ng):
            t = gl_t[j]
            s = t * t * (3.0 - 2.0 * t)
            ds = 6.0 * t * (1.0 - t)
            z = z0 + length * s
            tz = _tri(z, oz, az)
            if tz <= 0.0:
                continue
            rho2 = r2 - z * z
            rho = math.sqrt(rho2) if rho2 > 0.0 else 0.0
            total += gl_w[j] * ds * length * tz * _circle_integral(rho, ox, ax, oy, ay, abuf)
    return total / (4.0 * math.pi * vol * r)


@njit(cache=True)
def _pair_probability_many(r, o, a, gl_t, gl_w):
    out = np.empty(r.shape[0])
    zbuf = np.empty(40)
    abuf = np.empty(16)
    for i in range(r.shape[0]):
        out[i] = _pair_probability_scalar(r[i], o, a, gl_t, gl_w, zbuf, abuf)
    return out


@njit(cache=True)
def _support_distances(o, a):
    """Closest and farthest distance from the origin of the box [o - a, o + a]."""
    dmin2 = 0.0
    dmax2 = 0.0
    for k in range(3):
        lo = o[k] - a[k]
        hi = o[k] + a[k]
        if lo > 0.0:
            dmin2 += lo * lo
        elif hi < 0.0:
            dmin2 += hi * hi
        m = max(abs(lo), abs(hi))
        dmax2 += m * m
    return math.sqrt(dmin2), math.sqrt(dmax2)


@njit(cache=True)
def _near_target(o, a, edges, dens, unc, gl_t, gl_w, gb_t, gb_w, cheb_x, bary_w):
    """Absorbed fraction and its variance in one target by radial integration of P_st.

    ``dens`` has shape (C, N): radial densities dF/dr (1/mm) of C components on the
    N bins of ``edges``; ``unc`` (C, N) their relative uncertainties. Returns
    (phi (C,), var (C,)).
    """
    ncomp = dens.shape[0]
    nb = edges.shape[0] - 1
    phi = np.zeros(ncomp)
    var = np.zeros(ncomp)
    dmin, dmax = _support_distances(o, a)
    if dmin >= edges[nb]:
        return phi, var
    rmax = min(dmax, edges[nb])
    # break radii of P_st: |c| combinations of kink coordinates (0 or a kink per axis)
    rb = np.empty(70)
    n = 0
    rb[n] = dmin
    n += 1
    rb[n] = rmax
    n += 1
    for mx in range(4):
        cx = o[0] + (mx - 2) * a[0] if mx > 0 else 0.0
        for my in range(4):
            cy = o[1] + (my - 2) * a[1] if my > 0 else 0.0
            for mz in range(4):
                cz = o[2] + (mz - 2) * a[2] if mz > 0 else 0.0
                d = math.sqrt(cx * cx + cy * cy + cz * cz)
                if dmin < d < rmax:
                    rb[n] = d
                    n += 1
    _insertion_sort(rb, n)
    # first bin that can contribute
    ib0 = np.searchsorted(edges, dmin, side="right") - 1
    if ib0 < 0:
        ib0 = 0
    ib1 = np.searchsorted(edges, rmax, side="left")
    if ib1 > nb:
        ib1 = nb
    bin_int = np.zeros(ib1 - ib0 + 1)
    zbuf = np.empty(40)
    abuf = np.empty(16)
    nc = cheb_x.shape[0]
    pvals = np.empty(nc)
    xs = np.empty(nc)
    for k in range(n - 1):
        p0 = rb[k]
        p1 = rb[k + 1]
        if p1 - p0 <= 1e-12 * (1.0 + p1):
            continue
        half = 0.5 * (p1 - p0)
        mid = 0.5 * (p1 + p0)
        for j in range(nc):
            xs[j] = mid + half * cheb_x[j]
            pvals[j] = _pair_probability_scalar(xs[j], o, a, gl_t, gl_w, zbuf, abuf)
        ib = np.searchsorted(edges, p0, side="right") - 1
        if ib < 0:
            ib = 0
        while ib < nb and edges[ib] < p1:
            lo = max(edges[ib], p0)
            hi = min(edges[ib + 1], p1)
            if hi > lo:
                acc = 0.0
                for g in range(gb_t.shape[0]):
                    rr = lo + (hi - lo) * gb_t[g]
                    # barycentric interpolation of P on the Chebyshev points
                    num = 0.0
                    den = 0.0
                    exact = -1
                    for j in range(nc):
                        diff = rr - xs[j]
                        if diff == 0.0:
                            exact = j
                            break
                        q = bary_w[j] / diff
                        num += q * pvals[j]
                        den += q
                    pv = pvals[exact] if exact >= 0 else num / den
                    acc += gb_w[g] * pv
                bin_int[ib - ib0] += acc * (hi - lo)
            ib += 1
    for ib in range(ib0, ib1 + 1):
        if ib >= nb:
            break
        w = bin_int[ib - ib0]
        if w == 0.0:
            continue
        for c in range(ncomp):
            contrib = dens[c, ib] * w
            phi[c] += contrib
            var[c] += (contrib * unc[c, ib]) ** 2
    return phi, var


@njit(cache=True)
def _far_target(o, a, r_tab, k_tab, edges, unc, gf_t, gf_w):
    """Absorbed fraction and variance in one target by a Cartesian rule (smooth kernel, away from 0).

    ``k_tab`` (C, M): energy fraction per mm^3, F'(r) / (4 pi r^2), on the uniform grid ``r_tab``.
    """
    ncomp = k_tab.shape[0]
    nb = edges.shape[0] - 1
    phi = np.zeros(ncomp)
    var = np.zeros(ncomp)
    dmin, dmax = _support_distances(o, a)
    if dmin >= r_tab[r_tab.shape[0] - 1]:
        return phi, var
    h = r_tab[1] - r_tab[0]
    mtab = r_tab.shape[0]
    ib0 = np.searchsorted(edges, dmin, side="right") - 1
    if ib0 < 0:
        ib0 = 0
    ib1 = min(np.searchsorted(edges, dmax, side="left"), nb)
    contrib = np.zeros((ncomp, ib1 - ib0 + 1))
    ng = gf_t.shape[0]
    vol = a[0] * a[1] * a[2]
    for sx in range(2):
        for gx in range(ng):
            x = o[0] + a[0] * (gf_t[gx] - 1.0 + sx)
            wx = gf_w[gx] * a[0] * _tri(x, o[0], a[0])
            for sy in range(2):
                for gy in range(ng):
                    y = o[1] + a[1] * (gf_t[gy] - 1.0 + sy)
                    wy = wx * gf_w[gy] * a[1] * _tri(y, o[1], a[1])
                    for sz in range(2):
                        for gz in range(ng):
                            z = o[2] + a[2] * (gf_t[gz] - 1.0 + sz)
                            w = wy * gf_w[gz] * a[2] * _tri(z, o[2], a[2]) / vol
                            rr = math.sqrt(x * x + y * y + z * z)
                            u = rr / h
                            i = int(u)
                            if i >= mtab - 1:
                                continue
                            f = u - i
                            ib = np.searchsorted(edges, rr, side="right") - 1
                            if ib >= nb:
                                continue
                            if ib < ib0:
                                ib = ib0
                            for c in range(ncomp):
                                kv = (1.0 - f) * k_tab[c, i] + f * k_tab[c, i + 1]
                                contrib[c, ib - ib0] += w * kv
    for c in range(ncomp):
        for j in range(ib1 - ib0 + 1):
            v = contrib[c, j]
            phi[c] += v
            if ib0 + j < nb:
                var[c] += (v * unc[c, ib0 + j]) ** 2
    return phi, var


@njit(cache=True, parallel=True)
def _all_targets(offsets, is_near, a, edges, dens, unc, r_tab, k_tab,
                 gl_t, gl_w, gb_t, gb_w, cheb_x, bary_w, gf_t, gf_w):
    nt = offsets.shape[0]
    ncomp = dens.shape[0]
    phi = np.zeros((nt, ncomp))
    var = np.zeros((nt, ncomp))
    for t in prange(nt):
        o = offsets[t]
        if is_near[t]:
            p, v = _near_target(o, a, edges, dens, unc, gl_t, gl_w, gb_t, gb_w, cheb_x, bary_w)
        else:
            p, v = _far_target(o, a, r_tab, k_tab, edges, unc, gf_t, gf_w)
        for c in range(ncomp):
            phi[t, c] = p[c]
            var[t, c] = v[c]
    return phi, var


# --------------------------------------------------------------------------------------
# Quadrature rules
# --------------------------------------------------------------------------------------


def _gauss_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def _chebyshev_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev points of the second kind on [-1, 1] and their barycentric weights."""
    j = np.arange(n)
    x = np.cos(np.pi * j / (n - 1))[::-1].copy()
    w = (-1.0) ** j  # the overall sign is irrelevant in the barycentric formula
    w[0] *= 0.5
    w[-1] *= 0.5
    return x, w


def _rules(n_polar=_N_POLAR, n_cheb=_N_CHEB, n_bin=_N_BIN, n_far=_N_FAR):
    gl_t, gl_w = _gauss_01(n_polar)
    gb_t, gb_w = _gauss_01(n_bin)
    cheb_x, bary_w = _chebyshev_points(n_cheb)
    gf_t, gf_w = _gauss_01(n_far)
    return gl_t, gl_w, gb_t, gb_w, cheb_x, bary_w, gf_t, gf_w


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def _as_voxel_size(voxel_size_mm) -> np.ndarray:
    a = np.asarray(voxel_size_mm, dtype=float).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 3)
    if a.size != 3 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"voxel size must be one or three positive numbers in mm, got {voxel_size_mm!r}")
    return a


def self_voxel_probability(r_mm, voxel_size_mm) -> np.ndarray:
    """Closed-form P_ss(r) of a rectangular voxel for ``r <= min(voxel_size_mm)``.

    ``P(r) = 1 - (r/2) sum 1/a_k + (2 r^2 / (3 pi)) sum_{j<k} 1/(a_j a_k) - r^3 / (4 pi a_x a_y a_z)``,
    the sphere average of the overlap ``prod_k (a_k - r |u_k|)`` divided by the volume (spherical
    means ``<|u_k|> = 1/2``, ``<|u_j u_k|> = 2/(3 pi)``, ``<|u_x u_y u_z|> = 1/(4 pi)``). For a cube
    of side ``a`` this is ``1 - 3r/(2a) + 2r^2/(pi a^2) - r^3/(4 pi a^3)``.

    Parameters
    ----------
    r_mm : array_like
        Distances in mm, each at most the smallest voxel side.
    voxel_size_mm : float or sequence of 3 floats
    """
    a = _as_voxel_size(voxel_size_mm)
    r = np.asarray(r_mm, dtype=float)
    if np.any(r > a.min() * (1 + 1e-12)):
        raise ValueError("the closed form holds only for r <= the smallest voxel side")
    s1 = np.sum(1.0 / a)
    s2 = 1.0 / (a[0] * a[1]) + 1.0 / (a[0] * a[2]) + 1.0 / (a[1] * a[2])
    return 1.0 - 0.5 * r * s1 + 2.0 * r**2 * s2 / (3.0 * np.pi) - r**3 / (4.0 * np.pi * np.prod(a))


def pair_probability(r_mm, offset_voxels, voxel_size_mm, *, n_polar: int = _N_POLAR) -> np.ndarray:
    """P_st(r): probability that a point at distance ``r`` (random direction) from a uniform point
    of the source voxel lies in the target voxel.

    Parameters
    ----------
    r_mm : array_like, shape (M,)
        Distances in mm.
    offset_voxels : sequence of 3 ints
        Target index minus source index along i, j, k.
    voxel_size_mm : float or sequence of 3 floats
        Voxel sides along i, j, k in mm.
    n_polar : int
        Gauss-Legendre order per polar piece.

    Returns
    -------
    numpy.ndarray, shape (M,)
        Dimensionless probabilities; summed over all targets they equal 1 for every r.
    """
    a = _as_voxel_size(voxel_size_mm)
    o = np.asarray(offset_voxels, dtype=float).reshape(3) * a
    r = np.atleast_1d(np.asarray(r_mm, dtype=float)).ravel()
    gl_t, gl_w = _gauss_01(n_polar)
    return _pair_probability_many(r, o, a, gl_t, gl_w)


@dataclass(frozen=True, eq=False)
class AbsorbedFractions:
    """Fractions of the energy emitted uniformly in the central voxel that each voxel absorbs.

    Attributes
    ----------
    voxel_size_mm : ndarray, shape (3,)
    fraction : ndarray, shape (C, 2*hx+1, 2*hy+1, 2*hz+1)
        Dimensionless absorbed fraction per component (e.g. electrons, photons); source voxel
        at the centre.
    rel_unc : ndarray, same shape
        Relative 1-sigma statistical uncertainty propagated from the kernel shells.
    n_near : int
        Number of distinct targets integrated radially (the rest used the far rule).
    """

    voxel_size_mm: np.ndarray
    fraction: np.ndarray
    rel_unc: np.ndarray
    n_near: int


def _canonical_targets(half_width, a):
    """Octant offsets, one representative per class of axis permutations among equal sides.

    Returns (reps (T, 3) int, inverse (octant flat) -> rep index).
    """
    hx, hy, hz = half_width
    grid = np.stack(np.meshgrid(np.arange(hx + 1), np.arange(hy + 1), np.arange(hz + 1), indexing="ij"),
                    axis=-1).reshape(-1, 3)
    # key: multiset of (side, offset) pairs; equal sides may swap their offsets
    side_rank = np.unique(np.round(a, 9), return_inverse=True)[1]
    keys = np.empty((grid.shape[0], 3, 2), dtype=np.int64)
    keys[:, :, 0] = side_rank[None, :]
    keys[:, :, 1] = grid
    # sort the three pairs lexicographically in each row
    order = np.lexsort((keys[:, :, 1], keys[:, :, 0]), axis=1)
    keys = np.take_along_axis(keys, order[:, :, None], axis=1).reshape(grid.shape[0], 6)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return grid[first], grid, inverse.ravel()


def _pchip_density_table(edges, fractions, step_mm):
    """Radial densities F'(r) from a monotone cubic interpolant of the cumulative fractions."""
    from scipy.interpolate import PchipInterpolator

    r_max = edges[-1]
    m = int(np.ceil(r_max / step_mm)) + 1
    r_tab = np.linspace(0.0, r_max, m)
    k_tab = np.empty((fractions.shape[0], m))
    for c, f in enumerate(fractions):
        cum = np.concatenate([[0.0], np.cumsum(f)])
        deriv = PchipInterpolator(edges, cum, extrapolate=False).derivative()(r_tab)
        deriv = np.nan_to_num(np.maximum(deriv, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            k = deriv / (4.0 * np.pi * r_tab**2)
        k[0] = k[1] if m > 1 else 0.0
        k_tab[c] = k
    return r_tab, k_tab


def default_half_width(voxel_size_mm, extent_mm: float) -> tuple[int, int, int]:
    """Half-width in voxels per axis so that the cube holds every voxel whose nearest point is closer
    than ``extent_mm`` to the source voxel along that axis: ``ceil(extent_mm / a)`` (at least 1)."""
    a = _as_voxel_size(voxel_size_mm)
    return tuple(int(max(1, np.ceil(extent_mm / ak - 1e-9))) for ak in a)


def absorbed_fractions(r_edges_mm, fractions, voxel_size_mm, half_width, *, rel_unc=None,
                       near_radius_mm: float | None = None) -> AbsorbedFractions:
    """Absorbed fractions per voxel around a uniformly emitting source voxel, from a radial kernel.

    Parameters
    ----------
    r_edges_mm : array_like, shape (N+1,)
        Shell edges in mm, increasing, starting at 0.
    fractions : array_like, shape (C, N) or (N,)
        Fraction of the emitted energy deposited in each shell, per component.
    voxel_size_mm : float or sequence of 3 floats
        Voxel sides along i, j, k, mm (anisotropic allowed).
    half_width : int or sequence of 3 ints
        The cube has ``2*h+1`` voxels along each axis, the source at the centre.
    rel_unc : array_like, shape like ``fractions``, optional
        Relative 1-sigma uncertainty per shell (default 0).
    near_radius_mm : float, optional
        Targets whose overlap support comes closer to the source than this are integrated
        radially (exact bin by bin); the others use the Cartesian far rule. Default: the
        radius holding 99.99 % of the first component's energy, at least 2 and at most 6
        times the largest voxel side.

    Returns
    -------
    AbsorbedFractions
    """
    edges = np.asarray(r_edges_mm, dtype=float).ravel()
    frac = np.atleast_2d(np.asarray(fractions, dtype=float))
    if edges.ndim != 1 or edges.size < 2 or frac.shape[1] != edges.size - 1:
        raise ValueError("r_edges_mm must have one more entry than each fractions row")
    if edges[0] != 0.0 or np.any(np.diff(edges) <= 0):
        raise ValueError("r_edges_mm must start at 0 and increase")
    if np.any(frac < 0) or not np.all(np.isfinite(frac)):
        raise ValueError("fractions must be finite and non-negative")
    unc = np.zeros_like(frac) if rel_unc is None else np.nan_to_num(
        np.atleast_2d(np.asarray(rel_unc, dtype=float)).reshape(frac.shape))
    a = _as_voxel_size(voxel_size_mm)
    h = np.broadcast_to(np.asarray(half_width, dtype=int), (3,))
    if np.any(h < 0):
        raise ValueError("half_width must be >= 0")
    dens = frac / np.diff(edges)[None, :]
    if near_radius_mm is None:
        cum = np.cumsum(frac[0])
        tot = cum[-1] if cum.size and cum[-1] > 0 else 1.0
        idx = int(np.searchsorted(cum, 0.9999 * tot))
        r_e = edges[min(idx + 1, edges.size - 1)]
        near_radius_mm = float(np.clip(r_e, 2.0 * a.max(), 6.0 * a.max()))
    reps, grid, inverse = _canonical_targets(tuple(int(x) for x in h), a)
    offsets = reps.astype(float) * a[None, :]
    dmin = np.sqrt(np.sum(np.maximum(offsets - a[None, :], 0.0) ** 2, axis=1))
    is_near = dmin < near_radius_mm
    step = max(1e-3, min(0.01, float(np.min(np.diff(edges))) / 2.0))
    step = max(step, edges[-1] / 200000.0)
    r_tab, k_tab = _pchip_density_table(edges, frac, step)
    rules = _rules()
    phi_rep, var_rep = _all_targets(np.ascontiguousarray(offsets), is_near, a, edges,
                                    np.ascontiguousarray(dens), np.ascontiguousarray(unc), r_tab, k_tab, *rules)
    ncomp = frac.shape[0]
    octant = phi_rep[inverse].T.reshape(ncomp, h[0] + 1, h[1] + 1, h[2] + 1)
    octant_var = var_rep[inverse].T.reshape(ncomp, h[0] + 1, h[1] + 1, h[2] + 1)
    full = _mirror(octant)
    full_var = _mirror(octant_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(full > 0, np.sqrt(full_var) / full, 0.0)
    return AbsorbedFractions(voxel_size_mm=a, fraction=full, rel_unc=rel, n_near=int(is_near.sum()))


def _mirror(octant: np.ndarray) -> np.ndarray:
    """Reflect an octant (C, hx+1, hy+1, hz+1) with the source at [.., 0, 0, 0] to the full cube."""
    out = octant
    for axis in (1, 2, 3):
        flipped = np.flip(out, axis=axis)
        rest = np.take(out, np.arange(1, out.shape[axis]), axis=axis)
        out = np.concatenate([flipped, rest], axis=axis)
    return np.ascontiguousarray(out)


def svalue_scale_mgy_per_mbq_s(energy_mev_per_decay: float, density_g_per_ml: float, voxel_size_mm) -> float:
    """S-value of a voxel that absorbs all of ``energy_mev_per_decay``, mGy/(MBq*s).

    ``E * 1.602176634e-4 mGy kg / (MeV MBq s) / m_kg`` with ``m_kg = rho * V_mm3 * 1e-6``.
    """
    a = _as_voxel_size(voxel_size_mm)
    mass_kg = float(density_g_per_ml) * float(np.prod(a)) * 1e-6
    return float(energy_mev_per_decay) * MEV_PER_MBQ_S_TO_MGY_KG / mass_kg


def svalues_from_point_kernel(kernel, voxel_size_mm, *, extent_mm: float | None = None,
                              photons: bool = True):
    """Voxel S-values of any (anisotropic) voxel size by integrating a radial point kernel.

    Parameters
    ----------
    kernel : kernels.kernel_data.PointKernel
        Radial kernel of one nuclide in one medium (electrons and photons apart).
    voxel_size_mm : float or sequence of 3 floats
        Voxel sides along i, j, k in mm.
    extent_mm : float, optional
        The cube holds every voxel closer than this to the source voxel along each axis.
        Default: 100 mm, or the kernel's reach if smaller (electron kernels carry their
        bremsstrahlung tail too: Y-90 keeps 0.15 % of its energy beyond 100 mm). The fraction
        of each component absorbed inside the cube is recorded in the provenance.
    photons : bool
        Compute the photon part; ``False`` leaves it zero.

    Returns
    -------
    kernels.kernel_data.VoxelSValues
        Electron and photon cubes (same odd shape, source voxel at the centre, float64,
        mGy/(MBq*s)) with propagated relative uncertainties; ``total_mgy_per_mbq_s`` is their sum.
        Computed in the kernel's medium at its density: no density scaling.
    """
    from .kernel_data import VoxelSValues

    a = _as_voxel_size(voxel_size_mm)
    edges = np.asarray(kernel.r_edges_mm, dtype=float)
    with_photons = bool(photons and kernel.photon_energy_mev > 0 and np.any(np.asarray(kernel.photon_fraction) > 0))
    if extent_mm is None:
        extent_mm = min(DEFAULT_EXTENT_MM, float(edges[-1]))
    h = default_half_width(a, float(extent_mm))
    comps = [np.asarray(kernel.electron_fraction, float)]
    uncs = [np.asarray(kernel.electron_rel_unc, float)]
    if with_photons:
        comps.append(np.asarray(kernel.photon_fraction, float))
        uncs.append(np.asarray(kernel.photon_rel_unc, float))
    af = absorbed_fractions(edges, np.stack(comps), a, h, rel_unc=np.stack(uncs))
    rho = float(kernel.density_g_per_ml)
    e_cube = af.fraction[0] * svalue_scale_mgy_per_mbq_s(kernel.electron_energy_mev, rho, a)
    e_unc = af.rel_unc[0]
    if with_photons:
        p_cube = af.fraction[1] * svalue_scale_mgy_per_mbq_s(kernel.photon_energy_mev, rho, a)
        p_unc = af.rel_unc[1]
    else:
        p_cube = np.zeros_like(e_cube)
        p_unc = np.zeros_like(e_cube)
    provenance = {
        "method": "point-kernel integration (kernels.vsv)",
        "algorithm_version": ALGORITHM_VERSION,
        "voxel_size_mm": [float(x) for x in a],
        "half_width_voxels": [int(x) for x in h],
        "extent_mm": float(extent_mm),
        "photons": with_photons,
        "density_g_per_ml": rho,
        "electron_energy_mev_per_decay": float(kernel.electron_energy_mev),
        "photon_energy_mev_per_decay": float(kernel.photon_energy_mev),
        "targets_integrated_radially": af.n_near,
        "electron_fraction_absorbed_in_cube": float(af.fraction[0].sum()),
        "photon_fraction_absorbed_in_cube": float(af.fraction[1].sum()) if with_photons else 0.0,
        "point_kernel_provenance": dict(kernel.provenance),
    }
    return VoxelSValues(nuclide=kernel.nuclide, medium=kernel.medium, voxel_size_mm=a,
                        electron_mgy_per_mbq_s=e_cube, photon_mgy_per_mbq_s=p_cube,
                        electron_rel_unc=e_unc, photon_rel_unc=p_unc, provenance=provenance)
