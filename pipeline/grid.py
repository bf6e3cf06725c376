"""Resampling an :class:`~pipeline.image.Image` onto another image's grid (world-aligned).

Thin layer over SimpleITK's resampler, through :mod:`pipeline.imageio` (the only
module that converts geometry). Identity transform: both grids live in the
same world (RAS+ mm).
"""

from __future__ import annotations

import numpy as np

from .image import Image
from .imageio import from_sitk, to_sitk

__all__ = ["resample_to", "block_average_sigma_mm", "bounding_box"]

_INTERPOLATORS = ("nearest", "linear", "bspline")


def block_average_sigma_mm(source_voxel_mm, target_voxel_mm) -> np.ndarray:
    """Gaussian sigma (mm) that approximates averaging a fine image over a coarse voxel.

    A box of width ``w`` has variance ``w^2 / 12``; the source voxels already
    carry ``s^2 / 12``. Zero where the target is not coarser.
    """
    src = np.asarray(source_voxel_mm, float)
    tgt = np.asarray(target_voxel_mm, float)
    return np.sqrt(np.clip(tgt**2 - src**2, 0.0, None) / 12.0)


def resample_to(image: Image, reference: Image, interpolator: str = "linear", default_value: float = 0.0,
                antialias: bool = False) -> Image:
    """Resample ``image`` onto the grid of ``reference`` (same world, identity transform).

    Parameters
    ----------
    image : Image
        The image to resample; keeps its unit.
    reference : Image
        Provides the target grid (shape and affine); its values are ignored.
    interpolator : {"nearest", "linear", "bspline"}
        Use "nearest" for label maps.
    default_value : float
        Value outside ``image``'s field of view.
    antialias : bool
        Smooth with a Gaussian matched to the target voxel (see
        :func:`block_average_sigma_mm`) before sampling onto a coarser grid, so
        that each target voxel holds (about) the mean over its volume.

    Returns
    -------
    Image
        On ``reference``'s grid, float64 (or the input dtype for "nearest").
    """
    import SimpleITK as sitk

    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {_INTERPOLATORS}")
    if image.same_grid(reference):
        return image
    src = image
    if interpolator != "nearest":
        src = image.with_array(image.array.astype(np.float64))
    moving = to_sitk(src)
    if antialias and interpolator != "nearest":
        sigma = block_average_sigma_mm(image.voxel_size_mm, reference.voxel_size_mm)
        if np.any(sigma > 0):
            moving = sitk.SmoothingRecursiveGaussian(moving, [float(max(s, 1e-3)) for s in sigma])
    ref = to_sitk(reference.with_array(np.zeros(reference.shape, np.uint8)))
    interp = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}[interpolator]
    out = sitk.Resample(moving, ref, sitk.Transform(), interp, float(default_value), moving.GetPixelID())
    return from_sitk(out, image.unit, image.meta)


def bounding_box(mask: np.ndarray, margin_vox=0) -> tuple[slice, slice, slice] | None:
    """Index box (slices) around the non-zero voxels of a 3-D array, grown by a margin.

    Parameters
    ----------
    mask : numpy.ndarray, shape (I, J, K)
        Any array; its non-zero voxels are boxed.
    margin_vox : int or sequence of 3 int
        Voxels added on both sides along each axis (clipped to the array).

    Returns
    -------
    tuple of slice or None
        ``None`` when ``mask`` has no non-zero voxel.
    """
    margin = np.broadcast_to(np.asarray(margin_vox, int), (3,))
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=other))
        if hit.size == 0:
            return None
        lo = max(0, int(hit[0]) - int(margin[axis]))
        hi = min(mask.shape[axis], int(hit[-1]) + 1 + int(margin[axis]))
        box.append(slice(lo, hi))
    return tuple(box)
