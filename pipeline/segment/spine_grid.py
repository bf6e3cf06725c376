"""The vertebral levels named on a ~3 mm grid where a finer working grid does not settle them.

:func:`pipeline.segment.spine.analyse_spine` finds the discs from the vertebral body's area along
the spine and names the segments by a vote of landmarks (sacrum, iliac crests, ribs). Its
thresholds were set on CTs of 3 mm and coarser; on a 2 mm grid the body's area is noisier (low-dose
noise about 1.8 times that of a 3 mm voxel, and the posterior elements break into more pieces), so
discs are found inside bodies and the landmarks fall a level apart. ICRP-110 AF and AM at 2 mm,
six fields of view each (trunk, lung bases + 20-80 mm to 10-60 mm into the sacrum): 3 of 12 named
right on the 2 mm grid, the rest refused; on the same CTs resampled to 3 mm 5 of 12 right and one
more with L2-L4 named right but L4 cut 8 mm short, none named wrong, the rest refused (landmarks a
level apart: mostly AF's sacrum or ribs against its iliac crests). On the real GE CT (2 mm working
grid) the 3 mm grid named the same levels but placed discs worse where the field of view is cut
(the L3-L4 disc 12 mm off, the L5-S1 disc missed), so the working grid's own analysis stays first.

:func:`analyse_spine_levels` runs the analysis on the working grid; where its landmarks do not
settle the levels (``levels["settled"]`` false, no operator level) and an axis is finer than
:data:`LEVELS_GRID_MM`, it names them again on the CT resampled (linear interpolation) to that
size along every finer axis (the sacral alae taken only where both grids see the spine's bone
wider than their threshold: at 3 mm an L5 transverse process and the iliac wing it nearly touches
can merge into one wide blob, GE cut above the sacrum; at 2 mm the alae's top came out one segment
high on ICRP-110 AM), and uses that
when it settles them. The vertebral bodies (mask and centreline) are then drawn on the working grid,
on which the rest of the segmenter works, with the centreline moved into the bodies
(``body_centred``). The vertebrae's slice ranges are carried to the working grid through their z
extent.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from .spine import SpineResult, analyse_spine

__all__ = ["LEVELS_GRID_MM", "analyse_spine_levels"]

#: Voxel size (mm) of the grid on which the levels are named when the working grid is finer.
LEVELS_GRID_MM = 3.0


def _coarse_shape(shape, voxel_size_mm) -> tuple:
    """Shape of the levels grid: each axis finer than 0.95 x :data:`LEVELS_GRID_MM` resampled to about it."""
    return tuple(n if v >= 0.95 * LEVELS_GRID_MM else max(1, int(round(n * v / LEVELS_GRID_MM)))
                 for n, v in zip(shape, voxel_size_mm))


def _settled(spine: SpineResult) -> bool:
    return bool(spine.levels.get("settled"))


def _working_index(i3, scale):
    """Working-grid index of levels-grid index ``i3`` (``scale`` working voxels per levels voxel)."""
    return (np.asarray(i3, float) + 0.5) * scale - 0.5


def analyse_spine_levels(ct: np.ndarray, body: np.ndarray, voxel_size_mm, *, affine=None, anchor_level=None,
                         atlas_level=None, accept=_settled, **kw) -> SpineResult:
    """:func:`pipeline.segment.spine.analyse_spine`, and where its landmarks do not settle the
    levels on a working grid finer than :data:`LEVELS_GRID_MM`, the levels named on that grid.

    Parameters are those of :func:`~pipeline.segment.spine.analyse_spine` (``ct`` in HU, shape
    (I, J, K), RAS axis order; ``body`` bool of the same shape; ``voxel_size_mm`` per axis, mm;
    ``affine`` index -> RAS+ mm). ``accept(spine) -> bool``: whether an analysis settles the
    levels (default: ``levels["settled"]``; the built-in segmenter also asks for L2-L4 of single
    vertebrae, :func:`pipeline.segment.builtin_levels.settled_levels_z`).

    Returns
    -------
    SpineResult
        The working grid's analysis where ``accept`` takes it, where the operator named a level,
        where every axis is at least 0.95 x :data:`LEVELS_GRID_MM`, or where ``accept`` does not
        take the levels grid's either. Otherwise ``vertebrae`` (slice
        ranges on the working grid), ``disc_k``, ``levels``, ``sacrum_found`` and
        ``lowest_rib_bearing`` from the levels grid, ``centre`` and ``body_mask`` drawn on the
        working grid with the centreline in the bodies.
    """
    vs = np.asarray(voxel_size_mm, float)
    aff = np.asarray(affine, float) if affine is not None else np.diag([vs[0], vs[1], vs[2], 1.0])
    own = analyse_spine(ct, body, vs, affine=aff, anchor_level=anchor_level, atlas_level=atlas_level, **kw)
    shape3 = _coarse_shape(ct.shape, vs)
    if anchor_level is not None or shape3 == tuple(ct.shape) or accept(own):
        return own
    scale = np.array(ct.shape, float) / np.array(shape3, float)  # working voxels per levels voxel
    zoom = tuple(1.0 / s for s in scale)
    ct3 = ndi.zoom(np.asarray(ct, np.float32), zoom, order=1, grid_mode=True, mode="nearest")
    body3 = ndi.zoom(body.astype(np.uint8), zoom, order=0, grid_mode=True, mode="nearest").astype(bool)
    aff3 = aff.copy()
    aff3[:3, :3] = aff[:3, :3] * scale[None, :]
    aff3[:3, 3] = aff[:3, :3] @ _working_index(0.0, scale) + aff[:3, 3]
    sz = scale[2]
    # the sacral alae where both grids see the spine's bone wide (the working grid's width at each
    # levels slice's centre caps the levels grid's)
    width3 = np.interp(_working_index(np.arange(shape3[2]), sz), np.arange(ct.shape[2]), own.width_mm)
    coarse = analyse_spine(ct3, body3, vs * scale, affine=aff3, atlas_level=atlas_level,
                           lateral_width_cap_mm=width3, **kw)
    if not _settled(coarse):
        return own
    fine = analyse_spine(ct, body, vs, affine=aff, body_centred=True, **kw)
    vertebrae = []
    for v in coarse.vertebrae:
        k_lo = max(0, math.ceil(v.k_lo * sz - 0.5))
        k_hi = min(ct.shape[2] - 1, math.floor((v.k_hi + 1) * sz - 0.5))
        if k_hi < k_lo:
            continue
        c = fine.centre[k_lo:k_hi + 1]
        if np.isnan(c[:, 0]).all():
            xy = tuple(float(x) for x in _working_index(v.centre_xy, scale[:2]))
        else:
            xy = tuple(float(x) for x in np.nanmedian(c, axis=0))
        vertebrae.append(replace(v, k_lo=int(k_lo), k_hi=int(k_hi), centre_xy=xy))
    discs = [int(round(float(_working_index(d, sz)))) for d in coarse.disc_k]
    notes = ([f"levels not settled on the working grid ({own.levels.get('message', '')}); named on the CT "
              f"resampled to {LEVELS_GRID_MM:g} mm (working grid " + " x ".join(f"{v:.2g}" for v in vs) + " mm)"]
             + coarse.notes)
    levels = {**coarse.levels, "grid_mm": [round(float(v), 2) for v in vs * scale],
              "working_grid_vote": {"decision": own.levels.get("decision"), "message": own.levels.get("message")}}
    named = SpineResult(vertebrae, discs, fine.centre, fine.body_mask, coarse.sacrum_found,
                        coarse.lowest_rib_bearing, notes, levels, fine.width_mm)
    return named if accept(named) else own
