"""Direct Monte Carlo voxel S-values: source uniform in the central voxel of a homogeneous phantom.

Electrons and photons are transported in separate runs. The scored energy per
history in each voxel, divided by the mean emitted energy of the sampled
particles, is the fraction of the emitted electron (photon) energy absorbed in
that voxel; times the ICRP-107 energy emitted per decay and divided by the
voxel mass it gives S in mGy/(MBq*s):

    S = f * E_decay[MeV] * 1.602176634e-13 J/MeV * 1e6 decays/(MBq*s) / m[kg] * 1e3 mGy/Gy
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np

from kernels.decay import decay_data_version, load_decay, normalise_nuclide

from .engine import MEDIUM_PEGS, physics_provenance, run_voxels
from .sampling import electron_emissions, isotropic_directions, photon_emissions

__all__ = ["MEV_TO_J", "csda_range_mm", "svalue_factor", "phantom_bounds_cm", "generate_voxel_svalues",
           "PHOTON_NEGLIGIBLE_RATIO"]

MEV_TO_J = 1.602176634e-13

#: Photon runs are skipped when photons carry less than this fraction of the electron energy (Y-90).
PHOTON_NEGLIGIBLE_RATIO = 1e-4

#: Half-extent of the phantom around the scored cube (cm): backscatter medium for photons.
PADDING_HALF_EXTENT_CM = 30.0


def csda_range_mm(energy_mev: float, density_g_per_ml: float = 1.0) -> float:
    """Electron range in mm (Katz and Penfold 1952 empirical range-energy relation, water-like media).

    R [g/cm^2] = 0.412 E^(1.265 - 0.0954 ln E) for 0.01 <= E <= 2.5 MeV, 0.530 E - 0.106 above.
    Used only to size grids (gives 11 mm for the Y-90 endpoint in water, 1.6 mm for Lu-177).
    """
    e = max(float(energy_mev), 0.01)
    rng = 0.412 * e ** (1.265 - 0.0954 * math.log(e)) if e <= 2.5 else 0.530 * e - 0.106
    return 10.0 * rng / density_g_per_ml


def svalue_factor(energy_mev_per_decay: float, voxel_mass_kg: float) -> float:
    """mGy/(MBq*s) per unit absorbed fraction for ``energy_mev_per_decay`` and a target mass in kg."""
    return energy_mev_per_decay * MEV_TO_J * 1e6 / voxel_mass_kg * 1e3


def phantom_bounds_cm(voxel_size_mm: float, half_width: int, pad_to_cm: float = PADDING_HALF_EXTENT_CM,
                      n_pad: int = 3) -> np.ndarray:
    """Voxel boundaries (cm) of a centred uniform block of ``2*half_width+1`` voxels plus ``n_pad`` thick
    padding voxels on each side reaching ``pad_to_cm`` (thicknesses growing geometrically, ratio 16^(1/n_pad))."""
    a = voxel_size_mm / 10.0
    inner = (np.arange(-half_width, half_width + 2) - 0.5) * a
    edge = inner[-1]
    if pad_to_cm > edge * 1.01 and n_pad > 0:
        outer = edge + (pad_to_cm - edge) * (np.geomspace(1.0, 16.0, n_pad + 1)[1:] - 1.0) / 15.0
        return np.concatenate([-outer[::-1], inner, outer])
    return inner


def _crop(arr: np.ndarray, half_width: int) -> np.ndarray:
    """Central ``(2*half_width+1)^3`` block of a cube with an odd number of voxels per side."""
    c = arr.shape[0] // 2
    sl = slice(c - half_width, c + half_width + 1)
    return arr[sl, sl, sl]


def _source_particles(spectrum, n, voxel_size_mm, rng):
    energy = spectrum.sample(n, rng)
    a = voxel_size_mm / 10.0
    pos = (rng.random((n, 3)) - 0.5) * a
    return energy, pos, isotropic_directions(n, rng)


def _run_population(kind, spectrum, n, voxel_size_mm, half_width, medium, seed, run_index, log_path):
    rng = np.random.default_rng([seed, run_index])
    energy, pos, direction = _source_particles(spectrum, n, voxel_size_mm, rng)
    bounds = phantom_bounds_cm(voxel_size_mm, half_width)
    ptype = 2 if kind == "electron" else 1
    res = run_voxels((bounds, bounds, bounds), medium, (ptype, energy, pos, direction), seed=seed,
                     run_index=run_index, log_path=log_path)
    mean_e = float(energy[: res.n_histories].mean())
    frac_all = res.energy_mev_per_history / mean_e
    frac = _crop(frac_all, half_width)
    unc = _crop(res.rel_unc, half_width)
    info = {
        "particles_simulated": res.n_histories,
        "mean_sampled_energy_mev": mean_e,
        "fraction_absorbed_in_stored_cube": float(frac.sum()),
        "fraction_absorbed_in_whole_phantom": float(frac_all.sum()),
        "fraction_escaping_phantom": float(1.0 - frac_all.sum()),
        "phantom_half_extent_cm": float(bounds[-1]),
        "engine_seeds": [int(seed), int(run_index)],
    }
    return frac, unc, info


def generate_voxel_svalues(nuclide: str, medium: str, voxel_size_mm: float, *, n_electrons: int,
                           n_photons: int, seed: int, electron_variant: str = "full",
                           electron_half_width: int | None = None, photon_half_width: int = 20,
                           log_path=None) -> tuple[dict, dict]:
    """Direct MC voxel S-values of a uniform source in the central cubic voxel.

    Parameters
    ----------
    nuclide : str
    medium : {"water", "tissue"}
    voxel_size_mm : float
        Cubic voxel side.
    n_electrons, n_photons : int
        Source particles (one history each) for the electron and photon runs.
    seed : int
    electron_variant : {"full", "beta"}
        ``"beta"`` leaves out conversion and Auger electrons (Lanconelli-like Lu-177).
    electron_half_width : int, optional
        Stored electron cube is ``2h+1`` voxels wide; default covers the
        electron range plus two voxels.
    photon_half_width : int
        Stored photon cube is ``2h+1`` voxels wide (default 41^3).

    Returns
    -------
    arrays : dict
        ``voxel_size_mm`` (3,), ``electron_mgy_per_mbq_s``, ``photon_mgy_per_mbq_s``,
        ``electron_rel_unc``, ``photon_rel_unc`` (float32 odd cubes).
    provenance : dict
    """
    name = normalise_nuclide(nuclide)
    if medium not in MEDIUM_PEGS:
        raise ValueError(f"unknown medium {medium!r}")
    pegs, rho = MEDIUM_PEGS[medium]
    decay = load_decay(name)
    electrons = electron_emissions(decay, electron_variant)
    photons = photon_emissions(decay)
    e_el = decay.electron_energy_mev if electron_variant == "full" else decay.beta_energy_mev
    e_ph = decay.photon_energy_mev
    a = float(voxel_size_mm)
    mass_kg = (a * 1e-3) ** 3 * rho * 1e3  # (a mm)^3 in m^3 times kg/m^3 (rho g/mL = 1e3 kg/m^3)
    r_max = csda_range_mm(max(decay.beta_endpoint_mev, electrons.line_energy_mev.max(initial=0.0)), rho)
    h_e = electron_half_width if electron_half_width is not None else int(math.ceil(r_max / a)) + 2

    frac_e, unc_e, info_e = _run_population("electron", electrons, n_electrons, a, h_e, medium, seed, 1, log_path)
    s_e = frac_e * svalue_factor(e_el, mass_kg)
    simulate_photons = e_ph > PHOTON_NEGLIGIBLE_RATIO * e_el and len(photons.line_energy_mev) > 0
    if simulate_photons:
        frac_p, unc_p, info_p = _run_population("photon", photons, n_photons, a, photon_half_width, medium,
                                                seed, 2, log_path)
        s_p = frac_p * svalue_factor(e_ph, mass_kg)
    else:
        s_p, unc_p = np.zeros((1, 1, 1)), np.zeros((1, 1, 1))
        info_p = {"particles_simulated": 0,
                  "note": (f"photon emission {e_ph * 1e6:.3g} eV per decay is below {PHOTON_NEGLIGIBLE_RATIO:g} of the "
                           "electron energy: not simulated, photon S-values set to 0 (1x1x1 cube). "
                           "Bremsstrahlung from the electrons is in the electron cube.")}
    arrays = {
        "voxel_size_mm": np.full(3, a),
        "electron_mgy_per_mbq_s": s_e.astype(np.float32),
        "photon_mgy_per_mbq_s": s_p.astype(np.float32),
        "electron_rel_unc": unc_e.astype(np.float32),
        "photon_rel_unc": unc_p.astype(np.float32),
    }
    prov = {
        "kind": "voxel S-values, direct Monte Carlo",
        "nuclide": name,
        "medium": medium,
        "pegs4_medium": pegs,
        "density_g_per_ml": rho,
        "voxel_size_mm": [a, a, a],
        "voxel_mass_g": mass_kg * 1e3,
        "unit": "mGy/(MBq*s)",
        "source": "uniform in the central voxel, isotropic, one history per emitted particle",
        "electron_cube_shape": list(s_e.shape),
        "photon_cube_shape": list(s_p.shape),
        "decay_data_version": decay_data_version(),
        "electron_emissions": list(electrons.components),
        "photon_emissions": list(photons.components) if simulate_photons else [],
        "electron_energy_mev_per_decay": e_el,
        "photon_energy_mev_per_decay": e_ph,
        "electrons_photons_separation": ("separate Monte Carlo runs: electron run = sampled beta spectrum "
                                         + ("+ conversion + Auger lines" if electron_variant == "full" else "only")
                                         + " (its bremsstrahlung and fluorescence stay in the electron cube); "
                                         "photon run = gamma + X-ray lines"),
        "normalisation": ("S = (energy per history in voxel / mean sampled energy) * ICRP-107 energy per decay "
                          "* 1.602176634e-13 J/MeV * 1e6 / voxel mass [kg] * 1e3"),
        "uncertainty": "relative 1-sigma per voxel from 10 statistical batches (engine)",
        "electron_run": info_e,
        "photon_run": info_p,
        "seed": int(seed),
        "physics": physics_provenance(),
        "stored_dtype": "float32",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "kernels.mc.svalues.generate_voxel_svalues",
    }
    if electron_variant != "full":
        prov["electron_variant"] = electron_variant
    return arrays, prov
