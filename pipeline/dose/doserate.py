"""Absorbed-dose rate (Gy/h) at a time point from the activity imaged then.

The dose rate is the absorbed dose per unit time of the activity present at
that moment, with the same kernels and density correction as the absorbed dose:

    Ddot(x, t) = sum_s A(s, t) S(x <- s) * rho_medium / rho(x)

with ``A`` the activity per voxel (MBq) and ``S`` in mGy/(MBq*s), which gives
mGy/s; times 3600 s/h and 1e-3 Gy/mGy this is Gy/h (mGy/s x 3.6 = Gy/h). The
same number comes out of the absorbed-dose map of a time-integrated activity
concentration of ``C`` MBq*h/mL with ``C`` the activity concentration in MBq/mL
held for one hour, which is how it is computed here: the dose map is
linear in the TIA, so there is one convolution code path for both, and the
time integral of the dose-rate maps equals the dose map of the time integral
of the activity.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BQ_PER_MBQ", "dose_rate_gy_per_h"]

BQ_PER_MBQ = 1e6


def dose_rate_gy_per_h(activity_bq_per_ml: np.ndarray, voxel_volume_ml: float, medium, **dose_kw) -> np.ndarray:
    """Dose-rate map (Gy/h) on the dose grid from an activity-concentration map (Bq/mL).

    Parameters
    ----------
    activity_bq_per_ml : numpy.ndarray, shape (I, J, K)
        Activity concentration at the time point, Bq/mL.
    voxel_volume_ml : float
        Volume of one dose-grid voxel, mL.
    medium : pipeline.dose.medium.DoseGridMedium
        Density and body mask on the same grid.
    **dose_kw
        The dose-calculation choices of :func:`pipeline.dose.stage.absorbed_dose_map_gy`
        (``settings``, ``svalues_mgy_per_mbq_s``, ``kernel_density_g_per_ml``,
        ``electron_energy_mev``, ``photon_energy_mev``, ``workers``).

    Returns
    -------
    numpy.ndarray, shape (I, J, K), float64
        Absorbed-dose rate, Gy/h.
    """
    from .stage import absorbed_dose_map_gy

    conc_mbq_per_ml = np.asarray(activity_bq_per_ml, np.float64) / BQ_PER_MBQ
    # C MBq/mL held for one hour is a TIA of C MBq*h/mL; its absorbed dose (Gy) is the dose per hour
    return absorbed_dose_map_gy(conc_mbq_per_ml, voxel_volume_ml, medium, **dose_kw)
