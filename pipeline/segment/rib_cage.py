"""Where the body wall lies outside the ribs: no liver or spleen there.

The liver and the spleen lie inside the rib cage; the muscles of the body wall outside
the ribs have nearly their CT numbers on an unenhanced CT (muscle 40-55 HU, liver 55-65 HU,
spleen 45-50 HU), and an atlas prior of another person can reach into them. On each axial
slice, looking outwards from the body's centre in angular sectors, the first rib met
(bone near the body surface) gives the rib cage's radius in that sector; a voxel farther
out than that radius (plus a margin) is outside the rib cage. Sectors without a rib on the
slice (the anterior gap below the costal margin, slices below the ribs) say nothing: the
test only ever removes voxels where a rib is seen between them and the body's centre.
Used by :mod:`pipeline.segment.atlas_organs` for the liver and the spleen (measured there).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .components import component_sizes, largest_component, select_labels

__all__ = ["outside_rib_cage"]


def outside_rib_cage(ct_hu: np.ndarray, voxel_size_mm, bone_hu: float = 200.0, n_sectors: int = 120,
                     min_radius_fraction: float = 0.6, margin_mm: float = 0.0,
                     neighbour_slices_mm: float = 5.0, min_rib_area_mm2: float = 20.0) -> np.ndarray:
    """Voxels outside the ribs, seen from the body's centre on each axial slice.

    Parameters
    ----------
    ct_hu : numpy.ndarray, shape (I, J, K)
        CT numbers, HU; axial slices along the last axis.
    voxel_size_mm : sequence of 3 float
    bone_hu : float
        Rib voxels: above this CT number, HU.
    n_sectors : int
        Angular sectors per slice (120: 3 degrees).
    min_radius_fraction : float
        Only bone at least this fraction of the way from the centre to the body surface in its
        sector counts as rib (calcified vessels and the organs' surroundings near the centre do
        not). The vertebra behind the centre does reach that far: what lies straight behind it
        (the back muscles; no organ) counts as outside, like the wall beyond a rib.
    margin_mm : float
        A voxel is outside when it lies this much farther out than the rib's inner surface, mm.
        0: the intercostal muscles count as outside. Reference organ voxels called outside on
        the ICRP-110 cases (2-4 mm) and TotalSegmentator at 3 / 0 / -3 mm: livers at most
        0.17 / 0.45 / 1.24 %, spleens 0.18 / 0.33 / 0.84 %, kidneys 0.14 / 0.26 / 0.56 %.
    neighbour_slices_mm : float
        A sector's rib radius is the median over the slices within this distance, mm
        (ribs run obliquely: a sector can fall between two ribs on one slice).
    min_rib_area_mm2 : float
        Bone pieces smaller than this on a slice are not ribs, mm^2 (a rib's cross-section is
        50-150 mm^2; on the ICRP-110 female at 2 mm with low-dose noise, single noisy voxels
        above 200 HU put 3.6 % of the liver outside the rib cage without this).

    Returns
    -------
    numpy.ndarray of bool, shape (I, J, K)
        Only inside the trunk (each slice's largest piece above -400 HU): the arms, the table
        and the air are never "outside the rib cage".
    """
    vs = np.asarray(voxel_size_mm, float)
    ni, nj, nk = ct_hu.shape
    x = (np.arange(ni) * vs[0])[:, None]
    y = (np.arange(nj) * vs[1])[None, :]
    body = ct_hu > -400.0
    rib_r = np.full((nk, n_sectors), np.nan)
    geometry = []  # per slice: (radius mm, sector, trunk) or None
    for k in range(nk):
        if np.count_nonzero(body[:, :, k]) < 100:
            geometry.append(None)
            continue
        b, _ = largest_component(body[:, :, k])  # the trunk (not the arms, not the table)
        b = ndi.binary_fill_holes(b)
        ci, cj = (float(v) for v in np.argwhere(b).mean(axis=0))
        r = np.hypot(x - ci * vs[0], y - cj * vs[1])
        sector = ((np.arctan2(y - cj * vs[1], x - ci * vs[0]) + np.pi) / (2 * np.pi) * n_sectors).astype(np.int64)
        sector = np.minimum(sector, n_sectors - 1)
        surface = np.zeros(n_sectors)
        np.maximum.at(surface, sector[b], r[b])
        bone = b & (ct_hu[:, :, k] > bone_hu)
        lab, n = ndi.label(bone)
        if n:  # noise above bone_hu in soft tissue (low-dose CT, small voxels) is no rib
            area = component_sizes(lab, n) * vs[0] * vs[1]
            bone = select_labels(lab, np.flatnonzero(area >= min_rib_area_mm2) + 1)
        bone &= r >= min_radius_fraction * surface[sector]
        first = np.full(n_sectors, np.inf)
        np.minimum.at(first, sector[bone], r[bone])
        rib_r[k] = np.where(np.isfinite(first), first, np.nan)
        geometry.append((r, sector, b))
    half = int(round(neighbour_slices_mm / vs[2]))
    out = np.zeros(ct_hu.shape, bool)
    for k, g in enumerate(geometry):
        if g is None:
            continue
        window = rib_r[max(0, k - half): k + half + 1]
        seen = np.isfinite(window).any(axis=0)
        if not seen.any():
            continue
        limit = np.full(n_sectors, np.inf)
        limit[seen] = np.nanmedian(window[:, seen], axis=0) + margin_mm
        r, sector, b = g
        out[:, :, k] = (r > limit[sector]) & b
    return out
