"""Vertebral levels found on a CT alone, in world millimetres.

The QC gate compares an imported L2-L4 mask with these levels, found
independently of the mask (:func:`pipeline.segment.spine.analyse_spine` on the
CT's ~2 mm working grid).
"""

from __future__ import annotations

import numpy as np

from ..image import Image
from .orient import block_factors, block_mean, ras_order_affine, to_ras_order

__all__ = ["spine_levels_mm", "levels_from_spine"]


def levels_from_spine(spine, affine) -> dict:
    """name -> (z_lo_mm, z_hi_mm) (RAS+ superior coordinate) of each named vertebra.

    ``affine`` maps the working grid (RAS order) the spine was analysed on to
    RAS+ mm; a vertebra spans its slices plus half a slice at each end.
    """
    out = {}
    for v in spine.vertebrae:
        if v.name == "?":
            continue
        z = [float((affine @ np.array([v.centre_xy[0], v.centre_xy[1], k, 1.0]))[2])
             for k in (v.k_lo - 0.5, v.k_hi + 0.5)]
        out[v.name] = (min(z), max(z))
    return out


def spine_levels_mm(ct: Image, lumbar_count: int = 5, working_voxel_mm: float = 2.0, anchor_level=None):
    """Analyse the spine of ``ct`` (the level vote of :mod:`pipeline.segment.levels`) and return
    its levels in mm and the spine result. A refused vote names no level (empty dict).

    Returns
    -------
    levels : dict
        name -> (z_lo_mm, z_hi_mm).
    spine : pipeline.segment.spine.SpineResult
    """
    from .builtin import _body
    from .spine_grid import analyse_spine_levels

    arr, tr, vs = to_ras_order(ct)
    f = block_factors(vs, working_voxel_mm)
    work = np.maximum(arr.astype(np.float32), -1024.0)
    work = block_mean(work, f) if f != (1, 1, 1) else work
    vsw = vs * np.array(f)
    body = _body(work, vsw)
    affine = ras_order_affine(ct, tr, f)
    spine = analyse_spine_levels(work, body, vsw, lumbar_count=lumbar_count, affine=affine, anchor_level=anchor_level)
    return levels_from_spine(spine, affine), spine
