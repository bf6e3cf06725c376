"""The built-in segmenter's use of an atlas: the box it works in, and L2-L4 bodies it names.

See :mod:`pipeline.segment.atlas` (registration) and :mod:`pipeline.segment.atlas_organs`
(fusion, refinement); :func:`pipeline.segment.builtin.segment_builtin` calls these.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from .components import fill_holes, largest_component

__all__ = ["atlas_box", "crop", "uncrop", "bodies_from_atlas"]


def atlas_box(work_img: Image, subjects, transforms, margin_mm: float = 25.0) -> tuple:
    """Index box of the working grid that can hold the atlas organs and L2-L4 (slices).

    The subjects' structures are carried onto a grid three times coarser; the box holds
    every voxel where any of them is above 0.01, plus ``margin_mm``.
    """
    from .atlas import ATLAS_ORGANS, ATLAS_VERTEBRAE
    from .atlas_carry import carry_subject, coarser_grid

    cf = (3, 3, max(1, int(round(6.0 / work_img.voxel_size_mm[2]))))
    coarse = coarser_grid(work_img, cf)
    hit = np.zeros(coarse.shape, bool)
    for s, tr in zip(subjects, transforms):
        pri, _ = carry_subject(coarse, s, tr, {**ATLAS_ORGANS, **ATLAS_VERTEBRAE})
        for p in pri.values():
            hit |= p > 0.01
    if not hit.any():
        return tuple(slice(0, n) for n in work_img.shape)
    idx = np.argwhere(hit)
    lo = idx.min(axis=0) * np.array(cf)
    hi = (idx.max(axis=0) + 1) * np.array(cf)
    m = np.ceil(margin_mm / np.asarray(work_img.voxel_size_mm)).astype(int)
    return tuple(slice(int(max(0, a - g)), int(min(n, b + g))) for a, b, g, n in zip(lo, hi, m, work_img.shape))


def crop(img: Image, box) -> Image:
    """The part of ``img`` inside the index ``box`` (its affine moved accordingly)."""
    t = np.eye(4)
    t[:3, 3] = [b.start for b in box]
    return Image(np.ascontiguousarray(np.asarray(img.array)[box]), img.affine @ t, img.unit)


def uncrop(arr: np.ndarray, box, shape) -> np.ndarray:
    """``arr`` (inside ``box``) placed in a zero array of ``shape``."""
    out = np.zeros(shape, arr.dtype)
    out[box] = arr
    return out


def bodies_from_atlas(body_mask, sm, priors):
    """L2, L3, L4 bodies where the atlas puts them; None without priors.

    Each: the rules' vertebral-body outline in the slices of the carried body and near it,
    together with the carried body itself where the smoothed CT is above 60 HU (bone and
    marrow, not the spinal canal), holes filled. Largest piece, no voxel in two bodies.
    """
    if not all(n in priors and (priors[n] > 0.5).any() for n in ("L2", "L3", "L4")):
        return None
    out = {}
    taken = np.zeros(body_mask.shape, bool)
    for n in ("L2", "L3", "L4"):
        p = priors[n] > 0.5
        ks = np.flatnonzero(p.any(axis=(0, 1)))
        near = ndi.binary_dilation(p, np.ones((5, 5, 1), bool), iterations=2)
        m = np.zeros(body_mask.shape, bool)
        m[:, :, ks[0]:ks[-1] + 1] = body_mask[:, :, ks[0]:ks[-1] + 1] & near[:, :, ks[0]:ks[-1] + 1]
        m |= p & (sm > 60.0)  # where the rules' outline misses part of the body (thin cortex, partial volume)
        m &= ~taken
        m, _ = largest_component(m)
        if not m.any():
            return None
        out[n] = fill_holes(m)
        taken |= out[n]
    return out
