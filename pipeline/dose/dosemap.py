"""Absorbed-dose maps from time-integrated activity: kernel convolution or local deposition.

Pure array-in, array-out functions; the S-value cube and the density map are
inputs, so the same code serves any nuclide, voxel size and HU calibration.

Convolution (MIRD voxel S-value approach, MIRD Pamphlet 17):
``D_water(t) = sum_s TIA(s) S(t <- s)`` with TIA in MBq*s per voxel and S in
mGy/(MBq*s) computed in water (or the kernel's medium). Density correction:
the energy deposited in a voxel is taken as in the kernel's medium and
divided by the voxel's real mass, ``D = D_medium * rho_medium / rho``
(a first-order correction, exact for local deposition). Densities below
``min_density_g_per_ml`` (gas in bowel or airways) are raised to it so that
the correction cannot blow up; outside the body the dose is set to zero.

Local deposition: all electron energy (optionally plus photon energy) of each
decay is absorbed in the voxel where it happens,
``D = TIA * E * 1e6 decays/(MBq*s) * 1.602e-13 J/MeV / m``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MEV_TO_J",
    "tia_mbq_s_per_voxel",
    "local_deposition_dose_gy",
    "density_corrected_dose_gy",
    "convolution_dose_gy",
]

MEV_TO_J = 1.602176634e-13
SECONDS_PER_HOUR = 3600.0


def tia_mbq_s_per_voxel(tia_mbq_h_per_ml: np.ndarray, voxel_volume_ml: float) -> np.ndarray:
    """Convert a TIA concentration map (MBq*h/mL) into TIA per voxel (MBq*s).

    Parameters
    ----------
    tia_mbq_h_per_ml : numpy.ndarray, shape (I, J, K)
    voxel_volume_ml : float
    """
    return np.asarray(tia_mbq_h_per_ml, np.float64) * (voxel_volume_ml * SECONDS_PER_HOUR)


def local_deposition_dose_gy(tia_mbq_s: np.ndarray, energy_mev_per_decay: float, voxel_volume_ml: float,
                             density_g_per_ml) -> np.ndarray:
    """Absorbed dose (Gy) when each decay deposits ``energy_mev_per_decay`` in its own voxel.

    Parameters
    ----------
    tia_mbq_s : numpy.ndarray, shape (I, J, K)
        Decays per voxel, in MBq*s (1 MBq*s = 1e6 decays).
    energy_mev_per_decay : float
        Energy deposited locally per decay, MeV.
    voxel_volume_ml : float
    density_g_per_ml : float or numpy.ndarray, shape (I, J, K)
        Mass density of each voxel.
    """
    mass_kg = np.asarray(density_g_per_ml, np.float64) * voxel_volume_ml * 1e-3
    energy_j = np.asarray(tia_mbq_s, np.float64) * 1e6 * energy_mev_per_decay * MEV_TO_J
    return energy_j / mass_kg


def density_corrected_dose_gy(dose_medium_gy: np.ndarray, density_g_per_ml: np.ndarray, body_mask: np.ndarray,
                              medium_density_g_per_ml: float = 1.0,
                              min_density_g_per_ml: float = 0.1) -> np.ndarray:
    """Scale a dose computed in a homogeneous medium to the local density, zero outside the body.

    Parameters
    ----------
    dose_medium_gy : numpy.ndarray, shape (I, J, K)
        Dose computed with kernels of the homogeneous medium, Gy.
    density_g_per_ml : numpy.ndarray, shape (I, J, K)
        Local mass density from the CT.
    body_mask : numpy.ndarray of bool, shape (I, J, K)
        Voxels inside the patient; dose is zero elsewhere.
    medium_density_g_per_ml : float
        Density of the kernel's medium (water 1.00, ICRU soft tissue 1.04).
    min_density_g_per_ml : float
        Floor on the density used in the ratio (gas pockets inside the body).
    """
    rho = np.maximum(np.asarray(density_g_per_ml, np.float64), min_density_g_per_ml)
    out = np.asarray(dose_medium_gy, np.float64) * (medium_density_g_per_ml / rho)
    return np.where(np.asarray(body_mask, bool), out, 0.0)


def convolution_dose_gy(tia_mbq_s: np.ndarray, svalues_mgy_per_mbq_s: np.ndarray, *, workers: int | None = None
                        ) -> np.ndarray:
    """Dose (Gy, in the kernel's medium) by linear, non-circular convolution with a voxel S-value cube.

    Parameters
    ----------
    tia_mbq_s : numpy.ndarray, shape (I, J, K)
        Decays per voxel, MBq*s.
    svalues_mgy_per_mbq_s : numpy.ndarray, shape (2a+1, 2b+1, 2c+1)
        Voxel S-values with the source voxel at the centre, mGy/(MBq*s).
    workers : int, optional
        Threads for the FFT.
    """
    from kernels.convolve import convolve_dose_gy

    return convolve_dose_gy(tia_mbq_s, svalues_mgy_per_mbq_s, workers=workers)
