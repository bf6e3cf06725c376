"""Radial dose-point kernels from Monte Carlo: point source at the centre of a cylinder scored in rings x slabs.

An isotropic point source sits at the origin of a homogeneous cylinder (axis
z, radius = half-height = ``r_max``); ``ompmc.calc_radial`` scores the energy
per history in ring x slab cells. Two scoring schemes (``cell_width_mm``):

- fine cells (``None``): rings and slabs on the shell edges, width ``R/80``
  up to ``1.25 R`` (R the Katz-Penfold range of the highest electron energy),
  then growing by 10 % per shell to ``r_max``; each cell's energy shared among
  the shells by volume (:func:`cell_to_shell_weights`);
- coarse cells with exact unfolding (a width in mm): rings ``cell_width_mm``
  wide up to ``1.25 R``, then growing by 10 %; slabs offset by half a cell;
  shell fractions unfolded with the exact shell-to-cell matrix
  (:func:`shell_cell_matrix`, :func:`unfold_shells`).

Why two: the engine's result depends on how finely the phantom is divided
(its condensed-history electron steps end at region boundaries). For Y-90 the
fine cells (0.13 mm) put S000 of a 3 mm voxel 3.0 % below the coarse-cell
(1 mm) value and Lanconelli et al. 2012 (kernels/data/README.md); for
low-energy emitters (Lu-177, Cu-67) the two routes agree without it.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from kernels.decay import decay_data_version, load_decay, normalise_nuclide

from .engine import MEDIUM_PEGS, physics_provenance, run_cylinder
from .sampling import electron_emissions, isotropic_directions, photon_emissions
from .svalues import PHOTON_NEGLIGIBLE_RATIO, csda_range_mm

__all__ = ["shell_edges_mm", "cell_to_shell_weights", "generate_point_kernel", "SUBSAMPLES", "coarse_grid_mm",
           "unfolded_shell_edges_mm", "sphere_fraction_in_cell", "shell_cell_matrix", "unfold_shells",
           "SUBDIVISIONS", "N_SPLIT", "EM_ITERATIONS"]

SUBSAMPLES = 12
#: Coarse scheme: shells per cell width near the origin, independent engine runs (uncertainty),
#: EM iterations of the unfolding.
SUBDIVISIONS = 5
N_SPLIT = 10
EM_ITERATIONS = 1000

_METHOD_FINE = (
    "Method: an isotropic point source sits at the origin of a homogeneous cylinder (axis z, radius = "
    "half-height = ``r_max``). ``ompmc.calc_radial`` scores the energy per history in ring x slab cells whose "
    "ring and slab edges are the kernel's shell edges (slabs mirrored about z = 0). The kernel depends on "
    "r = sqrt(rho^2 + z^2) only, so each cell's energy is distributed over the spherical shells by the fraction of "
    "the cell's volume that lies in each shell (uniform energy density inside a cell assumed; volume fractions "
    "from ``SUBSAMPLES^2`` sub-cells weighted by rho). Resolution limit: about one shell width (cells straddle "
    "shell edges by up to sqrt(2) times a width near the origin). Energy in the cylinder beyond r_max, and energy "
    "escaping the cylinder, is not in the kernel and is reported in the provenance.")

_METHOD_UNFOLD = (
    "Method: an isotropic point source sits at the origin of a homogeneous cylinder (axis z, radius = "
    "half-height = ``r_max``). ``ompmc.calc_radial`` scores the energy per history in coarse ring x slab cells: "
    "rings ``cell_width_mm`` wide up to 1.25 R (R: Katz-Penfold range of the highest electron energy), then "
    "growing by 10 % per ring; slabs of the same widths offset by half a cell (the source in the middle of the "
    "central slab). Coarse cells because the engine's result depends on the density of region boundaries "
    "(kernels/data/README.md). The shell fractions are unfolded from the cell energies with the exact "
    "shell-to-cell matrix (fraction of an isotropic shell, uniform in r within the shell, falling in each cell: "
    "closed-form sphere-surface fractions, Gauss-Legendre in r) by maximum-likelihood EM iterations (positive, "
    "energy conserving; no uniform-density assumption), onto shells ``subdivisions`` times finer than the cells "
    "up to 1.25 R and equal to the rings beyond. Energy in the cylinder beyond r_max, and energy escaping the "
    "cylinder, is not in the kernel and is reported in the provenance.")


def shell_edges_mm(range_mm: float, r_max_mm: float = 300.0, n_fine: int = 80, fine_extent: float = 1.25,
                   growth: float = 1.10) -> np.ndarray:
    """Shell edges in mm: ``n_fine`` equal shells per ``range_mm`` out to ``fine_extent * range_mm``,
    then widths growing by ``growth`` per shell up to ``r_max_mm`` (last edge exactly ``r_max_mm``)."""
    w = range_mm / n_fine
    edges = list(np.arange(0.0, fine_extent * range_mm + 0.5 * w, w))
    width = w
    while edges[-1] < r_max_mm:
        width *= growth
        edges.append(edges[-1] + width)
    edges = np.asarray(edges)
    if edges[-1] - r_max_mm > 0:
        if r_max_mm - edges[-2] < 0.5 * (edges[-1] - edges[-2]) and len(edges) > 2:
            edges = edges[:-1]
        edges[-1] = r_max_mm
    return edges


def coarse_grid_mm(range_mm: float, cell_width_mm: float, r_max_mm: float = 300.0, fine_extent: float = 1.25,
                   growth: float = 1.10) -> tuple[np.ndarray, np.ndarray]:
    """Ring and slab edges (mm) of the coarse scoring scheme.

    Rings: width ``cell_width_mm`` up to at least ``fine_extent * range_mm``, then growing by ``growth``
    per ring to ``r_max_mm``. Slabs: the same widths, offset by half a cell so that z = 0 (the source)
    is the middle of the central slab; symmetric about 0, outermost edges at +-``r_max_mm``.

    Returns
    -------
    rho_edges : ndarray, shape (I+1,)
    z_edges : ndarray, shape (J+1,), J = 2 I - 1 (odd)
    """
    n_fine = max(1, int(np.ceil(fine_extent * range_mm / cell_width_mm - 1e-9)))
    rho = shell_edges_mm(n_fine * cell_width_mm, r_max_mm, n_fine=n_fine, fine_extent=1.0, growth=growth)
    zp = np.concatenate([[0.5 * cell_width_mm], rho[1:-1] + 0.5 * cell_width_mm, [r_max_mm]])
    if zp[-2] >= r_max_mm:
        zp = np.concatenate([zp[:-2], [r_max_mm]])
    return rho, np.concatenate([-zp[::-1], zp])


def unfolded_shell_edges_mm(rho_edges_mm: np.ndarray, cell_width_mm: float, subdivisions: int = SUBDIVISIONS
                            ) -> np.ndarray:
    """Shell edges of the unfolded kernel: each ring of width ``cell_width_mm`` split into ``subdivisions``
    equal shells, wider (growing) rings kept as they are."""
    out = [0.0]
    for a, b in zip(rho_edges_mm[:-1], rho_edges_mm[1:]):
        k = subdivisions if np.isclose(b - a, cell_width_mm, rtol=1e-9, atol=0) else 1
        out.extend(np.linspace(a, b, k + 1)[1:])
    return np.asarray(out)


def sphere_fraction_in_cell(r, rho0, rho1, z0, z1):
    """Fraction of the surface of a sphere of radius ``r`` about the origin inside the ring x slab cell
    ``rho0 <= rho < rho1``, ``z0 <= z < z1`` (broadcasting; any length unit, r > 0).

    Uniform on the sphere means ``u = z / r`` uniform on [-1, 1]; the cell is ``u`` in
    [z0/r, z1/r] intersected with ``|u|`` in [sqrt(1 - (rho1/r)^2), sqrt(1 - (rho0/r)^2)].
    """
    r = np.asarray(r, dtype=float)
    ua, ub = np.clip(z0 / r, -1.0, 1.0), np.clip(z1 / r, -1.0, 1.0)
    lo = np.sqrt(np.clip(1.0 - (rho1 / r) ** 2, 0.0, 1.0))
    hi = np.sqrt(np.clip(1.0 - (rho0 / r) ** 2, 0.0, 1.0))
    total = np.clip(np.minimum(ub, hi) - np.maximum(ua, lo), 0.0, None)
    total = total + np.clip(np.minimum(ub, -lo) - np.maximum(ua, -hi), 0.0, None)
    return 0.5 * total


def shell_cell_matrix(rho_edges: np.ndarray, z_edges: np.ndarray, r_edges: np.ndarray, n_gauss: int = 24
                      ) -> np.ndarray:
    """Fraction of the energy of each spherical shell (uniform in r within the shell, isotropic) that
    falls in each ring x slab cell.

    Parameters
    ----------
    rho_edges : ndarray, shape (I+1,)
    z_edges : ndarray, shape (J+1,)
    r_edges : ndarray, shape (N+1,)
        Same length unit, ``r_edges[0] = 0``.
    n_gauss : int
        Gauss-Legendre nodes in r per shell (the integrand has kinks where the sphere crosses a cell
        corner; 24 nodes give the cell sums to < 1e-4 of a shell).

    Returns
    -------
    ndarray, shape (I, J, N)
        Columns sum to 1 for shells inside the cylinder.
    """
    x, w = np.polynomial.legendre.leggauss(n_gauss)
    rho0, rho1 = rho_edges[:-1, None, None], rho_edges[1:, None, None]
    z0, z1 = z_edges[None, :-1, None], z_edges[None, 1:, None]
    out = np.zeros((rho_edges.size - 1, z_edges.size - 1, r_edges.size - 1))
    for n, (a, b) in enumerate(zip(r_edges[:-1], r_edges[1:])):
        r = 0.5 * (b - a) * x + 0.5 * (b + a)
        out[:, :, n] = np.einsum("ijq,q->ij", sphere_fraction_in_cell(r[None, None, :], rho0, rho1, z0, z1), 0.5 * w)
    return out


def unfold_shells(cells: np.ndarray, matrix: np.ndarray, n_iter: int = EM_ITERATIONS, start=None) -> np.ndarray:
    """Shell fractions ``f`` with ``matrix @ f`` ~ ``cells`` by maximum-likelihood EM (Richardson-Lucy).

    Parameters
    ----------
    cells : ndarray, shape (I, J)
        Energy fraction per cell.
    matrix : ndarray, shape (I, J, N)
        :func:`shell_cell_matrix`.
    n_iter : int
    start : ndarray, shape (N,), optional
        Positive starting estimate (default: the cells' total spread evenly).

    Returns
    -------
    ndarray, shape (N,)
        Non-negative; sum equals the cells' total where every shell lies inside the cylinder.
    """
    e = np.asarray(cells, float).ravel()
    m = matrix.reshape(e.size, -1)
    sens = m.sum(axis=0)
    f = np.full(m.shape[1], e.sum() / m.shape[1]) if start is None else np.asarray(start, float).copy()
    safe = np.where(sens > 0, sens, 1.0)
    for _ in range(n_iter):
        pred = m @ f
        ratio = np.divide(e, pred, out=np.zeros_like(e), where=pred > 0)
        f = f * (m.T @ ratio) / safe
    return f


def cell_to_shell_weights(rho_edges: np.ndarray, z_edges: np.ndarray, r_edges: np.ndarray,
                          subsamples: int = SUBSAMPLES) -> np.ndarray:
    """Fraction of each ring x slab cell's volume in each spherical shell.

    Parameters
    ----------
    rho_edges : ndarray, shape (I+1,)
        Ring edges (any length unit, starting at 0).
    z_edges : ndarray, shape (J+1,)
        Slab edges (same unit; may be negative).
    r_edges : ndarray, shape (N+1,)
        Shell edges (same unit, starting at 0).

    Returns
    -------
    ndarray, shape (I, J, N)
        ``w[i, j, n]``: volume fraction of cell (i, j) inside shell n (rows sum to
        1 for cells inside the last shell, less for cells reaching beyond it).
    """
    m = subsamples
    t = (np.arange(m) + 0.5) / m
    r0, r1 = rho_edges[:-1], rho_edges[1:]
    z0, z1 = z_edges[:-1], z_edges[1:]
    rho_s = r0[:, None] + (r1 - r0)[:, None] * t[None, :]          # (I, m)
    z_s = z0[:, None] + (z1 - z0)[:, None] * t[None, :]            # (J, m)
    vol_w = rho_s / rho_s.sum(axis=1, keepdims=True)               # (I, m) weights within ring
    n_shell = r_edges.size - 1
    out = np.zeros((r0.size, z0.size, n_shell))
    for i in range(r0.size):
        rr = np.sqrt(rho_s[i][None, None, :] ** 2 + z_s[:, :, None] ** 2)   # (J, m_z, m_rho)
        idx = np.searchsorted(r_edges, rr, side="right") - 1
        w = np.broadcast_to(vol_w[i][None, None, :] / m, rr.shape)
        valid = (idx >= 0) & (idx < n_shell)
        jj = np.broadcast_to(np.arange(z0.size)[:, None, None], rr.shape)
        flat = jj[valid] * n_shell + idx[valid]
        out[i] = np.bincount(flat, weights=w[valid], minlength=z0.size * n_shell).reshape(z0.size, n_shell)
    return out


def _sample(kind, spectrum, n, seed, run_index):
    rng = np.random.default_rng([seed, 100 + run_index])
    return spectrum.sample(n, rng), isotropic_directions(n, rng), (2 if kind == "electron" else 1)


def _summary(res_hist, mean_e, frac_cells_sum, frac_sum, seeds):
    return {
        "particles_simulated": res_hist,
        "mean_sampled_energy_mev": mean_e,
        "fraction_in_kernel": float(frac_sum),
        "fraction_in_cylinder": float(frac_cells_sum),
        "fraction_in_cylinder_beyond_r_max": float(frac_cells_sum - frac_sum),
        "fraction_escaping_cylinder": float(1.0 - frac_cells_sum),
        "engine_seeds": seeds,
    }


def _run_point_population(kind, spectrum, n, r_edges_mm, medium, seed, run_index, log_path):
    """Fine scheme: cells on the shell edges, volume sharing."""
    energy, direction, ptype = _sample(kind, spectrum, n, seed, run_index)
    rho_cm = r_edges_mm / 10.0
    z_cm = np.concatenate([-rho_cm[:0:-1], rho_cm])
    res = run_cylinder(rho_cm, z_cm, medium, (ptype, energy, np.zeros((n, 3)), direction), seed=seed,
                       run_index=100 + run_index, log_path=log_path)
    mean_e = float(energy[: res.n_histories].mean())
    frac_cells = res.energy_mev_per_history / mean_e                      # (I, J)
    var_cells = (frac_cells * res.rel_unc) ** 2
    w = cell_to_shell_weights(rho_cm, z_cm, rho_cm)                        # (I, J, N)
    frac = np.einsum("ij,ijn->n", frac_cells, w)
    var = np.einsum("ij,ijn->n", var_cells, w ** 2)
    unc = np.divide(np.sqrt(var), frac, out=np.zeros_like(frac), where=frac > 0)
    info = _summary(res.n_histories, mean_e, frac_cells.sum(), frac.sum(), [int(seed), int(100 + run_index)])
    return frac, unc, info


def _run_point_population_unfolded(kind, spectrum, n, rho_mm, z_mm, r_edges_mm, medium, seed, run_index,
                                   log_path, n_split=N_SPLIT):
    """Coarse scheme: ``n_split`` independent engine runs; the summed cells unfolded for the kernel, each
    run unfolded alone for the uncertainty (standard error of the mean of the ``n_split`` unfoldings)."""
    energy, direction, ptype = _sample(kind, spectrum, n, seed, run_index)
    matrix = shell_cell_matrix(rho_mm, z_mm, r_edges_mm)
    chunk = n // n_split
    cells, parts, seeds, n_done = 0.0, [], [], 0
    for b in range(n_split):
        sl = slice(b * chunk, (b + 1) * chunk)
        engine_index = 1000 * (100 + run_index) + b
        res = run_cylinder(rho_mm / 10.0, z_mm / 10.0, medium,
                           (ptype, energy[sl], np.zeros((chunk, 3)), direction[sl]), seed=seed,
                           run_index=engine_index, n_batches=2, log_path=log_path)
        part = res.energy_mev_per_history / float(energy[sl][: res.n_histories].mean())
        parts.append(unfold_shells(part, matrix))
        cells = cells + part * res.n_histories
        n_done += res.n_histories
        seeds.append([int(seed), int(engine_index)])
    frac_cells = cells / n_done
    frac = unfold_shells(frac_cells, matrix)
    sem = np.std(np.asarray(parts), axis=0, ddof=1) / np.sqrt(n_split)
    unc = np.divide(sem, frac, out=np.zeros_like(frac), where=frac > 0)
    mean_e = float(energy[:n_done].mean())
    info = _summary(n_done, mean_e, frac_cells.sum(), frac.sum(), seeds)
    info["independent_engine_runs"] = n_split
    return frac, unc, info


def generate_point_kernel(nuclide: str, medium: str, *, n_electrons: int, n_photons: int, seed: int,
                          r_max_mm: float = 300.0, cell_width_mm: float | None = None,
                          subdivisions: int = SUBDIVISIONS, log_path=None) -> tuple[dict, dict]:
    """Radial point kernel of ``nuclide`` in ``medium`` (electrons and photons in separate runs).

    Parameters
    ----------
    cell_width_mm : float, optional
        ``None``: fine scheme (cells = shells of width R/80, volume sharing). A width: coarse scheme
        (rings and offset slabs of this width, exact unfolding onto shells ``subdivisions`` times finer).

    Returns
    -------
    arrays : dict
        ``r_edges_mm`` (N+1,), ``electron_fraction``, ``photon_fraction``,
        ``electron_rel_unc``, ``photon_rel_unc`` (N,).
    provenance : dict
    """
    name = normalise_nuclide(nuclide)
    pegs, rho = MEDIUM_PEGS[medium]
    decay = load_decay(name)
    electrons = electron_emissions(decay, "full")
    photons = photon_emissions(decay)
    e_el, e_ph = decay.electron_energy_mev, decay.photon_energy_mev
    range_mm = csda_range_mm(max(decay.beta_endpoint_mev, electrons.line_energy_mev.max(initial=0.0)), rho)
    if cell_width_mm is None:
        r_edges = shell_edges_mm(range_mm, r_max_mm)

        def run(kind, spectrum, n, index):
            return _run_point_population(kind, spectrum, n, r_edges, medium, seed, index, log_path)
    else:
        if not cell_width_mm > 0:
            raise ValueError(f"cell_width_mm must be positive, got {cell_width_mm}")
        rho_mm, z_mm = coarse_grid_mm(range_mm, float(cell_width_mm), r_max_mm)
        r_edges = unfolded_shell_edges_mm(rho_mm, float(cell_width_mm), subdivisions)

        def run(kind, spectrum, n, index):
            return _run_point_population_unfolded(kind, spectrum, n, rho_mm, z_mm, r_edges, medium, seed, index,
                                                  log_path)
    frac_e, unc_e, info_e = run("electron", electrons, n_electrons, 1)
    simulate_photons = e_ph > PHOTON_NEGLIGIBLE_RATIO * e_el and len(photons.line_energy_mev) > 0
    if simulate_photons:
        frac_p, unc_p, info_p = run("photon", photons, n_photons, 2)
    else:
        frac_p, unc_p = np.zeros_like(frac_e), np.zeros_like(frac_e)
        info_p = {"particles_simulated": 0,
                  "note": (f"photon emission {e_ph * 1e6:.3g} eV per decay is below {PHOTON_NEGLIGIBLE_RATIO:g} of the "
                           "electron energy: not simulated, photon_fraction set to 0")}
    arrays = {
        "r_edges_mm": r_edges,
        "electron_fraction": frac_e,
        "photon_fraction": frac_p,
        "electron_rel_unc": unc_e,
        "photon_rel_unc": unc_p,
    }
    shells = {"electron_range_mm": range_mm, "range_formula": "Katz-Penfold (grid sizing only)",
              "fine_shell_width_mm": float(r_edges[1] - r_edges[0]), "n_shells": int(r_edges.size - 1),
              "r_max_mm": float(r_edges[-1])}
    if cell_width_mm is None:
        method = _METHOD_FINE
        shells["resolution_limit_mm"] = float(np.sqrt(2.0) * (r_edges[1] - r_edges[0]))
        uncertainty = ("relative 1-sigma per shell: engine batch uncertainties (10 batches) of the cells, "
                       "combined in quadrature with the volume weights (neglects correlation between cells)")
    else:
        method = _METHOD_UNFOLD.replace("``cell_width_mm``", f"{float(cell_width_mm):g} mm").replace(
            "``subdivisions``", str(int(subdivisions)))
        shells.update({"scoring": "coarse cells, exact unfolding", "cell_width_mm": float(cell_width_mm),
                       "shell_subdivisions": int(subdivisions), "unfolding": f"ML-EM, {EM_ITERATIONS} iterations",
                       "n_rings": int(rho_mm.size - 1), "n_slabs": int(z_mm.size - 1)})
        uncertainty = (f"relative 1-sigma per shell: standard error of the mean of {N_SPLIT} independent engine runs, "
                       "each unfolded alone (includes the noise the unfolding adds to neighbouring shells, which "
                       "is anti-correlated between them)")
    prov = {
        "kind": "radial dose-point kernel, Monte Carlo",
        "nuclide": name,
        "medium": medium,
        "pegs4_medium": pegs,
        "density_g_per_ml": rho,
        "decay_data_version": decay_data_version(),
        "electron_emissions": list(electrons.components),
        "photon_emissions": list(photons.components) if simulate_photons else [],
        "electron_energy_mev_per_decay": e_el,
        "photon_energy_mev_per_decay": e_ph,
        "electrons_photons_separation": ("separate Monte Carlo runs: electron run = sampled beta spectrum + "
                                         "conversion + Auger lines (their bremsstrahlung and fluorescence stay in "
                                         "electron_fraction); photon run = gamma + X-ray lines"),
        "quantity": ("fraction of the emitted electron (photon) energy deposited per spherical shell around an "
                     "isotropic point source in an unbounded-like medium"),
        "method": method,
        "shells": shells,
        "uncertainty": uncertainty,
        "electron_run": info_e,
        "photon_run": info_p,
        "seed": int(seed),
        "physics": physics_provenance(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "kernels.mc.pointkernel.generate_point_kernel",
    }
    return arrays, prov
