"""Bring user masks onto the CT grid, never silently misaligned.

A mask on exactly the CT grid is used as is. A mask on another grid of the
same patient space (overlapping the CT) is resampled with nearest neighbour and
a note says so. A mask that does not overlap the CT, or whose non-empty part
falls largely outside it, is refused with :class:`~pipeline.errors.InputError`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..image import Image

__all__ = ["conform_to_ct", "world_bbox"]


def world_bbox(image: Image, mask: np.ndarray | None = None):
    """RAS+ bounding box (min, max), shape (2, 3), of the voxel centres (of ``mask`` if given)."""
    if mask is None:
        corners = np.array([[i, j, k] for i in (0, image.shape[0] - 1) for j in (0, image.shape[1] - 1)
                            for k in (0, image.shape[2] - 1)], float)
    else:
        idx = np.argwhere(mask)
        if idx.size == 0:
            return None
        lo, hi = idx.min(0), idx.max(0)
        corners = np.array([[i, j, k] for i in (lo[0], hi[0]) for j in (lo[1], hi[1]) for k in (lo[2], hi[2])],
                           float)
    xyz = image.index_to_world(corners)
    return np.stack([xyz.min(0), xyz.max(0)])


def conform_to_ct(mask_image: Image, ct: Image, source, notes: list | None = None,
                  min_inside_fraction: float = 0.95) -> Image:
    """Label/mask image on the CT grid.

    Parameters
    ----------
    mask_image : Image
        Integer label map or boolean mask, any grid.
    ct : Image
        The CT that defines the target grid.
    source : str or os.PathLike
        Where the mask came from (for messages).
    notes : list, optional
        A note is appended when the mask is resampled.
    min_inside_fraction : float
        Fraction of the mask's labelled voxels that must fall inside the CT
        field of view; below it the mask is refused.

    Raises
    ------
    InputError
        When the mask does not overlap the CT or falls largely outside it.
    """
    if mask_image.same_grid(ct):
        return mask_image
    from ..grid import resample_to

    arr = np.asarray(mask_image.array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    labelled = arr != 0
    if not labelled.any():
        return ct.with_array(np.zeros(ct.shape, arr.dtype), unit="label")
    # where do the labelled voxels land in CT index space?
    idx = np.argwhere(labelled)
    if idx.shape[0] > 200000:
        idx = idx[:: idx.shape[0] // 200000 + 1]
    ct_idx = ct.world_to_index(mask_image.index_to_world(idx))
    inside = np.all((ct_idx > -0.5) & (ct_idx < np.asarray(ct.shape) - 0.5), axis=1)
    frac = float(inside.mean())
    if frac == 0.0:
        raise InputError(source, "the masks do not overlap the CT at all (different patient position or "
                                 "frame of reference?); refusing to use them")
    if frac < min_inside_fraction:
        raise InputError(source, f"only {100 * frac:.0f}% of the labelled voxels fall inside the CT field of "
                                 "view; the masks are probably not of this CT; refusing to use them")
    # a sub-grid of the CT lattice (same axes and spacing, integer offset): paste exactly
    if np.allclose(mask_image.affine[:3, :3], ct.affine[:3, :3], atol=1e-4):
        off = ct.world_to_index(mask_image.origin_ras_mm)
        if np.allclose(off, np.round(off), atol=1e-3):
            off = np.round(off).astype(int)
            out = np.zeros(ct.shape, arr.dtype)
            src_lo = np.maximum(-off, 0)
            dst_lo = np.maximum(off, 0)
            n = np.minimum(np.asarray(arr.shape) - src_lo, np.asarray(ct.shape) - dst_lo)
            if np.all(n > 0):
                out[dst_lo[0]:dst_lo[0] + n[0], dst_lo[1]:dst_lo[1] + n[1], dst_lo[2]:dst_lo[2] + n[2]] = \
                    arr[src_lo[0]:src_lo[0] + n[0], src_lo[1]:src_lo[1] + n[1], src_lo[2]:src_lo[2] + n[2]]
            return ct.with_array(out, unit="label")
    res = resample_to(mask_image.with_array(arr), ct, "nearest", default_value=0)
    out = res.with_array(res.array, unit="label")
    if notes is not None:
        vs_m = ", ".join(f"{v:.3g}" for v in mask_image.voxel_size_mm)
        vs_c = ", ".join(f"{v:.3g}" for v in ct.voxel_size_mm)
        notes.append(f"{source}: masks on a different grid (shape {mask_image.shape}, voxel {vs_m} mm) "
                     f"were resampled to the CT grid (shape {ct.shape}, voxel {vs_c} mm) with nearest "
                     "neighbour")
    return ct.with_array(out.array, unit="label")
