"""Vertebral levels for the built-in segmenter: the spine analysis with its low-density retry,
whether the CT's own landmarks settle L2-L4 (and where they are, for the atlas registration), and
how the atlas's L3 relates to the landmarks."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .levels import parse_vertebra_level
from .spine_grid import analyse_spine_levels

__all__ = ["ATLAS_LEVELS_MIN_LUNG_MM", "SINGLE_BODY_HEIGHT_MM", "SINGLE_BODY_HEIGHT_RATIO", "SINGLE_BODY_PITCH_MM",
           "landmarks_with_atlas", "refuse_agreeing_levels_on_uneven_bodies", "spine_or_refuse", "settled_levels_z",
           "interior_body_cover", "spine_with_low_density_fallback"]


#: Least superior-inferior extent of lung in the field of view (mm) for the atlas registration to
#: break a disagreement of the CT's own level landmarks (whether it sides with one of them or with
#: none: AF 3 mm 40/10, siding with the iliac crests, both one level high, gave kidneys 0.49 / 0.44
#: with warns only). ICRP-110,
#: 3 mm, the other phantom as atlas: with the whole lungs (trunk cases, 216-218 mm) the
#: atlas's L3 was right on every case (AM_3mm: sacrum, iliac crests and ribs three levels apart);
#: on fields of view from 10-60 mm into the sacrum to 20-80 mm above the lung bases it was one level
#: or more off in all five cases where it sided with no landmark (AF kidneys Dice 0.39 / 0.27 and 0.49 /
#: 0.44 from the same registration); four of them went on with only warns. With more lung, an
#: atlas that sides with none of the landmarks is refused too (:func:`pipeline.segment.builtin.segment_builtin`).
ATLAS_LEVELS_MIN_LUNG_MM = 150.0


def landmarks_with_atlas(level_vote: dict, l3_atlas: np.ndarray, affine) -> tuple[list, list, float]:
    """The CT's landmarks that name L3, those that put it where the atlas does (the atlas's L3
    centre inside their L3), and that centre (RAS+ z, mm)."""
    ks = np.flatnonzero(l3_atlas.any(axis=(0, 1)))
    z = float((affine @ np.array([0.0, 0.0, 0.5 * (ks[0] + ks[-1]), 1.0]))[2])
    landmarks = [e for e in level_vote.get("evidence", [])
                 if e.get("name") != "atlas" and (e.get("proposes") or {}).get("L3")]
    agree = [e["name"] for e in landmarks if min(e["proposes"]["L3"]) <= z <= max(e["proposes"]["L3"])]
    return [e["name"] for e in landmarks], agree, z


def spine_or_refuse(work, body, vs, options, affine, atlas_level):
    """:func:`spine_with_low_density_fallback`; a manual anchor that names no vertebra is an InputError."""
    try:
        return spine_with_low_density_fallback(work, body, vs, options, affine, atlas_level)
    except ValueError as exc:
        raise InputError(None, f"built-in segmenter: {exc}") from None


#: Heights (mm, disc to disc less the discs) of the L2-L4 segments, and distances between their
#: centres, within which the segments are taken as single vertebrae for the atlas's superior-inferior
#: placement (lumbar bodies 25-35 mm high, discs 8-12 mm; the ranges of
#: :func:`pipeline.segment.levels.body_height_check` and a pitch of 20-50 mm).
SINGLE_BODY_HEIGHT_MM = (18.0, 45.0)
SINGLE_BODY_PITCH_MM = (20.0, 50.0)
#: Largest ratio of the tallest to the shortest of the L2-L4 segments: adult L2-L4 bodies differ
#: by about a tenth; where the discs were found the segments of the development CTs differ by at
#: most 1.56 times (ICRP-110 AM 3 mm), where a disc was misplaced by 2.3 times (AF 3 mm, lung bases
#: to sacrum: L3 42 mm, L2 18 mm, their centres 10 mm above the reference).
SINGLE_BODY_HEIGHT_RATIO = 1.8


def settled_levels_z(spine, affine, vs_z_mm: float, anchor=None) -> dict | None:
    """Centre z (RAS+, mm) of L2, L3 and L4 when the CT's own evidence settles the levels.

    Settled: two landmarks or more agree and none disagrees (``levels["settled"]``; a body
    height inconsistency may have made the vote a warn), or the operator named a level
    (``vertebra_level``). None otherwise, when a level is missing, or when a
    segment is not one vertebra by its height, its distance to the next or its height against
    the other two (:data:`SINGLE_BODY_HEIGHT_MM`, :data:`SINGLE_BODY_PITCH_MM`,
    :data:`SINGLE_BODY_HEIGHT_RATIO`: two bodies merged where a disc was missed, or a disc
    found inside a body, would misplace the atlas).
    In that last case an operator's anchor on L2, L3 or L4 (``anchor``, e.g. ``"L3@-215"``) is
    used alone: ``{"L3": -215.0}``, the z the operator read in that vertebra.
    """
    manual = any(e.get("name") == "manual" for e in spine.levels.get("evidence", []))
    if not _settled(spine.levels) and not manual:
        return None
    out, heights = {}, []
    for n in ("L2", "L3", "L4"):
        v = spine.by_name(n)
        if v is None or not SINGLE_BODY_HEIGHT_MM[0] <= (v.k_hi - v.k_lo + 1) * vs_z_mm <= SINGLE_BODY_HEIGHT_MM[1]:
            return _anchor_only(anchor) if manual else None
        out[n] = float((affine @ np.array([v.centre_xy[0], v.centre_xy[1], 0.5 * (v.k_lo + v.k_hi), 1.0]))[2])
        heights.append(v.k_hi - v.k_lo + 1)
    if max(heights) > SINGLE_BODY_HEIGHT_RATIO * min(heights):
        return _anchor_only(anchor) if manual else None
    pitches = (abs(out["L2"] - out["L3"]), abs(out["L3"] - out["L4"]))
    if not all(SINGLE_BODY_PITCH_MM[0] <= p <= SINGLE_BODY_PITCH_MM[1] for p in pitches):
        return _anchor_only(anchor) if manual else None
    return out


def refuse_agreeing_levels_on_uneven_bodies(spine, vs_z_mm: float, affine=None,
                                           lung_mm: float = 0.0) -> str | None:
    """With an atlas: refuse when the CT's landmarks agree on the levels (no operator level) but
    :func:`settled_levels_z` does not take its L2-L4 (not single vertebrae of similar height).

    The message names the z range (RAS+, mm; ``affine``: index -> RAS+ of the working grid) of the
    body the landmarks call L3, for the operator to check on the CT before naming a level: with the
    operator's level the registration is pinned at that one z (:func:`settled_levels_z`), not at
    the uneven bodies (ICRP-110 at 2 mm, lung bases + 80 mm to 10 mm into the sacrum, the reference
    L3 centre as the operator's level: kidneys 0.87 / 0.83 (AF) and 0.92 / 0.85 (AM) on the CT alone).

    The atlas registration can then be pinned neither at those bodies (their centres are off:
    10 mm on ICRP-110 AF at 3 mm, lung bases to sacrum, kidneys Dice 0.74 / 0.57) nor left free
    (it drifts along z by as much as a vertebra on such fields of view: kidneys 0.39 / 0.27, put
    41-46 mm too high, with warns only). An operator's level pins it at the level read on the CT.
    """
    levels = spine.levels
    if not levels.get("rules_settled", _settled(levels)):
        return None
    if any(e.get("name") == "manual" for e in levels.get("evidence", [])):
        return None
    agreeing = [e["name"] for e in levels.get("evidence", [])
                if e.get("agrees") and e.get("l1_segment_index") is not None]
    heights = []
    for n in ("L2", "L3", "L4"):
        v = spine.by_name(n)
        heights.append(f"{n} " + ("not found" if v is None else f"{(v.k_hi - v.k_lo + 1) * vs_z_mm:.0f} mm"))
    l3, where = spine.by_name("L3"), ""
    if l3 is not None and affine is not None:
        z = sorted(float((np.asarray(affine, float) @ np.array([0.0, 0.0, k, 1.0]))[2])
                   for k in (l3.k_lo - 0.5, l3.k_hi + 0.5))
        where = f"; they call L3 the bone at z {z[0]:.0f}..{z[1]:.0f} mm (check it on the CT)"
    if lung_mm >= ATLAS_LEVELS_MIN_LUNG_MM:
        return (f"the CT's landmarks ({', '.join(agreeing)}) agree, but the bodies between the discs found are not "
                f"single vertebrae of similar height ({', '.join(heights)}): a disc may be misplaced; the atlas "
                f"registration was left free ({lung_mm:.0f} mm of lung){where}")
    raise InputError(None, f"built-in segmenter: vertebral levels: the CT's landmarks ({', '.join(agreeing)}) agree, "
                     f"but the bodies between the discs found are not single vertebrae of similar height "
                     f"({', '.join(heights)}), so the atlas cannot be placed at them{where}; set "
                     "vertebra_level='L3@<z mm>' (CLI --vertebra-level, a z inside L3 read on the CT), "
                     "or provide masks")


def _settled(levels: dict) -> bool:
    """Whether the vote named the levels from agreeing landmarks (a record without ``settled``,
    written before it existed: when it passed)."""
    return bool(levels.get("settled", levels.get("decision") == "pass"))


def _anchor_only(anchor) -> dict | None:
    """``{name: z}`` of an operator's anchor on L2, L3 or L4; None for any other vertebra or none."""
    if anchor is None:
        return None
    name, z = parse_vertebra_level(anchor)
    return {name: z} if name in ("L2", "L3", "L4") else None


def interior_body_cover(spine) -> float:
    """Fraction of the vertebrae's interior slices (one slice left free next to each disc) that hold a body."""
    have = spine.body_mask.any(axis=(0, 1))
    inner = [k for v in spine.vertebrae for k in range(v.k_lo + 1, v.k_hi)]
    return float(np.mean(have[inner])) if inner else 0.0


def spine_with_low_density_fallback(work, body, vs, options, affine, atlas_level, low_bone_hu: float = 120.0):
    """The spine analysis at the default bone threshold (150 HU), and once more at ``low_bone_hu``
    when the vertebral bodies were found on fewer than 80 % of their interior slices.

    Osteopenic trabecular bone (100-150 HU) leaves the cortical shell open at 150 HU, so the
    bodies, the centreline and the levels fall apart (TotalSegmentator example: 67 % of the
    interior slices; every other development case 95-100 %). The second analysis is kept when
    it finds bodies on at least 90 % of them (TotalSegmentator: 93 %); a lower threshold on a
    normal spine makes discs look like bone, which is why it is not the default.
    """
    vs_z = float(np.asarray(vs, float)[2])
    kw = dict(lumbar_count=options.lumbar_count, affine=affine, anchor_level=options.vertebra_level,
              atlas_level=atlas_level, accept=lambda sp: settled_levels_z(sp, affine, vs_z) is not None)
    spine = analyse_spine_levels(work, body, vs, **kw)
    cover = interior_body_cover(spine)
    if cover >= 0.8:
        return spine
    low = analyse_spine_levels(work, body, vs, bone_hu=low_bone_hu, **kw)
    low_cover = interior_body_cover(low)
    if low_cover < 0.9:
        return spine
    low.notes.insert(0, f"vertebral bodies found on {100 * cover:.0f} % of their slices at 150 HU (osteopenia or "
                        f"a thin cortex): spine analysed at {low_bone_hu:.0f} HU ({100 * low_cover:.0f} %)")
    low.levels["bone_hu"] = low_bone_hu
    return low
