"""Masks that steer the registration metric: body, bone, user region.

All functions take and return :class:`pipeline.image.Image` objects; masks are
boolean arrays on the grid of the CT they came from.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..image import Image

__all__ = ["body_mask", "bone_mask", "axial_axis", "slab_mask", "ball", "centroid_ras_mm"]

#: HU above which a voxel counts as part of the body (between lung, about -850, and fat, about -100)
BODY_THRESHOLD_HU = -400.0
#: HU above which a voxel counts as bone (cancellous bone is 200-400 HU, cortical above 700)
BONE_THRESHOLD_HU = 200.0


def axial_axis(image: Image) -> int:
    """Index axis (0, 1 or 2) most aligned with the superior-inferior direction."""
    return int(np.argmax(np.abs(image.direction_ras[2])))


def ball(radius_mm: float, voxel_size_mm) -> np.ndarray:
    """Boolean ellipsoidal structuring element of a given radius in mm."""
    vs = np.asarray(voxel_size_mm, float)
    half = np.maximum(np.floor(radius_mm / vs), 0).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, vs)], indexing="ij")
    return sum(g ** 2 for g in grids) <= radius_mm ** 2 + 1e-9


def body_mask(ct: Image, threshold_hu: float = BODY_THRESHOLD_HU) -> Image:
    """The patient's body on a CT: the largest connected region above ``threshold_hu``.

    The couch and other objects not connected to the body are dropped; holes
    (lungs, bowel gas) are filled slice by slice on axial slices.

    Parameters
    ----------
    ct : Image
        CT in HU, shape (I, J, K).
    threshold_hu : float
        HU threshold separating tissue from air.

    Returns
    -------
    Image
        Boolean mask on the CT grid (unit ``"mask"``); all False when nothing is found.
    """
    above = np.asarray(ct.array) > threshold_hu
    # a 3 mm opening detaches thin couch pads and blankets from the skin
    opened = ndimage.binary_opening(above, structure=ball(3.0, ct.voxel_size_mm))
    labels, n = ndimage.label(opened)
    if n == 0:
        return ct.with_array(np.zeros(ct.shape, bool), unit="mask")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == int(np.argmax(sizes))
    ax = axial_axis(ct)
    moved = np.moveaxis(mask, ax, 0)
    filled = np.stack([ndimage.binary_fill_holes(s) for s in moved], 0)
    return ct.with_array(np.moveaxis(filled, 0, ax), unit="mask")


def bone_mask(ct: Image, body: Image | None = None, dilation_mm: float = 5.0,
              threshold_hu: float = BONE_THRESHOLD_HU) -> Image:
    """Bone and its immediate surroundings: HU above ``threshold_hu``, dilated.

    The dilation keeps the bone edges (where the metric gradient lives) inside
    the mask.

    Parameters
    ----------
    ct : Image
        CT in HU.
    body : Image, optional
        Body mask on the same grid; bone outside it (couch rails) is dropped.
    dilation_mm : float
        Radius of the dilation in mm.
    """
    bone = np.asarray(ct.array) > threshold_hu
    if body is not None:
        bone &= np.asarray(body.array, bool)
    if dilation_mm > 0 and bone.any():
        bone = ndimage.binary_dilation(bone, structure=ball(dilation_mm, ct.voxel_size_mm))
    return ct.with_array(bone, unit="mask")


def slab_mask(grid: Image, superior_min_mm: float, superior_max_mm: float) -> Image:
    """Voxels whose RAS+ superior coordinate lies in ``[superior_min_mm, superior_max_mm]``."""
    lo, hi = sorted((float(superior_min_mm), float(superior_max_mm)))
    z = grid.world_grid()[..., 2]
    return grid.with_array((z >= lo) & (z <= hi), unit="mask")


def centroid_ras_mm(mask: Image, weights=None) -> np.ndarray:
    """Centroid (RAS+ mm) of a mask, optionally weighted by an array on its grid, shape (3,).

    Raises
    ------
    ValueError
        When the mask is empty (or the weights sum to zero).
    """
    m = np.asarray(mask.array, bool)
    idx = np.argwhere(m)
    if idx.size == 0:
        raise ValueError("empty mask has no centroid")
    if weights is None:
        w = np.ones(len(idx))
    else:
        w = np.asarray(weights, float)[m]
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to zero")
    ijk = (idx * w[:, None]).sum(0) / total
    return mask.index_to_world(ijk)
