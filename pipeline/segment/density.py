"""CT number (HU) to mass density (g/mL), and per-structure volume, density and mass.

The default calibration is the piecewise-linear HU-to-mass-density relation of

    Schneider W, Bortfeld T, Schlegel W. "Correlation between CT numbers and
    tissue parameters needed for Monte Carlo simulations of clinical dose
    distributions." Phys Med Biol 45 (2000) 459-478, section 2.3 / figure 4
    (stoichiometric calibration, five line segments):

    =====================  ==================================  ==================
    HU range               density (g/mL)                      tissues
    =====================  ==================================  ==================
    -1000 <= H <= -98      1.03091 + 1.0297e-3 * H             air, lung, adipose
    -98 < H <= 14          1.018 + 0.893e-3 * H                adipose to water
    14 < H <= 23           1.03                                soft tissue
    23 < H <= 100          1.003 + 1.169e-3 * H                soft tissue
    H > 100                1.017 + 0.592e-3 * H                skeletal tissues
    =====================  ==================================  ==================

HU below -1000 (padding outside the reconstruction circle, e.g. -3024 on GE)
are clamped to -1000 (air, ~0.001 g/mL). The relation is stoichiometric, i.e.
largely scanner-independent in shape, but a scanner's own phantom calibration
can be passed as a table to :func:`hu_to_density_g_per_ml` instead. The step at
100 HU (1.120 -> 1.076 g/mL) is in the published relation: soft tissues and
skeletal tissues lie on different lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SCHNEIDER_2000", "hu_to_density_g_per_ml", "StructureStats", "structure_stats"]

#: Schneider et al. 2000 segments: (upper HU bound inclusive, intercept g/mL, slope g/mL per HU).
SCHNEIDER_2000 = (
    (-98.0, 1.03091, 1.0297e-3),
    (14.0, 1.018, 0.893e-3),
    (23.0, 1.03, 0.0),
    (100.0, 1.003, 1.169e-3),
    (np.inf, 1.017, 0.592e-3),
)


def hu_to_density_g_per_ml(hu_array, table=None) -> np.ndarray:
    """Mass density (g/mL) of each voxel from its CT number (HU).

    Parameters
    ----------
    hu_array : array_like, any shape
        CT numbers in HU.
    table : tuple of (float, float) pairs, optional
        A scanner's own calibration as ``((hu_0, rho_0), (hu_1, rho_1), ...)``
        with increasing HU, interpolated linearly and held constant beyond its
        ends. Default: the Schneider et al. (2000) relation (module docstring).

    Returns
    -------
    numpy.ndarray, same shape, float64
        Mass density in g/mL (>= 0).
    """
    hu = np.asarray(hu_array, dtype=np.float64)
    if table is not None:
        pts = np.asarray(table, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or np.any(np.diff(pts[:, 0]) <= 0):
            raise ValueError("calibration table must be (HU, g/mL) pairs with increasing HU")
        return np.interp(hu, pts[:, 0], pts[:, 1])
    hu = np.maximum(hu, -1000.0)
    intercepts = np.array([seg[1] for seg in SCHNEIDER_2000])
    slopes = np.array([seg[2] for seg in SCHNEIDER_2000])
    # first segment whose upper bound >= hu: the number of upper bounds below hu
    # (a comparison per bound is twice as fast as searchsorted on a CT's 30 million body voxels)
    segment = np.zeros(hu.shape, np.uint8)
    for upper, _, _ in SCHNEIDER_2000[:-1]:
        segment += hu > upper
    rho = np.take(intercepts, segment) + np.take(slopes, segment) * hu
    return np.maximum(rho, 0.0)


@dataclass(frozen=True)
class StructureStats:
    """Volume, mean CT number, mean density and mass of one structure."""

    label: int
    name: str
    volume_ml: float
    mean_hu: float
    density_g_per_ml: float
    mass_g: float


def structure_stats(labels: np.ndarray, ct_hu: np.ndarray, voxel_volume_ml: float,
                    vocabulary: dict[int, str]) -> list[StructureStats]:
    """Per-structure volume (mL), mean HU, mean density (g/mL) and mass (g).

    The mass is the sum over the structure's voxels of density times voxel
    volume; the mean density is mass / volume.

    Parameters
    ----------
    labels : numpy.ndarray, shape (I, J, K), integer
        Label map on the CT grid.
    ct_hu : numpy.ndarray, shape (I, J, K)
        CT in HU.
    voxel_volume_ml : float
        Volume of one voxel in mL.
    vocabulary : dict
        id -> name of the structures to report (in this order).
    """
    if labels.shape != ct_hu.shape:
        raise ValueError(f"labels {labels.shape} and CT {ct_hu.shape} differ in shape")
    rows = []
    for label_id, name in vocabulary.items():
        sel = labels == label_id
        n = int(np.count_nonzero(sel))
        if n == 0:
            rows.append(StructureStats(int(label_id), name, 0.0, float("nan"), float("nan"), 0.0))
            continue
        hu = ct_hu[sel].astype(np.float64)
        rho = hu_to_density_g_per_ml(hu)
        volume = n * voxel_volume_ml
        mass = float(rho.sum() * voxel_volume_ml)
        rows.append(StructureStats(int(label_id), name, volume, float(hu.mean()), mass / volume, mass))
    return rows
