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

__all__ = ["OrganDose", "LabelVoxels", "organ_dose_table", "label_voxel_indices", "cumulative_dvh",
           "cumulative_dvh_of_values"]


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


@dataclass(frozen=True, eq=False)
class LabelVoxels:
    """Where each label's voxels are, found in one pass over a label map.

    Attributes
    ----------
    indices : dict
        Label id -> int array of flat indices into ``numpy.ravel(array, order)``
        of any array of the label map's shape (empty when the label is absent).
    order : {"C", "F"}
        Flattening order: the label map's own memory layout, so that flattening
        arrays of that layout is free.
    """

    indices: dict
    order: str

    def values(self, array: np.ndarray, label: int) -> np.ndarray:
        """The values of ``array`` (shape of the label map) at the voxels of ``label``."""
        return np.ravel(array, order=self.order)[self.indices[label]]


def label_voxel_indices(labels: np.ndarray, label_ids) -> LabelVoxels:
    """Voxels of each label, from one stable sort of the label map.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (I, J, K)
    label_ids : iterable of int
        The labels wanted.

    Returns
    -------
    LabelVoxels
        The same voxels as boolean indexing with ``labels == label``, in memory
        order (so sums over them equal the boolean-mask sums to float rounding).
    """
    labels = np.asarray(labels)
    order = "F" if labels.flags.f_contiguous and not labels.flags.c_contiguous else "C"
    flat = np.ravel(labels, order=order)
    ids = sorted({int(k) for k in label_ids})
    if flat.dtype.kind not in "iu" or not ids or ids[0] < 0 or ids[-1] >= 65535:
        return LabelVoxels({k: np.flatnonzero(flat == k) for k in ids}, order)
    top = ids[-1]
    # labels outside 0..top (never reported) share the key top + 1; 16-bit keys for numpy's radix sort
    if flat.dtype.kind == "u":
        keys = np.minimum(flat, top + 1).astype(np.uint16)
    else:
        keys = np.where((flat >= 0) & (flat <= top), flat, top + 1).astype(np.uint16)
    if ids[0] > 0:
        # background (0) is most of a CT: sort only the labelled voxels
        where = np.flatnonzero(keys)
        keys = keys[where]
    else:
        where = None
    perm = np.argsort(keys, kind="stable")  # stable: each label's voxels stay in memory order
    if where is not None:
        perm = where[perm]
    counts = np.bincount(keys, minlength=top + 2)
    ends = np.cumsum(counts)
    return LabelVoxels({k: perm[ends[k] - counts[k]:ends[k]] for k in ids}, order)


def organ_dose_table(dose_gy: np.ndarray, labels: np.ndarray, names: dict[int, str], voxel_volume_ml: float,
                     density_g_per_ml: np.ndarray, injected_activity_gbq: float | None, *,
                     voxels: LabelVoxels | None = None) -> list[OrganDose]:
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
    voxels : LabelVoxels, optional
        From :func:`label_voxel_indices` (computed here when not given).
    """
    if voxels is None:
        voxels = label_voxel_indices(labels, names)
    dose_flat = np.ravel(dose_gy, order=voxels.order)
    rho_flat = np.ravel(density_g_per_ml, order=voxels.order)
    rows = []
    for label, name in names.items():
        idx = voxels.indices[label]
        n = int(idx.size)
        if n == 0:
            raise ValueError(f"structure {name!r} (label {label}) has no voxels on the dose grid")
        d = dose_flat[idx].astype(np.float64)
        m = rho_flat[idx].astype(np.float64) * voxel_volume_ml
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


def cumulative_dvh_of_values(dose_gy: np.ndarray, bin_edges_gy: np.ndarray) -> np.ndarray:
    """Cumulative DVH of a structure given as its voxel doses (see :func:`cumulative_dvh`).

    With increasing edges each voxel is binned once (``searchsorted`` of the voxel
    into the edges, no sort of the voxels); the counts are the same integers as
    those of the sorted-voxel definition.
    """
    d = np.asarray(dose_gy).ravel()
    edges = np.asarray(bin_edges_gy, float)
    if d.size == 0:
        raise ValueError("empty structure")
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        below = np.searchsorted(np.sort(d), edges, side="left")
        return 1.0 - below / d.size
    # k = number of edges <= d; a voxel receives at least edges[i] exactly when k > i
    k = np.searchsorted(edges, d, side="right")
    below = np.cumsum(np.bincount(k, minlength=edges.size + 1))[: edges.size]
    return 1.0 - below / d.size
