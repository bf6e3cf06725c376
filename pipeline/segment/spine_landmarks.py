"""Landmarks of the vertebral level vote: the sacrum, rib heads and iliac crests.

Each function turns what :func:`pipeline.segment.spine.analyse_spine` measured
(segments between discs, lateral bone components) into one
:class:`pipeline.segment.levels.Evidence` or a per-segment flag. Working grid
in RAS order (axis 2 superior), voxel sizes in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import levels as LV
from .components import select_labels

__all__ = ["segment_at", "sacral_top", "sacrum_evidence", "hysteresis", "lateral_components",
           "rib_bearing_segments", "crest_evidence", "SACRUM_FALLBACK_WIDTH_MM"]

#: Median lateral width (mm) of the spine's bone above which a segment among the lowest three is
#: taken for S1 where the sacral alae's run (:func:`sacral_top`) is not found. Above the widest L5
#: with its transverse processes (84-102 mm on the ICRP-110 phantoms and the GE CT): at 95 mm, a
#: sweep of 100 ICRP-110 fields of view and grids (lung bases + 20-80 mm down to 0-40 mm into the
#: sacrum; 2-4 mm) took S1 from segments 96-100 mm wide 23 times, 15 of them an L5; at 110 mm
#: those segments name nothing and 8 fields of view more are named right (the crests and the
#: ribs agree), none wrong.
SACRUM_FALLBACK_WIDTH_MM = 110.0


def segment_at(seg_z, z, tol_mm: float = 10.0):
    """Index of the segment whose z range contains ``z`` (or the nearest within ``tol_mm``)."""
    best, best_d = None, np.inf
    for s, (a, b) in enumerate(seg_z):
        d = 0.0 if a <= z <= b else min(abs(z - a), abs(z - b))
        if d < best_d:
            best, best_d = s, d
    return best if best_d <= tol_mm else None


def sacral_top(width, vs, wide_mm: float = 120.0, min_run_mm: float = 9.0, gap_mm: float = 6.0):
    """Highest slice of the lowest run of sacral slices (spine bone wider than ``wide_mm``), or None.

    Across the alae and the sacroiliac joints the spine's bone blob (see
    :func:`pipeline.segment.spine.analyse_spine`) is 150-270 mm wide on the
    development CTs, where an L5 with its transverse processes is 84-102 mm
    (ICRP-110 phantoms, the GE CT); the sacrum's lower part and the coccyx are
    narrow, so the run is the lowest one at least ``min_run_mm`` tall, gaps of
    up to ``gap_mm`` bridged. Its top is the top of the alae, at the L5-S1 disc.

    Parameters
    ----------
    width : (nz,) array
        Lateral width of the spine's bone blob per slice, mm (0 where not seen).
    vs : sequence of 3 float
        Voxel size, mm (axis 2 superior).
    """
    wide = np.asarray(width) >= wide_mm
    gap = int(round(gap_mm / vs[2]))
    if gap:
        wide = ndi.binary_closing(np.pad(wide, gap), np.ones(2 * gap + 1, bool))[gap:-gap]
    lab, n = ndi.label(wide)
    for i in range(1, n + 1):
        ks = np.flatnonzero(lab == i)
        if (ks[-1] - ks[0] + 1) * vs[2] >= min_run_mm:
            return int(ks[-1])
    return None


def sacrum_evidence(segments, width, sacrum_width_mm, lumbar_count, vs=None, k_top=None,
                    l5_above_mm: float = 18.0) -> "LV.Evidence":
    """S1 from the top of the sacral alae (:func:`sacral_top`) where they are found among the
    lowest three segments; else the highest of the lowest three segments that is wide
    (``sacrum_width_mm``; a narrowing of the lower sacrum can look like a disc), else the lowest
    segment when it is long (fused S1-S5).

    Where the alae end inside a segment with ``l5_above_mm`` or more of it above them (the
    shortest single vertebral body, as in :data:`pipeline.segment.builtin_levels.SINGLE_BODY_HEIGHT_MM`),
    the L5-S1 disc was missed and that segment's upper part is L5 (S1 is the part below, not a
    segment of its own). Measured: 18 mm on ICRP-110 AM (the least), 25 mm on the GE CT, 30-45 mm
    on AF; the sample patient's S1 body rises 15 mm above its widest part and stays S1.
    ``vs`` (voxel size, mm) is needed for the alae; ``k_top`` is :func:`sacral_top` when the
    caller has it already (computed here otherwise).
    """
    ev = LV.Evidence("sacrum", available=False)
    sacrum_idx, how = None, ""
    lengths = [hi - lo + 1 for lo, hi in segments]
    median_len = float(np.median(lengths)) if lengths else 0.0
    if vs is None or not segments:
        k_top = None
    elif k_top is None:
        k_top = sacral_top(width, vs)
    if k_top is not None and k_top <= segments[min(2, len(segments) - 1)][1]:
        below = [s for s, (lo, hi) in enumerate(segments) if lo <= k_top]
        s = below[-1] if below else None
        if s is not None:
            above_mm = (segments[s][1] - k_top) * vs[2]
            if above_mm >= l5_above_mm:
                sacrum_idx = s - 1
                how = (f"sacral alae end {above_mm:.0f} mm below the top of segment {s}: its upper part "
                       f"is L5 (the L5-S1 disc not found)")
            else:
                sacrum_idx = s
                how = f"sacral alae (spine bone wider than 120 mm) reach the top of segment {s}"
    if sacrum_idx is None:
        for s, (k_lo, k_hi) in enumerate(segments[:3]):
            w = width[k_lo:k_hi + 1]
            w = w[w > 0]
            if w.size and np.mean(w > sacrum_width_mm) >= 0.55:
                sacrum_idx, how = s, f"wide alae (median width {np.median(w):.0f} mm > {sacrum_width_mm:.0f} mm)"
    # (a segment cut by the bottom of the field of view can only look shorter than it is)
    if sacrum_idx is None and segments and lengths[0] >= 1.6 * median_len and len(segments) >= 4:
        sacrum_idx, how = 0, "long fused lowest segment"
    if sacrum_idx is None:
        ev.detail = "no wide (alae) or long fused segment among the lowest three"
        return ev
    ev.available = True
    ev.l1_index = sacrum_idx + lumbar_count
    ev.detail = f"segment {sacrum_idx} is S1: {how}" if sacrum_idx >= 0 else f"S1 below segment 0: {how}"
    ev.values = {"segment": sacrum_idx}
    if k_top is not None:
        ev.values["sacral_top_slice"] = k_top
    return ev


def hysteresis(sm, body, low_hu, high_hu):
    """Voxels of ``body`` where ``sm`` (HU) is above ``low_hu``, connected to one above ``high_hu``.

    Returns a bool array of the shape of ``sm``.
    """
    lab, n = ndi.label((sm > low_hu) & body)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[(sm > high_hu) & body])] = True
    keep[0] = False
    return keep[lab]


def lateral_components(bone, centre, vs, like=None):
    """Bone components outside the spine (ribs, pelvis...) with their distance to the spine axis.

    The spine is cut out as a cylinder of 22 mm radius around the body centre
    and a posterior box (arch, transverse and spinous processes). ``like``: the result of an
    earlier call with the same ``centre``, whose distances and cut are used again (only
    ``bone`` differs).
    """
    if like is None:
        geometry = _spine_geometry(bone.shape, centre, vs)
        if geometry is None:
            return None
    else:
        geometry = {k: like[k] for k in ("dist", "dx", "spine_ok", "cut")}
    lab, n = ndi.label(bone & ~geometry["cut"])
    return dict(lab=lab, n=n, objs=ndi.find_objects(lab), **geometry)


def _spine_geometry(shape, centre, vs):
    """In-plane distance (mm) and left-right offset (mm) of every voxel from the spine axis, and
    the spine's cut-out (:func:`lateral_components`); None where the spine was seen on no slice."""
    nx, ny, nz = shape
    c = centre.copy()
    ok = ~np.isnan(c[:, 0])
    if ok.sum() == 0:
        return None
    kk = np.arange(nz)
    for a in range(2):
        c[:, a] = np.interp(kk, kk[ok], c[ok, a])
    X, Y = np.mgrid[0:nx, 0:ny]
    cutmask = np.zeros(shape, bool)
    dist_xy = np.empty(shape, dtype=np.float32)
    dx_all = np.empty(shape, dtype=np.float32)
    for k in range(nz):
        dx = (X - c[k, 0]) * vs[0]
        dy = (Y - c[k, 1]) * vs[1]
        d = np.sqrt(dx ** 2 + dy ** 2)
        dist_xy[:, :, k] = d
        dx_all[:, :, k] = dx
        # vertebral body and the posterior arch (transverse and spinous processes) up to 70 mm behind;
        # only where the spine was seen
        if ok[k]:
            cutmask[:, :, k] = (d < 22.0) | ((np.abs(dx) < 28.0) & (dy < 0) & (dy > -70.0))
    return dict(dist=dist_xy, dx=dx_all, spine_ok=ok, cut=cutmask)


