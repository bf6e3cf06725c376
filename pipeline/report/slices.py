"""Planes of CT, dose and labels as they are drawn: radiological orientation, millimetre extents.

Volumes are first put in RAS order (array axes 0, 1, 2 increasing towards the patient's right,
anterior and superior; the affine's own axis order and flips are undone here, nowhere else in the
report). Planes are then cut and arranged the way radiologists
read them:

- axial: viewed from the feet; the patient's right on the viewer's left, anterior at the top;
- coronal: viewed from the front; the patient's right on the viewer's left, superior at the top;
- sagittal: viewed from the patient's left; anterior on the viewer's left, superior at the top.

Each :class:`Panel` carries its orientation letters and, for every displayed row and column,
the RAS voxel index it came from, so tests can map a displayed pixel back to the patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Volumes", "Panel", "to_ras_order", "plane", "mip", "body_box"]

#: plane -> (fixed RAS axis, row axis, column axis, letters left/right/top/bottom).
#: Rows run from superior (or anterior) downwards, columns as described in the module docstring.
_PLANES = {
    "axial": (2, 1, 0, ("R", "L", "A", "P")),
    "coronal": (1, 2, 0, ("R", "L", "S", "I")),
    "sagittal": (0, 2, 1, ("A", "P", "S", "I")),
}


def to_ras_order(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``array`` re-ordered so that its axes increase towards R, A and S; and the matching affine.

    Parameters
    ----------
    array : numpy.ndarray, shape (I, J, K)
        Voxel values indexed ``[i, j, k]``.
    affine : numpy.ndarray, shape (4, 4)
        Voxel index to RAS+ mm.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The re-ordered array (a view where possible) and its affine (voxel index to RAS+ mm).
    """
    from nibabel import orientations as nio

    ornt = nio.io_orientation(affine)
    out = nio.apply_orientation(array, ornt)
    return out, affine @ nio.inv_ornt_aff(ornt, array.shape)


@dataclass
class Volumes:
    """CT (HU), dose (Gy) and labels on one grid in RAS order, with the RAS affine."""

    ct: np.ndarray
    dose: np.ndarray
    labels: np.ndarray
    affine: np.ndarray

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def world_mm(self, index) -> np.ndarray:
        """RAS+ mm of a voxel index (i, j, k) of the RAS-ordered arrays."""
        return (self.affine @ np.r_[np.asarray(index, float), 1.0])[:3]


@dataclass
class Panel:
    """One displayed plane: 2-D images (row 0 at the top), extents, letters, source indices.

    Attributes
    ----------
    name : str
        ``axial``, ``coronal``, ``sagittal`` or ``coronal MIP``.
    ct, dose, labels : numpy.ndarray, shape (rows, cols)
        HU, Gy and label ids as drawn.
    row_mm, col_mm : float
        Pixel height and width, mm.
    letters : tuple of str
        Orientation letters on the left, right, top and bottom edges.
    fixed_axis : int
        RAS axis held fixed (for a MIP: the projected axis).
    fixed_index : int or None
        RAS voxel index of the plane (None for a MIP).
    row_index, col_index : numpy.ndarray
        RAS voxel index along the row and column axes of every displayed row and column.
    row_axis, col_axis : int
        RAS axes along the displayed rows and columns.
    """

    name: str
    ct: np.ndarray
    dose: np.ndarray
    labels: np.ndarray
    row_mm: float
    col_mm: float
    letters: tuple
    fixed_axis: int
    fixed_index: int | None
    row_index: np.ndarray
    col_index: np.ndarray
    row_axis: int
    col_axis: int

    @property
    def extent(self) -> tuple:
        """matplotlib ``imshow`` extent (left, right, bottom, top) in mm, row 0 at the top."""
        return (0.0, self.dose.shape[1] * self.col_mm, self.dose.shape[0] * self.row_mm, 0.0)

    def ras_index(self, row: int, col: int) -> np.ndarray:
        """RAS voxel index of a displayed pixel (the plane's index for the fixed axis)."""
        index = np.zeros(3, int)
        index[self.row_axis] = self.row_index[row]
        index[self.col_axis] = self.col_index[col]
        index[self.fixed_axis] = -1 if self.fixed_index is None else self.fixed_index
        return index


def body_box(vol: Volumes, margin_mm: float = 10.0) -> tuple:
    """Index slices of the body (label 7, else CT above -300 HU) with a margin, per RAS axis."""
    mask = vol.labels == 7
    if not mask.any():
        mask = vol.ct > -300
    if not mask.any():
        return tuple(slice(0, n) for n in vol.dose.shape)
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        pad = int(np.ceil(margin_mm / vol.spacing_mm[axis]))
        out.append(slice(max(idx[0] - pad, 0), min(idx[-1] + pad + 1, mask.shape[axis])))
    return tuple(out)


def _arrange(name, stack, fixed_axis, fixed_index, box, spacing):
    """Cut the box, order rows/columns for display, return a Panel from a 2-D stack per quantity."""
    _, row_axis, col_axis, letters = _PLANES[name.split()[0]]
    # reversed: superior (axial: anterior) in the top row; the patient's right (sagittal: anterior)
    # in the left column
    rows = np.arange(box[row_axis].start, box[row_axis].stop)[::-1]
    cols = np.arange(box[col_axis].start, box[col_axis].stop)[::-1]
    keep = [a for a in range(3) if a != fixed_axis]
    out = []
    for plane2d in stack:
        # plane2d is indexed by the two kept RAS axes in increasing axis order
        view = plane2d if keep == [row_axis, col_axis] else plane2d.T
        out.append(view[np.ix_(rows, cols)])
    return Panel(name, *out, row_mm=float(spacing[row_axis]), col_mm=float(spacing[col_axis]),
                 letters=letters, fixed_axis=fixed_axis, fixed_index=fixed_index, row_index=rows,
                 col_index=cols, row_axis=row_axis, col_axis=col_axis)


def plane(vol: Volumes, name: str, index: int, box=None) -> Panel:
    """The ``axial``, ``coronal`` or ``sagittal`` plane through RAS voxel ``index`` of its fixed axis."""
    fixed_axis = _PLANES[name][0]
    box = box or body_box(vol)
    index = int(np.clip(index, 0, vol.dose.shape[fixed_axis] - 1))
    take = [slice(None)] * 3
    take[fixed_axis] = index
    stack = [vol.ct[tuple(take)], vol.dose[tuple(take)], vol.labels[tuple(take)]]
    return _arrange(name, stack, fixed_axis, index, box, vol.spacing_mm)


def mip(vol: Volumes, box=None) -> Panel:
    """Coronal maximum-intensity projection of the dose (CT: MIP of bone-window HU; labels: none)."""
    box = box or body_box(vol)
    sub = [slice(None)] * 3
    sub[1] = box[1]  # project over the body only
    dose = vol.dose[tuple(sub)].max(axis=1)
    ct = vol.ct[tuple(sub)].max(axis=1)
    labels = np.zeros_like(dose, dtype=np.int32)
    return _arrange("coronal MIP", [ct, dose, labels], 1, None, box, vol.spacing_mm)
