"""Where the body wall lies outside the ribs: no liver or spleen there.

The liver and the spleen lie inside the rib cage; the muscles of the body wall outside
the ribs have nearly their CT numbers on an unenhanced CT (muscle 40-55 HU, liver 55-65 HU,
spleen 45-50 HU), and an atlas prior of another person can reach into them. On each axial
slice, looking outwards from the body's centre in angular sectors, the first rib met
(bone near the body surface) gives the rib cage's radius in that sector; a voxel farther
out than that radius (less a margin for the intercostal muscles) is outside the rib cage.
Short runs of sectors without a rib between two that have one (an intercostal space the
oblique ribs leave open on the slice) take the radius interpolated between those two;
longer runs (the anterior gap below the costal margin) and slices below the ribs say nothing:
the test only ever removes voxels where the rib cage is seen between them and the body's centre.
Used by :mod:`pipeline.segment.atlas_organs` for the liver and the spleen (measured there).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .components import component_sizes, largest_component, select_labels

__all__ = ["outside_rib_cage", "rib_cage_depth_mm", "bridge_gaps"]


def outside_rib_cage(ct_hu: np.ndarray, voxel_size_mm, margin_mm: float = -3.0, **kwargs) -> np.ndarray:
    """Voxels outside the ribs (less ``margin_mm``), seen from the body's centre on each axial slice.

    ``rib_cage_depth_mm(ct_hu, voxel_size_mm, **kwargs) > margin_mm`` (:func:`rib_cage_depth_mm`).

    Parameters
    ----------
    margin_mm : float
        A voxel is outside when it lies this much farther out than the rib's inner surface, mm.
        -3 (default): the intercostal muscles and the outermost 3 mm under the ribs (the
        diaphragm and the innermost intercostal muscle lie between the ribs and the liver or
        spleen) count as outside. Reference organ voxels called outside on the ICRP-110 cases
        (2-4 mm) and TotalSegmentator at 0 / -3 mm, with the gap bridging: livers at most
        0.60 / 1.44 %, spleens 0.33 / 1.06 %, kidneys 0.84 / 1.53 % (the female right kidney
        behind the 12th rib); without the bridging at 3 / 0 / -3 mm: livers 0.17 / 0.45 / 1.24 %,
        spleens 0.18 / 0.33 / 0.84 %, kidneys 0.14 / 0.26 / 0.56 %.

    Returns
    -------
    numpy.ndarray of bool, shape (I, J, K)
    """
    return rib_cage_depth_mm(ct_hu, voxel_size_mm, **kwargs) > margin_mm


def rib_cage_depth_mm(ct_hu: np.ndarray, voxel_size_mm, bone_hu: float = 200.0, n_sectors: int = 120,
                      min_radius_fraction: float = 0.6, neighbour_slices_mm: float = 5.0,
                      min_rib_area_mm2: float = 20.0, max_gap_deg: float = 24.0) -> np.ndarray:
    """How far each voxel lies beyond the ribs' inner surface, seen from the body's centre per slice, mm.

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
    neighbour_slices_mm : float
        A sector's rib radius is the median over the slices within this distance, mm
        (ribs run obliquely: a sector can fall between two ribs on one slice).
    min_rib_area_mm2 : float
        Bone pieces smaller than this on a slice are not ribs, mm^2 (a rib's cross-section is
        50-150 mm^2; on the ICRP-110 female at 2 mm with low-dose noise, single noisy voxels
        above 200 HU put 3.6 % of the liver outside the rib cage without this).
    max_gap_deg : float
        Runs of sectors without a rib at most this wide (degrees), between two sectors with one,
        take the linearly interpolated radius (0: no bridging). An intercostal space seen on an
        axial slice spans 10-20 degrees; the anterior gap below the costal margin 60-120.

    Returns
    -------
    numpy.ndarray, float32, shape (I, J, K)
        Radial distance beyond the inner surface of the first rib in the voxel's sector (mm,
        negative inside the cage); -inf where nothing is known: outside the trunk (each slice's
        largest piece above -400 HU: the arms, the table, the air), in sectors and slices
        without a rib.
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
    out = np.full(ct_hu.shape, -np.inf, np.float32)
    for k, g in enumerate(geometry):
        if g is None:
            continue
        window = rib_r[max(0, k - half): k + half + 1]
        seen = np.isfinite(window).any(axis=0)
        if not seen.any():
            continue
        radius = np.full(n_sectors, np.nan)
        radius[seen] = np.nanmedian(window[:, seen], axis=0)
        radius = bridge_gaps(radius, int(max_gap_deg / 360.0 * n_sectors))
        r, sector, b = g
        depth = r - radius[sector]
        out[:, :, k] = np.where(b & np.isfinite(depth), depth, -np.inf)
    return out


def bridge_gaps(radius: np.ndarray, max_gap: int) -> np.ndarray:
    """Circular runs of at most ``max_gap`` NaN entries filled linearly from the two entries around them.

    Parameters
    ----------
    radius : numpy.ndarray, shape (n,)
        Rib radius per angular sector (mm), NaN where no rib was seen; sector n-1 neighbours sector 0.
    max_gap : int
        Longest run of NaN sectors that is filled (0: none).

    Returns
    -------
    numpy.ndarray, shape (n,)
        A copy; longer runs stay NaN.
    """
    n = radius.size
    seen = np.flatnonzero(np.isfinite(radius))
    out = radius.copy()
    if max_gap <= 0 or seen.size < 2:
        return out
    for a, b in zip(seen, np.r_[seen[1:], seen[0] + n]):
        gap = int(b - a - 1)
        if 0 < gap <= max_gap:
            t = np.arange(1, gap + 1)
            out[(a + t) % n] = radius[a] + (radius[b % n] - radius[a]) * t / (gap + 1)
    return out