def rib_bearing_segments(comps, segments, vs, min_head_mm: float = 0.0) -> list[bool]:
    """For each segment, whether a rib head (rib component starting at the spine) lies in it.

    A bone component outside the spine (:func:`_lateral_components`) is a rib
    when it starts within 60 mm of the body centre (its head, at the body or
    the transverse process), reaches more than 70 mm from the spine, is longer
    than 60 mm, at most 150 mm high and holds 0.3-60 mL of bone. A lumbar
    transverse process reaches about 55 mm from the body centre and is not
    taken. A short floating rib (12th; 36-48 mm long, reaching 67-70 mm from the
    body centre on ICRP-110 AM) is taken when its head lies 15-45 mm from the
    body centre (the costovertebral joint), it reaches 60 mm or more, holds
    1-20 mL and runs down from its head: 30 mm or more high with its tip 15 mm
    or more below the head. A transverse process (42-57 mm, 10-20 mm high on the
    development CTs) is horizontal; contrast-filled vessels start at the body.
    ``min_head_mm``: a component whose nearest voxel lies closer to the body centre is not a rib
    (a rib head articulates at the side of the body; for components grown through a lower
    threshold, which can reach the spine through a disc, where the spine is not cut out).
    """
    result = [False] * len(segments)
    if comps is None or comps["n"] == 0:
        return result
    lab, dist_xy = comps["lab"], comps["dist"]
    for i, sl in enumerate(comps["objs"], start=1):
        if sl is None:
            continue
        comp = lab[sl] == i
        vol_ml = comp.sum() * np.prod(vs) / 1000.0
        if vol_ml < 0.3 or vol_ml > 60.0:  # fragments; pelvis, scapula and arm bones are bigger
            continue
        d = dist_xy[sl][comp]
        ext = [(s.stop - s.start) * v for s, v in zip(sl, vs)]
        idx = np.argwhere(comp)
        near = idx[d <= d.min() + 5.0]
        k_head = float(np.median(near[:, 2])) + sl[2].start
        k_tip = float(np.median(idx[d >= d.max() - 10.0][:, 2])) + sl[2].start
        long_rib = d.min() <= 60.0 and d.max() >= 70.0 and max(ext) >= 60.0
        short_rib = (15.0 <= d.min() <= 45.0 and d.max() >= 60.0 and 1.0 <= vol_ml <= 20.0
                     and ext[2] >= 30.0 and (k_head - k_tip) * vs[2] >= 15.0)
        # the pelvis (iliac wings) also touches the sacrum: a rib is thin in z near its head
        if not (long_rib or short_rib) or ext[2] > 150.0 or d.min() < min_head_mm:
            continue
        best, best_d = None, np.inf
        for s, (k_lo, k_hi) in enumerate(segments):
            if k_lo <= k_head <= k_hi:
                best, best_d = s, 0
                break
            dd = min(abs(k_head - k_lo), abs(k_head - k_hi))
            if dd < best_d:
                best, best_d = s, dd
        if best is not None and best_d * vs[2] <= 10.0:
            result[best] = True
    return result


