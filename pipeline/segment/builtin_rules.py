"""Rule-based kidneys, liver and spleen of the built-in segmenter (``segment.atlas: none``).

Array-in, array-out helpers of :func:`pipeline.segment.builtin.segment_builtin` on its
working grid (RAS axis order, about 2 mm in-plane): kidneys as compact soft-tissue
components beside the spine between T11 and L4 (SPECT hot spot when given), liver and
spleen as the soft tissue under each lung base with an HU window learnt there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..grid import bounding_box
from .marrow import ellipsoid_structure

__all__ = ["kidneys_by_rules", "organ_under_lung"]


def _grow(window, seeds, erode_mm, vs, region):
    """Component(s) of ``window & region`` connected to ``seeds`` after an erosion by erode_mm,
    dilated back by the same amount inside the window (computed in the region's bounding box)."""
    ball = ellipsoid_structure(erode_mm, vs)
    out = np.zeros_like(window)
    box = bounding_box(window & region, [n // 2 + 1 for n in ball.shape])
    if box is None:
        return out
    cand = window[box] & region[box]
    core = ndi.binary_erosion(cand, ball)
    lab, n = ndi.label(core)
    if n == 0:
        return out
    hit = np.unique(lab[seeds[box] & core])
    hit = hit[hit > 0]
    if hit.size == 0:
        return out
    # the largest seeded component only (others are neighbours reached through noise)
    sizes = ndi.sum_labels(core, lab, hit)
    sel = lab == hit[int(np.argmax(sizes))]
    grown = ndi.binary_dilation(sel, ball) & cand
    out[box] = _fill_slices(grown) & region[box]
    return out


def _fill_slices(mask):
    out = np.zeros_like(mask)
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        out[:, :, k] = ndi.binary_fill_holes(mask[:, :, k])
    return out


def _lung_floor(lungs, side_mask):
    """Per (i, j) column, the lowest lung slice index (or -1), restricted to ``side_mask`` columns."""
    nz = lungs.shape[2]
    any_l = lungs.any(axis=2) & side_mask
    floor = np.where(any_l, np.argmax(lungs, axis=2), -1)
    return floor, nz


def _soft_tissue_stats(sm, mask):
    v = sm[mask]
    if v.size < 20:
        return None
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    return med, max(mad, 8.0)


def organ_under_lung(sm, lungs, body, bone, vs, side, spine_x, excl, posterior_only=False,
                      max_depth_mm=200.0, erode_mm=6.0, k_min=0):
    """Liver (side='right') or spleen (side='left'): soft tissue under that lung's base."""
    nx, ny, nz = sm.shape
    X = np.arange(nx)[:, None]
    lateral_mm = (X - spine_x) * vs[0]  # + towards the patient's right
    side_cols = (lateral_mm > 20.0) if side == "right" else (lateral_mm < -20.0)
    side_cols = np.broadcast_to(side_cols, (nx, ny))
    body_cols = body.any(axis=2)
    ys = np.flatnonzero(body_cols.any(axis=0))
    y_mid = 0.5 * (ys[0] + ys[-1]) if ys.size else ny / 2
    if posterior_only:
        side_cols = side_cols & (np.arange(ny)[None, :] < y_mid + 10.0 / vs[1])
        side_cols = side_cols & (np.abs(lateral_mm) > 40.0)
    floor, _ = _lung_floor(lungs, side_cols)
    cols = floor > 0
    if cols.sum() < 10:
        return np.zeros(sm.shape, bool)
    # seed: 15-35 mm below the lung base in the columns where the lung is lowest-but-broad
    zf = floor[cols]
    k_dome = int(np.percentile(zf, 60))
    seeds = np.zeros(sm.shape, bool)
    ii, jj = np.nonzero(cols)
    for i, j in zip(ii, jj):
        k0 = floor[i, j]
        lo = int(k0 - 35.0 / vs[2])
        hi = int(k0 - 15.0 / vs[2])
        if lo >= 0:
            seeds[i, j, lo:hi + 1] = True
    soft = (sm > -20) & (sm < 150) & body & ~lungs & ~bone & ~excl
    seeds &= soft
    stats = _soft_tissue_stats(sm, seeds)
    if stats is None:
        return np.zeros(sm.shape, bool)
    med, sd = stats
    window = (sm > med - 1.5 * sd) & (sm < med + 1.5 * sd) & soft
    # noise and small vessels punch holes into the window: fill them slice by slice before the
    # erosion, or the eroded core falls apart
    window = _fill_slices(window) & soft
    region = np.zeros(sm.shape, bool)
    k_top = int(np.max(zf) + 5.0 / vs[2])
    k_lo = max(k_min, int(k_dome - max_depth_mm / vs[2]))
    half = side_cols if side == "left" else (lateral_mm > -60.0)
    half = np.broadcast_to(half, (nx, ny))
    region[:, :, k_lo:min(nz, k_top + 1)] = half[:, :, None]
    # nothing above the lung in any column (heart, mediastinum)
    kk = np.arange(nz)[None, None, :]
    above_lung_floor = cols[:, :, None] & (kk >= floor[:, :, None])
    region &= ~above_lung_floor & ~lungs
    # the seeds are medians; keep seeds inside the window for growing
    organ = _grow(window, seeds & window, erode_mm, vs, region)
    # edge voxels (partial volume with the neighbours) fall outside the tight window: one
    # conditional dilation step into a wider window recovers them
    wide = (sm > med - 3.0 * sd) & (sm < med + 3.0 * sd) & soft & region
    box = bounding_box(organ, (2, 2, 2))
    if box is None:
        return organ
    organ[box] |= ndi.binary_dilation(organ[box]) & wide[box]
    organ[box] = _fill_slices(organ[box]) & region[box]
    return organ


def kidneys_by_rules(sm, body, bone, vs, spine, excl, spect=None):
    """Left and right kidney masks (working grid).

    Non-contrast kidneys are 25-40 HU, below muscle (45-60 HU) and liver
    (55-70 HU), and usually wrapped in perirenal fat. A tight window (0-45 HU)
    separates a kidney from touching muscle or liver; when it finds nothing
    on a side, a wide window (0-90 HU, relying on the fat) is tried.
    """
    nx, ny, nz = sm.shape
    out = {"kidney_left": np.zeros(sm.shape, bool), "kidney_right": np.zeros(sm.shape, bool)}
    v_top = spine.by_name("T11") or spine.by_name("T12")
    v_bot = spine.by_name("L4") or spine.by_name("L3")
    if v_top is None or v_bot is None:
        return out, ["kidneys: T11/T12 and L3/L4 levels needed to place the kidney search box"]
    k_lo, k_hi = v_bot.k_lo, v_top.k_hi
    cx = np.nanmedian(spine.centre[k_lo:k_hi + 1, 0])
    cy = np.nanmedian(spine.centre[k_lo:k_hi + 1, 1])
    X = (np.arange(nx)[:, None] - cx) * vs[0]
    Y = (np.arange(ny)[None, :] - cy) * vs[1]
    notes = []
    bone_near = ndi.binary_dilation(bone, ellipsoid_structure(4.0, vs))
    base = body & ~bone_near & ~excl
    ball = ellipsoid_structure(4.0, vs)
    windows = ((0.0, 45.0), (0.0, 90.0))
    for name, sign in (("kidney_right", 1.0), ("kidney_left", -1.0)):
        lat = sign * X
        box2d = (lat > 25.0) & (lat < 130.0) & (Y > -70.0) & (Y < 60.0)
        box = np.zeros(sm.shape, bool)
        box[:, :, k_lo:k_hi + 1] = box2d[:, :, None]
        hot = None
        if spect is not None:
            s_box = np.where(box, spect, 0.0)
            if s_box.max() > 0:
                hot = s_box >= 0.5 * s_box.max()
        for lo_hu, hi_hu in windows:
            soft = (sm > lo_hu) & (sm < hi_hu) & base
            core = np.zeros_like(box)
            zs = slice(max(0, k_lo - 1), min(nz, k_hi + 2))
            core[:, :, zs] = ndi.binary_erosion((soft & box)[:, :, zs], ball)
            best = _best_kidney_component(core, vs, cx, sign, cy, k_lo, k_hi, hot)
            if best is not None:
                break
        if best is None:
            notes.append(f"{name}: no kidney-like soft-tissue component found")
            continue
        grown = ndi.binary_dilation(best, ball) & soft & box
        filled = np.zeros_like(grown)
        for k in range(grown.shape[2]):
            if grown[:, :, k].any():
                filled[:, :, k] = ndi.binary_fill_holes(grown[:, :, k])
        out[name] = filled
    return out, notes


def _best_kidney_component(core, vs, cx, sign, cy, k_lo, k_hi, hot):
    lab, n = ndi.label(core)
    best, best_score = None, -np.inf
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        vol = comp.sum() * np.prod(vs) / 1000.0
        if vol < 15.0 or vol > 400.0:
            continue
        idx = np.argwhere(comp) + [s.start for s in sl]
        ext = (idx.max(0) - idx.min(0) + 1) * vs
        if ext[2] > 160.0 or ext[2] < 30.0 or max(ext[0], ext[1]) > 110.0:
            continue
        c = idx.mean(0)
        lat_c = sign * (c[0] - cx) * vs[0]
        y_c = (c[1] - cy) * vs[1]
        # psoas and paraspinal muscles hug the spine; the kidney lies ~50-80 mm lateral
        score = -abs(lat_c - 65.0) / 20.0 - abs(y_c + 5.0) / 25.0 + np.log(vol)
        if idx[:, 2].min() <= k_lo and idx[:, 2].max() >= k_hi:
            score -= 3.0  # runs through the whole box: a muscle
        if hot is not None:
            full = np.zeros(core.shape, bool)
            full[sl] = comp
            score += 5.0 * float((hot & full).any())
        if score > best_score:
            best_score = score
            best = np.zeros(core.shape, bool)
            best[sl] = comp
    return best

