"""Time-activity curves per label from registered SPECT volumes and a label map.

The label map lives on the CT grid, the registered SPECT on the dose grid
(the reference SPECT grid). Two ways to bring the labels onto the SPECT grid:

``"fractional"`` (default)
    Fractional occupancy by supersampling: every SPECT voxel is divided into
    ``s_i x s_j x s_k`` equal sub-voxels (``s`` = SPECT spacing / finest
    label-map spacing, rounded up, at most :data:`MAX_SUBSAMPLES`), the label
    at each sub-voxel centre is looked up in the label map (nearest label
    voxel), and the fraction of the SPECT voxel that belongs to label L is the
    share of its sub-voxel centres that fall in L, among those inside the
    label map's field of view. With a CT voxel several times smaller than
    the 4.8 mm SPECT voxel this resolves organ boundaries to a fraction of a
    SPECT voxel; the fractions of one SPECT voxel sum to at most 1 (exactly 1
    inside the label map's field of view). The label map may be finer or
    coarser than the SPECT along any axis. (An earlier scheme binned the
    label-map voxel centres into SPECT voxels; with 5 mm CT slices and 4.8 mm
    SPECT voxels one SPECT slice in 25 received no centre and dropped out of
    every organ: 4 % of each organ's activity.)
``"nearest"``
    SimpleITK nearest-neighbour resampling of the label map at the SPECT
    voxel centres (through :mod:`pipeline.imageio`), one label per voxel.

Activity of label L at one time point (MBq)::

    A_L = 1e-6 * V_voxel_mL * sum_v f_L(v) C(v)      C in Bq/mL

divided by the label's recovery coefficient when one is given (partial-volume
correction of small VOIs such as the L2-L4 marrow VOI).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..image import Image

__all__ = ["Occupancy", "label_occupancy", "organ_activity_mbq", "DEFAULT_LABEL_NAMES"]

#: Label ids fixed by DESIGN.md.
DEFAULT_LABEL_NAMES = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen", 5: "marrow_L2L4",
                       6: "vertebrae_L2L4", 7: "body"}


@dataclass(frozen=True, eq=False)
class Occupancy:
    """Fractions of every SPECT voxel that belong to each label.

    Attributes
    ----------
    label_ids : tuple of int
        Label ids, in the order of ``fractions``.
    fractions : numpy.ndarray, shape (L, I, J, K), float32
        Fraction (0..1) of each SPECT voxel occupied by each label.
    grid : Image
        The SPECT grid (array not used).
    label_volume_ml : dict
        Volume of each label in the label map (whole label, even outside the SPECT field of view), mL.
    method : str
        ``"fractional"`` or ``"nearest"``.
    """

    label_ids: tuple
    fractions: np.ndarray
    grid: Image
    label_volume_ml: dict
    method: str

    @functools.cached_property
    def _sparse(self) -> list:
        out = []
        for fr in self.fractions:
            flat = fr.reshape(-1)
            idx = np.flatnonzero(flat)
            out.append((idx, flat[idx].astype(np.float64)))
        return out

    def weighted_sum(self, label_id: int, values: np.ndarray) -> float:
        """``sum_v f_L(v) values(v)`` over the label's voxels (values on the grid, shape (I, J, K))."""
        idx, w = self._sparse[self.label_ids.index(label_id)]
        return float(np.dot(w, np.asarray(values).reshape(-1)[idx]))

    def fraction(self, label_id: int) -> np.ndarray:
        """Occupancy map of one label, shape (I, J, K)."""
        return self.fractions[self.label_ids.index(label_id)]

    def volume_ml(self, label_id: int) -> float:
        """Volume of the label inside the SPECT field of view, mL."""
        return float(self.fraction(label_id).sum(dtype=np.float64) * self.grid.voxel_volume_ml)

    def dominant_label(self) -> np.ndarray:
        """Index into ``label_ids`` of the label with the largest fraction, -1 where none, shape (I, J, K)."""
        total = self.fractions.sum(axis=0)
        idx = np.argmax(self.fractions, axis=0).astype(np.int32)
        idx[total <= 0] = -1
        return idx

    def any_label(self) -> np.ndarray:
        """Fraction of each voxel occupied by any label, shape (I, J, K)."""
        return np.minimum(self.fractions.sum(axis=0), 1.0)


#: Largest number of sub-voxels per SPECT voxel axis for the fractional occupancy.
MAX_SUBSAMPLES = 8


@njit(parallel=True, cache=True)
def _sample_labels(labels, lut, m, sub, counts, total):
    """Count sub-voxel centres of every grid voxel by the label they fall in.

    ``m`` maps grid index -> label-map index (3 x 4); ``sub`` holds the
    sub-voxels per grid axis. Centres outside the label map are not counted.
    """
    ni, nj, nk = labels.shape
    gi_n, gj_n, gk_n = total.shape
    si, sj, sk = sub[0], sub[1], sub[2]
    for gi in prange(gi_n):
        for gj in range(gj_n):
            for gk in range(gk_n):
                for a in range(si):
                    pi = gi + (a + 0.5) / si - 0.5
                    for b in range(sj):
                        pj = gj + (b + 0.5) / sj - 0.5
                        for c in range(sk):
                            pk = gk + (c + 0.5) / sk - 0.5
                            x = m[0, 0] * pi + m[0, 1] * pj + m[0, 2] * pk + m[0, 3]
                            y = m[1, 0] * pi + m[1, 1] * pj + m[1, 2] * pk + m[1, 3]
                            z = m[2, 0] * pi + m[2, 1] * pj + m[2, 2] * pk + m[2, 3]
                            i = int(np.floor(x + 0.5))
                            j = int(np.floor(y + 0.5))
                            k = int(np.floor(z + 0.5))
                            if i < 0 or j < 0 or k < 0 or i >= ni or j >= nj or k >= nk:
                                continue
                            total[gi, gj, gk] += 1
                            lab = labels[i, j, k]
                            if lab > 0 and lab < lut.size:
                                li = lut[lab]
                                if li >= 0:
                                    counts[li, gi, gj, gk] += 1


