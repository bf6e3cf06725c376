"""DICOM patient geometry (LPS) to the RAS+ affine of :class:`pipeline.image.Image`.

This is the one place where ingest turns DICOM positions into an affine. The
formula, for a stack of slices:

- ``r`` = ImageOrientationPatient[0:3], the LPS unit vector along which the
  column index ``i`` increases (along a row);
- ``c`` = ImageOrientationPatient[3:6], the LPS unit vector along which the
  row index ``j`` increases (down a column);
- ``n`` = the LPS unit vector along which the slice index ``k`` increases
  (``r x c`` or its opposite, see below);
- PixelSpacing = ``(dr, dc)``: ``dr`` between rows (along ``c``), ``dc``
  between columns (along ``r``); ``dk`` the spacing between slice centres;
- ``P0`` = ImagePositionPatient of slice ``k = 0`` (centre of its first voxel).

Voxel ``(i, j, k)`` lies at ``x_LPS = P0 + i*dc*r + j*dr*c + k*dk*n``, and
``x_RAS = D @ x_LPS`` with ``D = diag(-1, -1, 1)``. Hence

``affine = affine_from_geometry(D @ P0, D @ [r | c | n], (dc, dr, dk))``.

pydicom arrays are ``[frame, row, col] = [k, j, i]`` and are transposed to
``[i, j, k]`` before they meet this affine.

Stacking direction ``n``: for a stack of single-slice files the slices are
sorted by their position along ``r x c`` (never by InstanceNumber), so
``n = r x c``. For an NM multi-frame tomogram the frames are kept in file
order and stack by SpacingBetweenSlices ``s`` along ``r x c``; a negative ``s``
means they stack along ``-(r x c)``: ``n = sign(s) (r x c)``, ``dk = |s|``.
SliceThickness is never used as a spacing.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError
from pipeline.image import affine_from_geometry

__all__ = ["LPS_TO_RAS", "affine_from_dicom", "slice_normal", "sort_slices"]

#: LPS -> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Relative tolerance on slice-spacing uniformity (1 %; scanners write positions to ~0.001 mm).
SPACING_RTOL = 0.01
#: In-plane drift (mm) of slice positions that counts as gantry tilt / shear.
TILT_TOL_MM = 0.05


def slice_normal(iop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosine ``r``, column cosine ``c`` and normal ``r x c`` (LPS unit vectors).

    Parameters
    ----------
    iop : sequence of 6 float
        ImageOrientationPatient.
    """
    iop = np.asarray([float(v) for v in iop], float)
    if iop.shape != (6,):
        raise ValueError(f"ImageOrientationPatient needs 6 values, got {iop.size}")
    r = iop[:3] / np.linalg.norm(iop[:3])
    c = iop[3:] / np.linalg.norm(iop[3:])
    n = np.cross(r, c)
    return r, c, n / np.linalg.norm(n)


def affine_from_dicom(position_lps_mm, iop, pixel_spacing_mm, slice_direction_lps, slice_spacing_mm):
    """RAS+ affine of a slice stack from DICOM LPS values (formula in the module docstring).

    Parameters
    ----------
    position_lps_mm : array_like, shape (3,)
        ImagePositionPatient of slice ``k = 0``, LPS mm.
    iop : sequence of 6 float
        ImageOrientationPatient.
    pixel_spacing_mm : sequence of 2 float
        PixelSpacing ``(between rows, between columns)`` in mm.
    slice_direction_lps : array_like, shape (3,)
        Unit vector along which ``k`` increases, LPS.
    slice_spacing_mm : float
        Distance between slice centres, mm (> 0).

    Returns
    -------
    numpy.ndarray, shape (4, 4)
    """
    r, c, _ = slice_normal(iop)
    dr, dc = (float(v) for v in pixel_spacing_mm)
    n = np.asarray(slice_direction_lps, float)
    direction_lps = np.column_stack([r, c, n / np.linalg.norm(n)])
    return affine_from_geometry(LPS_TO_RAS @ np.asarray(position_lps_mm, float),
                                LPS_TO_RAS @ direction_lps, (dc, dr, float(slice_spacing_mm)))


def sort_slices(positions_lps_mm, iop, paths):
    """Sort single-slice files along the slice normal and check the stack.

    Parameters
    ----------
    positions_lps_mm : array_like, shape (N, 3)
        ImagePositionPatient of each file.
    iop : sequence of 6 float
        The common ImageOrientationPatient.
    paths : sequence of path, length N
        The files, for error messages.

    Returns
    -------
    order : numpy.ndarray of int, shape (N,)
        Indices that sort the files along ``r x c``.
    slice_spacing_mm : float
        Uniform distance between slice centres.

    Raises
    ------
    InputError
        Fewer than two slices, two slices at one position, non-uniform spacing
        (missing slices), or positions that drift in-plane (gantry tilt).
    """
    pos = np.asarray(positions_lps_mm, float).reshape(-1, 3)
    if len(pos) < 2:
        raise InputError(paths[0], "a slice series needs at least two slices to know its spacing")
    _, _, n = slice_normal(iop)
    dist = pos @ n
    order = np.argsort(dist, kind="stable")
    d = dist[order]
    steps = np.diff(d)
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise InputError(paths[order[k + 1]], f"two slices at the same position ({d[k]:.3f} mm along the "
                         f"slice normal; the other is {paths[order[k]]})")
    spacing = float(np.median(steps))
    bad = np.abs(steps - spacing) > SPACING_RTOL * spacing + 1e-3
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        ratio = steps[k] / spacing
        what = (f"about {round(ratio) - 1} missing slice(s)" if ratio > 1.5
                else "non-uniform slice spacing")
        raise InputError(paths[order[k + 1]], f"{what}: step {steps[k]:.3f} mm after the slice at "
                         f"{d[k]:.3f} mm, where the series spacing is {spacing:.3f} mm")
    rel = pos[order] - pos[order[0]]
    in_plane = rel - np.outer(rel @ n, n)
    drift = np.linalg.norm(in_plane, axis=1)
    if np.any(drift > TILT_TOL_MM):
        k = int(np.argmax(drift))
        raise InputError(paths[order[k]], f"slice positions drift {drift[k]:.2f} mm in-plane over the "
                         "stack (gantry tilt or sheared stack); resample it to an orthogonal grid first")
    spacing = float((d[-1] - d[0]) / (len(d) - 1))
    return order, spacing
