"""The spine's centreline on CT: per axial slice, the centre of the thickest bone near the midline.

Used by :func:`pipeline.segment.spine.analyse_spine`. Arrays are in RAS axis order (axis 1 runs
anterior), voxel sizes in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .components import largest_component

__all__ = ["disk", "coarse_centreline", "body_centreline"]


def disk(radius_vox: float) -> np.ndarray:
    """A 2-D disk of radius ``radius_vox`` voxels (bool)."""
    r = max(1, int(np.floor(radius_vox)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2) <= radius_vox ** 2 + 1e-9


def coarse_centreline(body, bone, x_mid, vs, half_x_mm: float = 30.0):
    """Per slice, the centre of the thickest bone blob within +-30 mm of x_mid in the posterior half."""
    nx, ny, nz = body.shape
    half_x = half_x_mm / vs[0]
    disk6 = disk(6.0 / vs[0])
    cent0 = np.full((nz, 2), np.nan)
    x0, x1 = max(0, int(x_mid - half_x)), int(x_mid + half_x) + 1
    for k in range(nz):
        b = body[:, :, k]
        if b.sum() < 50:
            continue
        ys = np.flatnonzero(b.any(axis=0))
        y_mid = 0.5 * (ys[0] + ys[-1])
        m = bone[x0:x1, : int(y_mid) + 1, k]  # posterior half (axis 1 runs anterior)
        if not m.any():
            continue
        m = ndi.binary_fill_holes(m)
        e, size = largest_component(ndi.binary_erosion(m, disk6))
        if size * vs[0] * vs[1] > 40.0:
            c = ndi.center_of_mass(e)
            cent0[k] = (c[0] + x0, c[1])
    return cent0


def body_centreline(body, bone, cx0, cy0, vs, half_x_mm: float = 25.0, back_mm: float = 15.0,
                    front_mm: float = 50.0) -> np.ndarray:
    """Per slice, the centre of the thickest bone blob in a window around a first centreline.

    :func:`coarse_centreline` looks in the posterior half of the patient. Where lordosis brings
    the lumbar bodies forward of the patient's mid-depth (a slim patient: ICRP-110 AF, L3's body
    centre at 0.55-0.6 of the front-to-back extent), the posterior half holds only the canal
    ring and the arch, and the centreline runs through the canal: on ICRP-110 AF at 2 mm it lay
    in the L2-L4 bodies on none of their slices. Searched again from ``back_mm`` behind to
    ``front_mm`` in front of that first line and ``half_x_mm`` to each side (the bone mask cut
    to that window, holes filled, eroded by a 6 mm disk, the largest piece), it lies in the
    bodies on all of them (AF and AM, 2 mm, two fields of view each). The window keeps out the
    heart and the contrast-filled aorta beyond ``front_mm``.

    Parameters
    ----------
    body, bone : numpy.ndarray, shape (I, J, K), bool
        The patient and its bone.
    cx0, cy0 : numpy.ndarray, shape (K,)
        The first centreline (voxel indices), NaN where unknown.
    vs : sequence of 3 float
        Voxel size, mm.

    Returns
    -------
    numpy.ndarray, shape (K, 2)
        Voxel indices (x, y) per slice; the first centreline where no blob of at least 40 mm^2
        survives the erosion, NaN where it is NaN.
    """
    nx, ny, nz = body.shape
    disk6 = disk(6.0 / vs[0])
    out = np.full((nz, 2), np.nan)
    for k in range(nz):
        if np.isnan(cx0[k]):
            continue
        x0, x1 = max(0, int(cx0[k] - half_x_mm / vs[0])), min(nx, int(cx0[k] + half_x_mm / vs[0]) + 1)
        y0, y1 = max(0, int(cy0[k] - back_mm / vs[1])), min(ny, int(cy0[k] + front_mm / vs[1]) + 1)
        m = ndi.binary_fill_holes(bone[x0:x1, y0:y1, k])
        e, size = largest_component(ndi.binary_erosion(m, disk6))
        if size * vs[0] * vs[1] > 40.0:
            c = ndi.center_of_mass(e)
            out[k] = (c[0] + x0, c[1] + y0)
        else:
            out[k] = (cx0[k], cy0[k])
    return out
