"""Weights-free spine analysis on CT: vertebral bodies, discs and vertebra levels.

Works on a CT array in RAS order (axis 0 towards the patient's right, axis 1
anterior, axis 2 superior) with voxel sizes in mm. Steps:

1. vertebral-body centreline: in every axial slice, the thickest bone blob
   near the posterior midline (bone filled, then eroded by a disk so that only
   the body survives), smoothed along the spine;
2. discs: minima of the eroded body area along the spine, measured in planes
   perpendicular to the local spine axis (the centreline's tangent), not in
   axial slices: the lumbar lordosis tilts the discs (L5-S1 by 30 degrees and
   more) and an axial slice through a tilted disc still cuts bone. A candidate
   closer than ``min_pitch_mm`` to a deeper one is dropped; a segment (bone
   between two discs) is one vertebra, or, when it is too tall for one (a disc
   too shallow to find, as at a phantom's 8 mm slices), several: it is split at
   its lowest body area (``_split_merged_segments``);
3. levels: a vote of independent evidences (:mod:`pipeline.segment.levels`):
   the sacrum (the segment in which the sacral alae end: the lowest run of
   slices where the spine's bone is wider than 120 mm,
   :func:`pipeline.segment.spine_landmarks.sacral_top`; without such a run the
   highest of the three lowest segments that is wide, more than half of its
   slices wider than ``sacrum_width_mm``; else the lowest segment when it is
   long, fused S1-S5, >= 1.6 times the median segment), the iliac crests
   (intercristal line at L4 or L4-L5), the lowest
   rib-bearing vertebra (T12), with the body heights as a consistency check
   and an optional manual anchor. When the evidences disagree, no segment is
   named and ``levels["decision"]`` is ``"fail"`` (the built-in segmenter
   refuses). A top or bottom segment cut by the field of view is not counted
   as a vertebra of known extent (the top one is left unnamed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from . import levels as LV
from . import spine_landmarks as LM
from .spine_landmarks import SACRUM_FALLBACK_WIDTH_MM
from .spine_centreline import body_centreline, coarse_centreline, disk as _disk

__all__ = ["Vertebra", "SpineResult", "analyse_spine", "level_names"]


@dataclass(frozen=True)
class Vertebra:
    """One vertebra between two discs (slice indices on the working grid, inclusive)."""

    name: str
    k_lo: int
    k_hi: int
    centre_xy: tuple[float, float]
    rib_bearing: bool


@dataclass
class SpineResult:
    """Outcome of :func:`analyse_spine`.

    ``levels`` is the vote (:meth:`pipeline.segment.levels.LevelVote.to_dict`):
    ``evidence`` (per evidence: name, available, proposes {"L2".."L4": [z_lo,
    z_hi] mm}, agrees, detail), ``decision`` (pass, warn, fail) and ``message``;
    the ``levels`` entry of segment/qc.json.
    """

    vertebrae: list[Vertebra]
    disc_k: list[int]
    centre: np.ndarray  # (K, 2) per-slice body centre (voxel indices), NaN where none
    body_mask: np.ndarray  # (I, J, K) vertebral bodies (all levels), bool
    sacrum_found: bool
    lowest_rib_bearing: str | None
    notes: list[str] = field(default_factory=list)
    levels: dict = field(default_factory=dict)
    width_mm: np.ndarray | None = None  # (K,) lateral width of the spine's bone per slice, mm (sacral alae)

    def by_name(self, name: str) -> Vertebra | None:
        for v in self.vertebrae:
            if v.name == name:
                return v
        return None


def level_names(n_above_sacrum: int, lumbar_count: int = 5) -> list[str]:
    """Names of the vertebrae above the sacrum, from the lowest up: L5 (or L6), ..., L1, T12, ..."""
    names = [f"L{i}" for i in range(lumbar_count, 0, -1)]
    names += [f"T{i}" for i in range(12, 0, -1)]
    names += [f"C{i}" for i in range(7, 0, -1)]
    return names[:n_above_sacrum]


def _running_median(v: np.ndarray, half: int) -> np.ndarray:
    out = np.full_like(v, np.nan, dtype=float)
    for k in range(len(v)):
        s = v[max(0, k - half): k + half + 1]
        s = s[~np.isnan(s)]
        if s.size:
            out[k] = np.median(s)
    return out


def _box(c, half_vox, shape):
    """Slices of a 2-D box of half sizes ``half_vox`` around ``c`` clipped to ``shape``."""
    return tuple(slice(max(0, int(c[a] - half_vox[a])), min(shape[a], int(c[a] + half_vox[a]) + 2))
                 for a in range(2))


def analyse_spine(ct: np.ndarray, body: np.ndarray, voxel_size_mm, lumbar_count: int = 5,
                  bone_hu: float = 150.0, min_pitch_mm: float = 21.0,
                  sacrum_width_mm: float = SACRUM_FALLBACK_WIDTH_MM, affine=None, anchor_level=None,
                  lumbar_count_manual: bool | None = None, atlas_level=None,
                  body_centred: bool = False, lateral_width_cap_mm=None,
                  rib_low_hu: float = 120.0) -> SpineResult:
    """Find the vertebral bodies and name them by a vote of evidences.

    Parameters
    ----------
    ct : numpy.ndarray, shape (I, J, K)
        CT in HU, RAS axis order (see module docstring).
    body : numpy.ndarray, shape (I, J, K), bool
        The patient (skin outline, holes filled).
    voxel_size_mm : sequence of 3 float
        Voxel size along the axes, mm.
    lumbar_count : int
        Number of lumbar vertebrae (5 normally; 6 or 4 for transitional anatomy).
    bone_hu : float
        Bone threshold in HU on the (3x3 in-plane mean) smoothed CT.
    min_pitch_mm : float
        Smallest distance between two discs (a vertebra plus a disc is 25-40 mm
        in the thoraco-lumbar spine).
    sacrum_width_mm : float
        Lateral width of the spine's bone blob above which a segment is the sacrum, where the
        sacral alae's run is not found (:data:`pipeline.segment.spine_landmarks.SACRUM_FALLBACK_WIDTH_MM`).
    affine : (4, 4) array, optional
        Index -> RAS+ mm of this grid (for the z values of the vote and of
        ``anchor_level``); without it z is ``k * voxel_size_mm[2]``.
    anchor_level : str or (str, float), optional
        Manual level: ``"L3@-215"`` or ``("L3", -215.0)``: the vertebra whose
        body contains z = -215 mm (RAS+ superior) is L3. Overrides the vote.
    lumbar_count_manual : bool, optional
        Whether the operator set ``lumbar_count`` (default: ``lumbar_count != 5``).
    atlas_level : (str, float), optional
        A level carried by atlas registration, e.g. ``("L3", -215.0)``: the vertebra
        whose body contains z is L3. One more voting evidence (``atlas``), never an override.
    body_centred : bool
        Move the centreline into the vertebral bodies
        (:func:`pipeline.segment.spine_centreline.body_centreline`) before the bodies are
        drawn. The levels' evidences were set with it off (the disc profile and the landmarks
        then follow the canal and arch on a slim patient); :mod:`pipeline.segment.spine_grid`
        turns it on for the bodies of a working grid finer than its levels grid.
    lateral_width_cap_mm : numpy.ndarray, shape (K,), optional
        An upper bound per slice (mm) on the spine's lateral bone width measured here for the
        sacral alae (:mod:`pipeline.segment.spine_grid` gives the finer grid's width: bone is
        taken as wide only where both grids see it wide; at 3 mm an L5 transverse process and
        the iliac wing it nearly touches can merge into one blob over 120 mm wide).
    rib_low_hu : float
        Lower threshold (HU) of a second rib search: bone above ``bone_hu`` grown through
        voxels above ``rib_low_hu`` (hysteresis), its ribs' heads at least 15 mm from the body
        centre (grown bone can reach the spine through a disc, where the spine is not cut
        out: on the GE CT at 2 mm, a 55 mL piece from the body to 78 mm beside it). A thin 12th
        rib blurred by a coarse acquisition rebinned to 2 mm falls apart at ``bone_hu`` alone
        (the GE CT smoothed to 4.4 mm and resampled to 2.2 mm: its left 12th rib kept 27 of its
        45 mm of height, and T11 was taken for T12).
    """
    vs = np.asarray(voxel_size_mm, float)
    nx, ny, nz = ct.shape
    if lumbar_count_manual is None:
        lumbar_count_manual = lumbar_count != 5
    aff = np.asarray(affine, float) if affine is not None else np.diag([vs[0], vs[1], vs[2], 1.0])

    def z_of(k):
        return float(aff[2, 2] * k + aff[2, 3])

    notes: list[str] = []
    sm = ndi.uniform_filter(ct.astype(np.float32), size=(3, 3, 1))
    bone = (sm > bone_hu) & body

    # 1. coarse centreline: thick bone near the posterior midline
    xs = [ndi.center_of_mass(body[:, :, k])[0] for k in range(nz) if body[:, :, k].any()]
    x_mid = float(np.median(xs)) if xs else nx / 2
    cent0 = coarse_centreline(body, bone, x_mid, vs)
    # second pass around the spine's own median x (the body's centre of mass moves with the arms and
    # with the field of view; the spine does not)
    if np.sum(~np.isnan(cent0[:, 0])) >= 5:
        cent0 = coarse_centreline(body, bone, float(np.nanmedian(cent0[:, 0])), vs)
    half = max(2, int(round(15.0 / vs[2])))
    if body_centred:
        cent0 = body_centreline(body, bone, _running_median(cent0[:, 0], half), _running_median(cent0[:, 1], half),
                                vs)
    cx = _running_median(cent0[:, 0], half)
    cy = _running_median(cent0[:, 1], half)

    # 2a. body area in planes perpendicular to the local spine axis (tilt-robust disc profile)
    disk8 = _disk(8.0 / vs[0])
    area = _oblique_area_profile(sm, cx, cy, vs, bone_hu, disk8)
    # 2b. axial body masks (for the L2-L4 bodies) and the lateral width (sacral alae)
    near_half = (36.0 / vs[0] + 1, 36.0 / vs[1] + 1)
    wide_half = (130.0 / vs[0], 90.0 / vs[1])
    centre = np.full((nz, 2), np.nan)
    width = np.zeros(nz)
    area_ax = np.zeros(nz)
    body_mask = np.zeros(ct.shape, bool)
    for k in range(nz):
        if np.isnan(cx[k]):
            continue
        bx = _box((cx[k], cy[k]), near_half, (nx, ny))
        found = _slice_body(ct, sm, body, k, bx, (cx[k], cy[k]), vs, disk8, bone_hu)
        if found is None:
            continue
        blob, body_slice, c = found
        area_ax[k] = blob.sum() * vs[0] * vs[1]
        centre[k] = c
        body_mask[bx + (k,)] = body_slice
        # lateral width of the whole spine bone blob (for the sacral alae)
        bw = _box(centre[k], wide_half, (nx, ny))
        full = ndi.binary_fill_holes(bone[bw + (k,)])
        flab, _ = ndi.label(full)
        cidx = flab[int(round(centre[k][0])) - bw[0].start, int(round(centre[k][1])) - bw[1].start]
        if cidx:
            cols = np.flatnonzero((flab == cidx).any(axis=1))
            width[k] = (cols[-1] - cols[0] + 1) * vs[0]
    # depth relative to the local body area (running median over +-40 mm): the same disc is found
    # whatever the field of view holds (a global median would depend on the thoracic share).
    # The oblique profile where it is reliable (its local level at least 40 % of the axial one: a
    # thin cortex around osteopenic trabecular bone, < 150 HU, does not survive the interpolation
    # and the filled body vanishes), else the axial one.
    w40 = max(2, int(round(40.0 / vs[2])))
    area_ob = np.where(area_ax > 0, np.nan_to_num(area, nan=0.0), 0.0)
    prof_ax = ndi.uniform_filter1d(area_ax, 3)
    prof_ob = ndi.uniform_filter1d(area_ob, 3)
    loc_ax = _running_median(np.where(prof_ax > 0, prof_ax, np.nan), w40)
    loc_ob = _running_median(np.where(prof_ob > 0, prof_ob, np.nan), w40)
    loc_ax = np.where(np.isnan(loc_ax), 1.0, np.maximum(loc_ax, 1.0))
    loc_ob = np.where(np.isnan(loc_ob), 0.0, loc_ob)
    reliable = loc_ob >= 0.4 * loc_ax
    prof = np.where(reliable, prof_ob / np.maximum(loc_ob, 1.0), prof_ax / loc_ax)
    area = np.where(reliable, area_ob, area_ax)
    if not reliable[area_ax > 0].all():
        notes.append(f"discs: oblique (tilt-corrected) body profile unreliable on "
                     f"{np.sum(~reliable & (area_ax > 0))} slices (thin cortex); axial profile used there")
    cand, _ = find_peaks(-prof, prominence=0.25)
    # keep the deepest minima at least min_pitch_mm apart
    order = sorted(cand, key=lambda k: prof[k])
    discs: list[int] = []
    for k in order:
        if all(abs(k - d) * vs[2] >= min_pitch_mm for d in discs):
            discs.append(int(k))
    discs.sort()
    # a disc must have spine bone above and below it
    valid = np.flatnonzero(area > 0)
    if valid.size:
        discs = [d for d in discs if valid[0] < d < valid[-1]]

    segments = []  # (k_lo, k_hi) of bone between discs, from inferior up
    edges = [int(valid[0]) - 1 if valid.size else -1] + discs + [int(valid[-1]) + 1 if valid.size else nz]
    for lo, hi in zip(edges[:-1], edges[1:]):
        k_lo, k_hi = lo + 1, hi - 1
        if k_hi - k_lo + 1 >= max(2, int(round(8.0 / vs[2]))) and np.any(area[k_lo:k_hi + 1] > 0):
            segments.append((k_lo, k_hi))
    if lateral_width_cap_mm is not None:
        width = np.minimum(width, np.asarray(lateral_width_cap_mm, float))
    segments = _trim_cut_bottom_segment(segments, width, vs, sacrum_width_mm, notes)
    k_sacral_top = LM.sacral_top(width, vs)
    segments, cuts = _split_merged_segments(segments, prof, k_sacral_top, vs, notes)
    discs = sorted(discs + cuts)
    # the top segment, when it reaches the last slices of the volume, is cut by the field of view
    # (and may hide a disc): it is not named
    if segments and segments[-1][1] >= nz - 1 - max(1, int(round(5.0 / vs[2]))):
        notes.append("the top vertebra is cut by the field of view and is left unnamed")
        segments.pop()
    seg_z = [tuple(sorted((z_of(lo - 0.5), z_of(hi + 0.5)))) for lo, hi in segments]

    # 3. evidences
    comps = LM.lateral_components(bone, centre, vs)
    rib_bearing = LM.rib_bearing_segments(comps, segments, vs)
    if rib_low_hu < bone_hu and comps is not None:
        grown = LM.lateral_components(LM.hysteresis(sm, body, rib_low_hu, bone_hu), centre, vs, like=comps)
        rib_bearing = [a or b for a, b in zip(rib_bearing, LM.rib_bearing_segments(grown, segments, vs,
                                                                                   min_head_mm=15.0))]
    ribs_idx = [s for s, r in enumerate(rib_bearing) if r]
    lowest_rib = min(ribs_idx) if ribs_idx else None
    ev_sacrum = LM.sacrum_evidence(segments, width, sacrum_width_mm, lumbar_count, vs, k_sacral_top)
    ev_crest = LM.crest_evidence(comps, segments, seg_z, valid, vs, z_of, lumbar_count, nz)
    ev_ribs = LV.Evidence("ribs", available=lowest_rib is not None)
    if lowest_rib is not None:
        ev_ribs.l1_index = lowest_rib - 1
        ev_ribs.detail = f"lowest rib-bearing segment {lowest_rib} (z {seg_z[lowest_rib][0]:.0f}..{seg_z[lowest_rib][1]:.0f} mm) is T12"
        ev_ribs.values = {"rib_bearing_segments": ribs_idx}
    else:
        ev_ribs.detail = "no rib head on a detected vertebra in the field of view"
    manual = None
    if anchor_level is not None:
        name, z_anchor = LV.parse_vertebra_level(anchor_level)
        s = LM.segment_at(seg_z, z_anchor)
        if s is None:
            raise ValueError(f"vertebra level {name}@{z_anchor:g}: no detected vertebral body within 10 mm of "
                             f"z = {z_anchor:g} mm (bodies found: "
                             + ", ".join(f"{a:.0f}..{b:.0f}" for a, b in seg_z) + ")")
        manual = LV.Evidence("manual", True, s - LV.position_of(name, lumbar_count),
                             detail=f"{name}@{z_anchor:g} mm")
    evidences = [ev_sacrum, ev_crest, ev_ribs]
    result = LV.vote(evidences, seg_z, lumbar_count, manual, lumbar_count_manual)
    rules_decision, rules_settled = result.decision, result.settled
    if atlas_level is not None:
        # the atlas votes only where the landmarks of this CT do not settle the levels (one evidence,
        # or none, or a disagreement); where they agree, it is recorded and does not vote
        name, z_atlas = atlas_level
        s = LM.segment_at(seg_z, z_atlas)
        ev_atlas = LV.Evidence("atlas", s is not None, None if s is None else s - LV.position_of(name, lumbar_count),
                               detail=f"atlas {name} centre at z {z_atlas:.0f} mm"
                                      + ("" if s is not None else " (no detected vertebral body there)"))
        if result.settled or manual is not None:
            if ev_atlas.available:
                ev_atlas.agrees = ev_atlas.l1_index == result.l1_index
                ev_atlas.detail += " (not voting: " + ("agrees" if ev_atlas.agrees else "disagrees") + ")"
            result.evidence.append(ev_atlas)
        else:
            result = LV.vote(evidences + [ev_atlas], seg_z, lumbar_count, manual, lumbar_count_manual)
    ev_h = LV.body_height_check(seg_z, result.l1_index, lumbar_count)
    result.evidence.append(ev_h)
    if ev_h.available and ev_h.agrees is False and result.decision == "pass":
        result.decision = "warn"
        result.message += f"; body heights inconsistent ({ev_h.detail})"

    l1 = result.l1_index
    names = [LV.name_at(s - l1, lumbar_count) if l1 is not None else "?" for s in range(len(segments))]
    # human-readable notes (the vote is in ``levels``)
    for e in result.evidence:
        if e.available and e.l1_index is not None:
            notes.append(f"levels evidence {e.name}: {e.detail}; proposes "
                         + ", ".join(f"{n} {z[0]:.0f}..{z[1]:.0f} mm" for n, z in e.proposes.items())
                         + {True: " (agrees)", False: " (disagrees)", None: ""}[e.agrees])
    if ev_sacrum.available and l1 is not None and ev_sacrum.agrees:
        if ev_ribs.available:
            notes.append("levels: counted up from the sacrum; the lowest rib-bearing vertebra is T12 (agrees)")
        else:
            notes.append("levels: counted up from the sacrum; no rib-bearing vertebra in the field of view to "
                         "cross-check")
    elif ev_ribs.available and ev_ribs.agrees and l1 is not None:
        notes.append("levels: no sacrum found; counted down from the lowest rib-bearing vertebra (T12)")
    notes.append(f"levels vote: {result.decision}: {result.message}")

    vertebrae = []
    for (k_lo, k_hi), nm, rb in zip(segments, names, rib_bearing):
        c = np.nanmedian(centre[k_lo:k_hi + 1], axis=0)
        vertebrae.append(Vertebra(nm, int(k_lo), int(k_hi), (float(c[0]), float(c[1])), bool(rb)))
    lowest_name = names[lowest_rib] if lowest_rib is not None else None
    s1 = ev_sacrum.values.get("segment") if ev_sacrum.available else None
    sacrum_named = l1 is not None and s1 is not None and (names[s1] == "S1" if s1 >= 0 else names[0] == "L5")
    return SpineResult(vertebrae, discs, centre, body_mask, bool(sacrum_named), lowest_name, notes,
                       {**result.to_dict(), "rules_decision": rules_decision, "rules_settled": rules_settled},
                       width)


def _slice_body(ct, sm, body, k, bx, c_xy, vs, disk8, bone_hu):
    """The vertebral body in slice ``k`` near the centreline point ``c_xy`` (box ``bx``).

    The cortical shell thresholded at ``bone_hu`` (3x3-smoothed CT) is filled (the spinal canal,
    CSF below 60 HU, stays out although the arch closes it), eroded by ``disk8``; the piece
    nearest the centreline is the body's core. The body is the opening of the filled bone that
    holds the core, its outline from the unsmoothed CT (the 3x3 mean spreads the cortex into
    the fat around it). Returns ``(core, body, centre_index)`` on the box, or None.
    """
    X, Y = np.mgrid[bx[0], bx[1]]
    near = ((X - c_xy[0]) * vs[0]) ** 2 + ((Y - c_xy[1]) * vs[1]) ** 2 <= 35.0 ** 2
    smk = sm[bx + (k,)]
    filled = ndi.binary_fill_holes((smk > bone_hu) & body[bx + (k,)] & near) & (smk > 60.0)
    e = ndi.binary_erosion(filled, disk8)
    if not e.any():
        return None
    lab, n = ndi.label(e)
    coms = ndi.center_of_mass(e, lab, np.arange(1, n + 1))
    d = [((cc[0] + bx[0].start - c_xy[0]) * vs[0]) ** 2 + ((cc[1] + bx[1].start - c_xy[1]) * vs[1]) ** 2
         for cc in coms]
    i = int(np.argmin(d)) + 1
    blob = lab == i
    raw = ndi.binary_fill_holes((ct[bx + (k,)] > bone_hu) & near) & (smk > 60.0)
    opened = ndi.binary_dilation(blob, disk8) & filled & raw
    return blob, ndi.binary_fill_holes(opened), (coms[i - 1][0] + bx[0].start, coms[i - 1][1] + bx[1].start)


def _split_merged_segments(segments, prof, k_sacral_top, vs, notes, pitch_mm: float = 38.0,
                           disc_mm: float = 8.0):
    """Split a segment too tall for one vertebra where a disc was not found.

    A segment (bone between two found discs) of height ``h`` above the sacral alae holds
    ``round((h + disc_mm) / pitch_mm)`` vertebrae: a lumbar body is 25-30 mm high and a disc
    8-12 mm (pitch 35-40 mm), a lower thoracic one 22-25 mm and 5-7 mm, so one vertebra is
    at most 45-48 mm and two are 50 mm and more. Each cut is the deepest point of the body
    area profile ``prof`` within +-30 % of a vertebra around the cut of equal parts (a disc too
    shallow for the prominence test still lowers the profile). Segments wholly below the top
    of the sacral alae (slice ``k_sacral_top``, or None) are the sacrum and are not split.

    Returns the new segments (k_lo, k_hi) and the cut slices.
    """
    out, cuts = [], []
    for lo, hi in segments:
        lo_eff = lo if k_sacral_top is None or k_sacral_top < lo else k_sacral_top + 1
        n_len = hi - lo_eff + 1
        n = int(round((n_len * vs[2] + disc_mm) / pitch_mm)) if n_len > 0 else 0
        if n < 2:
            out.append((lo, hi))
            continue
        step = n_len / n
        win = max(1, int(round(0.3 * step)))
        seg_cuts = []
        for i in range(1, n):
            c = int(round(lo_eff + i * step))
            a, b = max(lo_eff + 1, c - win), min(hi - 1, c + win)
            seg_cuts.append(a + int(np.argmin(prof[a:b + 1])) if b >= a else c)
        edges = [lo - 1] + seg_cuts + [hi + 1]
        out.extend((e0 + 1, e1 - 1) for e0, e1 in zip(edges[:-1], edges[1:]))
        cuts.extend(seg_cuts)
        notes.append(f"discs: a segment {n_len * vs[2]:.0f} mm tall (slices {lo_eff}..{hi}) holds {n} vertebrae "
                     f"(pitch {pitch_mm:.0f} mm); split at the lowest body area, slices "
                     + ", ".join(str(c) for c in seg_cuts))
    return out, cuts


def _trim_cut_bottom_segment(segments, width, vs, sacrum_width_mm, notes, ratio: float = 1.4):
    """The lowest segment, when the bottom of the field of view cuts it and it is much taller
    than the others, without sacral alae: a disc near the cut was missed (a partial L5 merged
    with L4, say). Only its upper part, as tall as the median of the others, is kept: that
    part lies in the vertebra named by the disc above it; the merged remainder below is left out.
    """
    if len(segments) < 3:
        return segments
    k_lo, k_hi = segments[0]
    if k_lo > max(1, int(round(5.0 / vs[2]))):  # not at the bottom of the field of view
        return segments
    med = float(np.median([hi - lo + 1 for lo, hi in segments[1:]]))
    n = k_hi - k_lo + 1
    top = width[k_lo + n // 2:k_hi + 1]
    top = top[top > 0]
    wide = top.size and np.mean(top > sacrum_width_mm) >= 0.55
    if n < ratio * med or wide:
        return segments
    new_lo = k_hi - int(round(med)) + 1
    notes.append(f"the lowest vertebra is cut by the field of view and {n * vs[2]:.0f} mm tall (others "
                 f"{med * vs[2]:.0f} mm, no sacral alae): a disc near the cut was missed; its lower "
                 f"{(new_lo - k_lo) * vs[2]:.0f} mm are left out")
    return [(new_lo, k_hi)] + list(segments[1:])


def _oblique_area_profile(sm, cx, cy, vs, bone_hu, disk8, half_mm: float = 36.0):
    """Eroded vertebral-body area (mm^2) in the plane perpendicular to the spine axis at each slice.

    The axis is the tangent of the (smoothed) body centreline (cx, cy per slice);
    the plane is sampled on a square grid of the in-plane voxel size by linear
    interpolation. NaN where the centreline is unknown.
    """
    nz = sm.shape[2]
    out = np.full(nz, np.nan)
    ok = ~np.isnan(cx)
    if ok.sum() < 3:
        return out
    kk = np.arange(nz)
    px = np.interp(kk, kk[ok], cx[ok])
    py = np.interp(kk, kk[ok], cy[ok])
    # tangent over +-10 mm (the centreline is already a running median)
    h = max(1, int(round(10.0 / vs[2])))
    step = float(vs[0])
    n = int(half_mm / step)
    a = np.arange(-n, n + 1) * step
    A, B = np.meshgrid(a, a, indexing="ij")
    ks = np.flatnonzero(ok)
    coords = np.empty((3, ks.size, A.size), np.float32)
    for j, k in enumerate(ks):
        k0, k1 = max(0, k - h), min(nz - 1, k + h)
        t = np.array([(px[k1] - px[k0]) * vs[0], (py[k1] - py[k0]) * vs[1], (k1 - k0) * vs[2]])
        t /= np.linalg.norm(t)
        e1 = np.array([1.0, 0.0, 0.0]) - t[0] * t
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(t, e1)
        p = (np.array([px[k] * vs[0], py[k] * vs[1], k * vs[2]])[:, None]
             + e1[:, None] * A.ravel()[None] + e2[:, None] * B.ravel()[None])
        coords[:, j] = p / vs[:, None]
    planes = ndi.map_coordinates(sm, coords.reshape(3, -1), order=1, cval=-1000.0)
    planes = planes.reshape(ks.size, A.shape[0], A.shape[1])
    near = A ** 2 + B ** 2 <= 35.0 ** 2
    cidx = (n, n)
    for j, k in enumerate(ks):
        pl = planes[j]
        filled = ndi.binary_fill_holes((pl > bone_hu) & near) & (pl > 60.0)
        e = ndi.binary_erosion(filled, disk8)
        if not e.any():
            out[k] = 0.0
            continue
        lab, nlab = ndi.label(e)
        coms = ndi.center_of_mass(e, lab, np.arange(1, nlab + 1))
        d = [(c[0] - cidx[0]) ** 2 + (c[1] - cidx[1]) ** 2 for c in coms]
        i = int(np.argmin(d)) + 1
        out[k] = float((lab == i).sum()) * step * step
    return out