def subsamples(grid_voxel_mm, label_voxel_mm) -> tuple[int, int, int]:
    """Sub-voxels per SPECT axis: SPECT spacing / finest label spacing, rounded up, in [1, MAX_SUBSAMPLES]."""
    finest = float(np.min(label_voxel_mm))
    return tuple(int(min(MAX_SUBSAMPLES, max(1, np.ceil(s / finest - 1e-9)))) for s in np.asarray(grid_voxel_mm, float))


def label_occupancy(labels: Image, grid: Image, label_ids=None, method: str = "fractional") -> Occupancy:
    """Occupancy of the SPECT grid by each label.

    Parameters
    ----------
    labels : Image
        Integer label map (any grid, usually the CT's), 0 = background.
    grid : Image
        Target grid (the registered SPECT).
    label_ids : sequence of int, optional
        Labels to compute (default: every non-zero label present).
    method : {"fractional", "nearest"}
        See the module docstring.

    Returns
    -------
    Occupancy
    """
    lab = np.asarray(labels.array)
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.equal(np.mod(lab, 1), 0)):
            raise InputError(labels.meta.get("source"), "label map holds non-integer values")
        lab = lab.astype(np.int32)
    if np.any(lab < 0):
        raise InputError(labels.meta.get("source"), "label map holds negative labels")
    present = np.unique(lab)
    present = tuple(int(v) for v in present if v > 0)
    ids = present if label_ids is None else tuple(int(v) for v in label_ids)
    vol_ct = labels.voxel_volume_ml
    counts_all = np.bincount(lab.ravel().astype(np.int64), minlength=max(ids, default=0) + 1) if ids else []
    label_volume = {i: float(counts_all[i] * vol_ct) for i in ids}
    if method == "nearest" or labels.same_grid(grid):
        if labels.same_grid(grid):
            on_grid = lab
        else:
            import SimpleITK as sitk

            from ..imageio import from_sitk, to_sitk

            res = sitk.Resample(to_sitk(labels.with_array(lab.astype(np.int32))), to_sitk(grid),
                                sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkInt32)
            on_grid = from_sitk(res, "label").array
        fr = np.stack([(on_grid == i) for i in ids]).astype(np.float32) if ids else \
            np.zeros((0,) + grid.shape, np.float32)
        return Occupancy(ids, fr, grid, label_volume, "nearest" if not labels.same_grid(grid) else "same_grid")
    if method != "fractional":
        raise ValueError(f"method must be 'fractional' or 'nearest', not {method!r}")
    lut = np.full(max(max(ids, default=0), int(lab.max(initial=0))) + 1, -1, np.int32)
    for n, i in enumerate(ids):
        lut[i] = n
    m = np.linalg.inv(labels.affine) @ grid.affine
    counts = np.zeros((len(ids),) + grid.shape, np.int32)
    total = np.zeros(grid.shape, np.int32)
    sub = np.array(subsamples(grid.voxel_size_mm, labels.voxel_size_mm), np.int64)
    _sample_labels(np.ascontiguousarray(lab), lut, np.ascontiguousarray(m[:3]), sub, counts, total)
    inv_total = (1.0 / np.maximum(total, 1)).astype(np.float32)
    fr = np.empty(counts.shape, np.float32)
    for n in range(len(ids)):  # label by label: no (L, I, J, K) float64 temporary
        np.multiply(counts[n], inv_total, out=fr[n], casting="unsafe")
    del counts
    return Occupancy(ids, fr, grid, label_volume, "fractional")


def organ_activity_mbq(spect: Image, occupancy: Occupancy, recovery: dict | None = None) -> dict:
    """Activity of each label in one SPECT volume.

    Parameters
    ----------
    spect : Image
        Activity concentration, Bq/mL, on ``occupancy.grid``.
    occupancy : Occupancy
    recovery : dict, optional
        Label id -> recovery coefficient (0 < RC <= 1); the activity is divided by it.

    Returns
    -------
    dict
        Label id -> activity, MBq.
    """
    if not spect.same_grid(occupancy.grid):
        raise InputError(spect.meta.get("source"), "SPECT is not on the grid of the label occupancy "
                                                   "(time points must be registered to one grid)")
    c = np.asarray(spect.array, dtype=np.float64)
    vol = spect.voxel_volume_ml
    out = {}
    for lid in occupancy.label_ids:
        a = occupancy.weighted_sum(lid, c) * vol * 1e-6
        rc = (recovery or {}).get(lid)
        if rc is not None:
            a /= rc
        out[lid] = a
    return out
