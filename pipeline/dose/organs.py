"""Organ dose statistics and cumulative dose-volume histograms.

Statistics are mass-weighted where it matters: the mean absorbed dose of an
organ is energy over mass, so each voxel counts with its mass (CT density
times volume). Percentile doses D2/D50/D98 follow the usual volume
definition: D98 is the minimum dose received by the hottest 98 % of the
volume (the 2nd percentile of voxel doses), D2 the dose exceeded in 2 % of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OrganDose", "organ_dose_table", "cumulative_dvh"]


@dataclass(frozen=True)
class OrganDose:
    """Dose statistics of one structure (Gy unless stated)."""

    label: int
    name: str
    n_voxels: int
    volume_ml: float
    mass_g: float
    mean_gy: float
    median_gy: float
    min_gy: float
    max_gy: float
    d2_gy: float
    d50_gy: float
    d98_gy: float
    mean_gy_per_gbq: float | None

    def as_row(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def organ_dose_table(dose_gy: np.ndarray, labels: np.ndarray, names: dict[int, str], voxel_volume_ml: float,
                     density_g_per_ml: np.ndarray, injected_activity_gbq: float | None) -> list[OrganDose]:
    """Per-label dose statistics on one grid.

    Parameters
    ----------
    dose_gy : numpy.ndarray, shape (I, J, K)
    labels : numpy.ndarray of int, shape (I, J, K)
        Label map on the same grid.
    names : dict
        Label id -> structure name; only these labels are reported, in order.
    voxel_volume_ml : float
    density_g_per_ml : numpy.ndarray, shape (I, J, K)
        Mass density (for the mass and the mass-weighted mean).
    injected_activity_gbq : float or None
        For the Gy/GBq column.
    """
    rows = []
    for label, name in names.items():
        mask = labels == label
        n = int(mask.sum())
        if n == 0:
            raise ValueError(f"structure {name!r} (label {label}) has no voxels on the dose grid")
        d = dose_gy[mask].astype(np.float64)
        m = density_g_per_ml[mask].astype(np.float64) * voxel_volume_ml
        mean = float(np.sum(d * m) / np.sum(m))
        # one partition for all percentiles: D2 = 98th, D50 = median, D98 = 2nd percentile of voxel doses
        p98, p50, p2 = np.percentile(d, [100.0 * (1 - 0.02), 50.0, 100.0 * (1 - 0.98)])
        rows.append(OrganDose(
            label=int(label), name=name, n_voxels=n, volume_ml=n * voxel_volume_ml, mass_g=float(m.sum()),
            mean_gy=mean, median_gy=float(p50), min_gy=float(d.min()), max_gy=float(d.max()),
            d2_gy=float(p98), d50_gy=float(p50), d98_gy=float(p2),
            mean_gy_per_gbq=(mean / injected_activity_gbq) if injected_activity_gbq else None,
        ))
    return rows


def cumulative_dvh(dose_gy: np.ndarray, mask: np.ndarray, bin_edges_gy: np.ndarray) -> np.ndarray:
    """Fraction of the structure's volume receiving at least each dose in ``bin_edges_gy``.

    Returns
    -------
    numpy.ndarray, shape (len(bin_edges_gy),)
        Volume fraction (0..1), non-increasing, 1 at dose 0.
    """
    d = np.sort(dose_gy[mask].ravel())
    if d.size == 0:
        raise ValueError("empty structure")
    below = np.searchsorted(d, np.asarray(bin_edges_gy, float), side="left")
    return 1.0 - below / d.size