def _wing_top(side: np.ndarray, vs, wide_mm: float = 40.0, gap_mm: float = 10.0,
              crest_rim_mm: float = 30.0) -> int | None:
    """Highest slice of an iliac wing in ``side`` (one side of a pelvic bone component), or None.

    Seen on an axial slice the ilium is a plate reaching ``wide_mm`` or more from front to back
    (a crest spans 100-150 mm from the anterior to the posterior superior iliac spine); an arm
    bone hanging beside the trunk is 20-30 mm across. From the lowest wide slice the wing runs
    up to its crest; the run ends at a gap of ``gap_mm`` without a wide slice, so an arm that
    touches the pelvis, and whatever it touches higher up, is not taken for the wing. Above
    the run, the crest's narrow rim is followed through the bone lying on the section below it,
    if it ends within ``crest_rim_mm``.
    """
    js = np.nonzero(side)
    if js[0].size == 0:
        return None
    nz = side.shape[2]
    lo = np.full(nz, np.iinfo(np.int64).max)
    hi = np.full(nz, -1)
    np.minimum.at(lo, js[2], js[1])
    np.maximum.at(hi, js[2], js[1])
    wide = (hi >= 0) & ((hi - lo + 1) * vs[1] >= wide_mm)
    ks = np.flatnonzero(wide)
    if ks.size == 0:
        return None
    gap = max(1, int(round(gap_mm / vs[2])))
    top = int(ks[0])
    for k in ks[1:]:
        if k - top > gap:
            break
        top = int(k)
    # the crest's highest few millimetres are a narrow rim: follow the bone that lies on the
    # section below it, slice by slice; bone that goes on beyond ``crest_rim_mm`` is no rim (an
    # arm touching the wing), and the wing then ends at the run's top
    cur = side[:, :, top]
    reach = np.ones((5, 5), bool)
    rim_top = top
    n_rim = max(1, int(round(crest_rim_mm / vs[2])))
    for k in range(top + 1, top + 1 + n_rim):
        if k >= nz:
            return rim_top  # cut by the field of view: the caller's top-of-volume test decides
        lab, n = ndi.label(side[:, :, k])
        hit = np.unique(lab[ndi.binary_dilation(cur, reach) & (lab > 0)])
        if hit.size == 0:
            return rim_top
        cur = np.isin(lab, hit)
        rim_top = k
    return top


