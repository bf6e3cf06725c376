"""Radial dose-point kernels from Monte Carlo: point source at the centre of a cylinder scored in rings x slabs.

Method: an isotropic point source sits at the origin of a homogeneous
cylinder (axis z, radius = half-height = ``r_max``). ``ompmc.calc_radial``
scores the energy per history in ring x slab cells whose ring and slab edges
are the kernel's shell edges (slabs mirrored about z = 0). The kernel depends
on r = sqrt(rho^2 + z^2) only, so each cell's energy is distributed over the
spherical shells by the fraction of the cell's volume that lies in each shell
(uniform energy density inside a cell assumed; volume fractions from
``SUBSAMPLES^2`` sub-cells weighted by rho). Resolution limit: about one shell
width (cells straddle shell edges by up to sqrt(2) times a width near the
origin). Energy in the cylinder beyond r_max, and energy escaping the
cylinder, is not in the kernel and is reported in the provenance.

Shell edges: uniform width ``R/80`` up to ``1.25 R`` (R the electron range of
the highest electron energy), then widths growing by 10 % per shell up to
``r_max`` (300 mm by default).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from kernels.decay import decay_data_version, load_decay, normalise_nuclide

from .engine import MEDIUM_PEGS, physics_provenance, run_cylinder
from .sampling import electron_emissions, isotropic_directions, photon_emissions
from .svalues import PHOTON_NEGLIGIBLE_RATIO, csda_range_mm

__all__ = ["shell_edges_mm", "cell_to_shell_weights", "generate_point_kernel", "SUBSAMPLES"]

SUBSAMPLES = 12


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


def _run_point_population(kind, spectrum, n, r_edges_mm, medium, seed, run_index, log_path):
    rng = np.random.default_rng([seed, 100 + run_index])
    energy = spectrum.sample(n, rng)
    direction = isotropic_directions(n, rng)
    rho_cm = r_edges_mm / 10.0
    z_cm = np.concatenate([-rho_cm[:0:-1], rho_cm])
    ptype = 2 if kind == "electron" else 1
    res = run_cylinder(rho_cm, z_cm, medium, (ptype, energy, np.zeros((n, 3)), direction), seed=seed,
                       run_index=100 + run_index, log_path=log_path)
    mean_e = float(energy[: res.n_histories].mean())
    frac_cells = res.energy_mev_per_history / mean_e                      # (I, J)
    var_cells = (frac_cells * res.rel_unc) ** 2
    w = cell_to_shell_weights(rho_cm, z_cm, rho_cm)                        # (I, J, N)
    frac = np.einsum("ij,ijn->n", frac_cells, w)
    var = np.einsum("ij,ijn->n", var_cells, w ** 2)
    unc = np.divide(np.sqrt(var), frac, out=np.zeros_like(frac), where=frac > 0)
    info = {
        "particles_simulated": res.n_histories,
        "mean_sampled_energy_mev": mean_e,
        "fraction_in_kernel": float(frac.sum()),
        "fraction_in_cylinder": float(frac_cells.sum()),
        "fraction_in_cylinder_beyond_r_max": float(frac_cells.sum() - frac.sum()),
        "fraction_escaping_cylinder": float(1.0 - frac_cells.sum()),
        "engine_seeds": [int(seed), int(100 + run_index)],
    }
    return frac, unc, info


def generate_point_kernel(nuclide: str, medium: str, *, n_electrons: int, n_photons: int, seed: int,
                          r_max_mm: float = 300.0, log_path=None) -> tuple[dict, dict]:
    """Radial point kernel of ``nuclide`` in ``medium`` (electrons and photons in separate runs).

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
    r_edges = shell_edges_mm(range_mm, r_max_mm)
    frac_e, unc_e, info_e = _run_point_population("electron", electrons, n_electrons, r_edges, medium, seed, 1,
                                                  log_path)
    simulate_photons = e_ph > PHOTON_NEGLIGIBLE_RATIO * e_el and len(photons.line_energy_mev) > 0
    if simulate_photons:
        frac_p, unc_p, info_p = _run_point_population("photon", photons, n_photons, r_edges, medium, seed, 2,
                                                      log_path)
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
        "method": __doc__.strip().split("\n\n")[1].replace("\n", " "),
        "shells": {"electron_range_mm": range_mm, "range_formula": "Katz-Penfold (grid sizing only)",
                   "fine_shell_width_mm": float(r_edges[1] - r_edges[0]), "n_shells": int(r_edges.size - 1),
                   "r_max_mm": float(r_edges[-1]),
                   "resolution_limit_mm": float(np.sqrt(2.0) * (r_edges[1] - r_edges[0]))},
        "uncertainty": ("relative 1-sigma per shell: engine batch uncertainties (10 batches) of the cells, "
                        "combined in quadrature with the volume weights (neglects correlation between cells)"),
        "electron_run": info_e,
        "photon_run": info_p,
        "seed": int(seed),
        "physics": physics_provenance(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "kernels.mc.pointkernel.generate_point_kernel",
    }
    return arrays, prov
