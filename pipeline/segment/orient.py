"""Arrays in RAS axis order for the anatomical rules of the segment stage.

The rules of the built-in segmenter and of the QC gate speak of the patient's
right, anterior and superior. They work on the image array permuted and flipped
so that axis 0 grows with the RAS+ x coordinate (towards the patient's right),
axis 1 with y (anterior) and axis 2 with z (superior).

The permutation is the nearest one for oblique grids (nibabel's
``io_orientation``); nothing is resampled.
"""

from __future__ import annotations

import numpy as np

from ..image import Image

__all__ = ["to_ras_order", "from_ras_order", "ras_order_affine", "block_factors", "block_mean"]


def to_ras_order(image: Image, array=None):
    """Array of ``image`` permuted/flipped to RAS order.

    Parameters
    ----------
    image : Image
        Gives the grid (affine).
    array : numpy.ndarray, optional
        An array on ``image``'s grid to reorder instead of ``image.array``.

    Returns
    -------
    arr : numpy.ndarray
        Axes in RAS order: axis 0 along +x (RAS+), axis 1 along +y (anterior),
        axis 2 along +z (superior).
    transform : numpy.ndarray, shape (3, 2)
        nibabel orientation transform used (for :func:`from_ras_order`).
    voxel_size_mm : numpy.ndarray, shape (3,)
        Voxel size along the reordered axes, mm.
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    tr = ornt_transform(io_orientation(image.affine), axcodes2ornt("RAS"))
    arr = apply_orientation(np.asarray(image.array if array is None else array), tr)
    perm = [int(np.flatnonzero(tr[:, 0] == ax)[0]) for ax in range(3)]
    return arr, tr, image.voxel_size_mm[perm]


def from_ras_order(arr, image: Image):
    """Inverse of :func:`to_ras_order`: an array on the RAS-ordered grid back to ``image``'s order."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    back = ornt_transform(axcodes2ornt("RAS"), io_orientation(image.affine))
    return apply_orientation(arr, back)


def ras_order_affine(image: Image, transform, factors=(1, 1, 1)) -> np.ndarray:
    """Affine (index -> RAS+ mm) of the RAS-ordered grid, optionally block-averaged by ``factors``.

    A block of ``factors`` voxels is one working voxel whose centre is the
    centre of the block.
    """
    from nibabel.orientations import inv_ornt_aff

    aff = image.affine @ inv_ornt_aff(transform, image.shape)
    scale = np.eye(4)
    scale[:3, :3] = np.diag(factors)
    scale[:3, 3] = (np.asarray(factors, float) - 1.0) / 2.0
    return aff @ scale


def block_factors(voxel_size_mm, working_voxel_mm: float = 2.0, slices: bool = False) -> tuple[int, int, int]:
    """Integer block factors that bring the voxel size near ``working_voxel_mm``.

    In-plane axes (0, 1) always; the slice axis (2) only when ``slices`` is true.
    """
    vs = np.asarray(voxel_size_mm, float)
    f = [int(max(1, round(working_voxel_mm / v))) for v in vs]
    if not slices:
        f[2] = 1
    return tuple(f)


def block_mean(arr: np.ndarray, factors) -> np.ndarray:
    """Mean over blocks of ``factors`` voxels (float32); a partial block at the far end is dropped."""
    f = tuple(int(g) for g in factors)
    sh = [n // g * g for n, g in zip(arr.shape, f)]
    a = arr[: sh[0], : sh[1], : sh[2]]
    a = a.reshape(sh[0] // f[0], f[0], sh[1] // f[1], f[1], sh[2] // f[2], f[2])
    return a.mean(axis=(1, 3, 5), dtype=np.float32)