def crest_evidence(comps, segments, seg_z, valid, vs, z_of, lumbar_count, nz) -> "LV.Evidence":
    """Intercristal line: the highest points of the iliac wings.

    An iliac bone is a component outside the spine of more than 60 mL that
    comes within 60 mm of the spine axis (sacroiliac joint / alae) and reaches
    down to the lowest slices where the spine is seen (the shoulder girdle,
    also big and near the spine, does not). Its crest on each side is its
    highest voxel 40-150 mm lateral to the spine. A crest in the top 5 mm of
    the volume is cut by the field of view (not available).
    """
    ev = LV.Evidence("iliac_crests", available=False)
    if comps is None or comps["n"] == 0 or not segments or valid.size == 0:
        ev.detail = "no bone outside the spine"
        return ev
    lab, dist_xy, dxa = comps["lab"], comps["dist"], comps["dx"]
    k_reach = int(valid[0]) + int(round(10.0 / vs[2]))
    # large components near the sacrum, restricted to 40-150 mm lateral (cuts off the arms, which may
    # hang down to the pelvis from a shoulder girdle that touches the upper thoracic spine)
    big = []
    for i, sl in enumerate(comps["objs"], start=1):
        if sl is None or sl[2].start > k_reach:
            continue
        comp = lab[sl] == i
        if comp.sum() * np.prod(vs) / 1000.0 >= 60.0 and dist_xy[sl][comp].min() <= 60.0:
            big.append(i)
    top = {"right": -1, "left": -1}
    if big:
        sel = select_labels(lab, big) & (np.abs(dxa) > 40.0) & (np.abs(dxa) < 150.0)
        sub, n_sub = ndi.label(sel)
        for j, sl in enumerate(ndi.find_objects(sub), start=1):
            if sl is None or sl[2].start > k_reach:
                continue
            comp = sub[sl] == j
            if comp.sum() * np.prod(vs) / 1000.0 < 20.0:
                continue
            for side, m in (("right", comp & (dxa[sl] > 0)), ("left", comp & (dxa[sl] < 0))):
                k = _wing_top(m, vs)
                if k is not None:
                    top[side] = max(top[side], k + sl[2].start)
    found = {s: k for s, k in top.items() if k >= 0}
    if not found:
        ev.detail = "no iliac wing (large bone near the sacrum reaching the bottom of the spine)"
        return ev
    cut = int(round(5.0 / vs[2]))
    if any(k >= nz - 1 - cut for k in found.values()):
        ev.detail = "iliac wing reaches the top of the field of view"
        return ev
    zs = {s: z_of(k + 0.5) for s, k in found.items()}
    if len(zs) == 2 and abs(zs["right"] - zs["left"]) > 25.0:
        ev.detail = f"crests {zs['right']:.0f} and {zs['left']:.0f} mm differ by more than 25 mm (tilted pelvis?)"
        ev.values = {"crest_z_mm": {s: round(z, 1) for s, z in zs.items()}}
        return ev
    z_ic = float(np.mean(list(zs.values())))
    ev.values = {"intercristal_z_mm": round(z_ic, 1), "crest_z_mm": {s: round(z, 1) for s, z in zs.items()}}
    # the vertebra two above the sacrum (L4): body contains the line, or its lower endplate lies at most
    # CREST_BELOW_MM above it (L4-L5 disc, top of L5)
    s_hit = None
    for s, (a, b) in enumerate(seg_z):
        upper = seg_z[s + 1][0] - LV.CREST_BELOW_MM if s + 1 < len(seg_z) else b
        if a - LV.CREST_BELOW_MM <= z_ic < upper:
            s_hit = s
            break
    if s_hit is None:
        ev.detail = f"intercristal line z {z_ic:.0f} mm is not on a detected vertebra"
        return ev
    if s_hit == 0 and seg_z[0][0] - z_ic > 0 and segments[0][0] <= max(1, int(round(5.0 / vs[2]))):
        ev.detail = f"intercristal line z {z_ic:.0f} mm is below the field of view's lowest vertebra"
        return ev
    ev.available = True
    ev.l1_index = s_hit + lumbar_count - 2
    ev.detail = (f"intercristal line z {z_ic:.0f} mm ({'both sides' if len(zs) == 2 else 'one side: ' + next(iter(zs))}) "
                 f"on segment {s_hit}: L{lumbar_count - 1} body or the disc below (Chakraverty 2007)")
    return ev
