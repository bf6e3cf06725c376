"""The dose plausibility gate: energy conservation and the largest dose the injection allows.

Checks (each a :class:`pipeline.qc.Check`, written to ``dose_provenance.json`` under ``qc``):

Energy balance (:func:`energy_balance`)
    sum over the dose grid of dose x mass (J) against the energy emitted by all
    decays of the TIA map, TIA x 3.6e9 decays/(MBq*h) x mean energy per decay
    (ICRP-107, electrons + photons). Electrons (range <= 11 mm) stay in the
    body; photons partly escape. So absorbed/emitted lies between the
    electron share of the emitted energy f_e (Lu-177 0.81, Cu-67 0.57,
    Y-90 1.00), less a little at the skin, and 1. Above
    :data:`WARN_BALANCE_HIGH` (1.02) warns, above :data:`FAIL_BALANCE_HIGH`
    (1.10) fails (energy from nothing: a kernel, density or unit error);
    below 0.9 f_e warns, below 0.5 f_e fails (half the electron energy lost:
    activity outside the body or a broken kernel).
Photon transport energy conservation
    With the photon Monte Carlo, its emitted energy against deposited + escaped: warns above a
    relative difference of 1e-9, fails above 1e-6 (a bookkeeping error; float rounding is 1e-13).
Largest possible organ dose (:data:`FAIL_MAX_DOSE_RATIO`)
    An organ cannot absorb more than all the energy the injected activity
    ever emits: D_max = A0 / lambda_phys x 3.6e9 x E_decay / m. The organ's
    mean dose over D_max warns above 1.05 and fails above 1.20 (the
    calibration tolerances of the ingest gate).
"""

from __future__ import annotations

import math

import numpy as np

from ..qc import Check, check_lower, check_upper

__all__ = ["energy_balance", "dose_checks", "MEV_TO_J", "DECAYS_PER_MBQ_H"]

MEV_TO_J = 1.602176634e-13
#: Decays in one MBq*h.
DECAYS_PER_MBQ_H = 3.6e9
WARN_BALANCE_HIGH = 1.02
FAIL_BALANCE_HIGH = 1.10
WARN_BALANCE_LOW_OF_ELECTRON_SHARE = 0.9
FAIL_BALANCE_LOW_OF_ELECTRON_SHARE = 0.5
WARN_MAX_DOSE_RATIO = 1.05
FAIL_MAX_DOSE_RATIO = 1.20


def energy_balance(dose_gy, density_g_per_ml, tia_mbq_h_per_ml, voxel_volume_ml: float, electron_energy_mev: float,
                   photon_energy_mev: float, min_density_g_per_ml: float = 0.1) -> dict:
    """Absorbed and emitted energy of a dose map, J.

    Parameters
    ----------
    dose_gy : numpy.ndarray
        Dose map, Gy.
    density_g_per_ml : numpy.ndarray
        Mass density on the same grid, g/mL (floored at ``min_density_g_per_ml``, as in the dose).
    tia_mbq_h_per_ml : numpy.ndarray
        TIA map, MBq*h/mL, same grid.
    voxel_volume_ml : float
    electron_energy_mev, photon_energy_mev : float
        Mean energy emitted per decay, MeV.

    Returns
    -------
    dict
        ``absorbed_j``, ``emitted_j``, ``ratio``, ``electron_share`` (of the emitted energy).
    """
    rho = np.maximum(np.asarray(density_g_per_ml, np.float64), min_density_g_per_ml)
    absorbed = float((np.asarray(dose_gy, np.float64) * rho).sum()) * voxel_volume_ml * 1e-3
    tia = float(np.asarray(tia_mbq_h_per_ml, np.float64).sum()) * voxel_volume_ml
    energy = electron_energy_mev + photon_energy_mev
    emitted = tia * DECAYS_PER_MBQ_H * energy * MEV_TO_J
    return {"absorbed_j": absorbed, "emitted_j": emitted, "tia_mbq_h": tia,
            "ratio": absorbed / emitted if emitted > 0 else math.nan,
            "electron_share": electron_energy_mev / energy if energy > 0 else math.nan}


def dose_checks(result, injected_mbq: float | None, decay_constant_per_h: float, energy_per_decay_mev: float,
                path=None) -> list[Check]:
    """Every check of the dose gate (module docstring).

    Parameters
    ----------
    result : DoseResult
    injected_mbq : float or None
        Injected activity, MBq (largest-dose check skipped when unknown).
    decay_constant_per_h : float
        Physical decay constant, 1/h.
    energy_per_decay_mev : float
        Electrons + photons, MeV.
    path : path, optional
        File named in a failure (the TIA map).
    """
    out = []
    bal = result.energy_balance
    if bal and bal["emitted_j"] > 0:
        fe = bal["electron_share"]
        src = (f"absorbed {bal['absorbed_j']:.4g} J of {bal['emitted_j']:.4g} J emitted; electrons carry "
               f"{100 * fe:.0f} % of the energy and stay in the body, photons partly escape")
        out.append(check_upper("energy_absorbed_over_emitted", bal["ratio"], "1", WARN_BALANCE_HIGH,
                               FAIL_BALANCE_HIGH, src, "body", path))
        out.append(check_lower("energy_absorbed_over_emitted_low", bal["ratio"], "1",
                               WARN_BALANCE_LOW_OF_ELECTRON_SHARE * fe, FAIL_BALANCE_LOW_OF_ELECTRON_SHARE * fe,
                               src, "body", path))
    photon = (bal or {}).get("photon_transport")
    if photon:
        # the photon Monte Carlo's own bookkeeping: every photon emitted is deposited or escapes
        out.append(check_upper(
            "photon_transport_energy_conservation", abs(photon["conservation_error"]), "1", 1e-9, 1e-6,
            f"photon Monte Carlo: emitted {photon['energy_emitted_j']:.6g} J, deposited "
            f"{photon['energy_deposited_j']:.6g} J, escaped {photon['energy_escaped_j']:.6g} J", "body", path))
    if injected_mbq:
        total_j = injected_mbq / decay_constant_per_h * DECAYS_PER_MBQ_H * energy_per_decay_mev * MEV_TO_J
        for o in result.organs:
            if not o.mass_g > 0:
                continue
            d_max = total_j / (o.mass_g * 1e-3)
            out.append(check_upper(
                "mean_dose_over_largest_possible", o.mean_gy / d_max, "1", WARN_MAX_DOSE_RATIO, FAIL_MAX_DOSE_RATIO,
                f"{o.mean_gy:.4g} Gy; all energy the injected {injected_mbq:g} MBq can emit, absorbed in "
                f"{o.mass_g:.4g} g, is {d_max:.4g} Gy", o.name, path))
    return out
