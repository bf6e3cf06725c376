"""Built-in, weights-free CT segmenter (the default backend).

Rule-based on the CT (HU), optionally helped by the reference SPECT (uptake):

- body: HU > -400, opened, components > 100 mL, holes filled slice by slice;
- CT numbers: a subcutaneous fat peak more than 7 HU from -102 HU is corrected in the
  segmenter's copy of the CT (:mod:`pipeline.segment.ct_numbers`);
- lungs: air (< -500 HU) inside the body, the largest component(s);
- spine: vertebral bodies, discs and levels (:mod:`pipeline.segment.spine`:
  L2-L4 counted up from the sacrum, cross-checked with the lowest rib-bearing
  vertebra, ``lumbar_count`` override); L2-L4 bodies and the marrow VOI
  (:mod:`pipeline.segment.marrow`, margin counted from the body outline eroded
  by one in-plane voxel because CT blur puts the thresholded outline up to a
  voxel outside the cortex);
- kidneys first: soft tissue lateral to the spine between T11 and L4, tight
  window 0-45 HU (non-contrast kidneys are below muscle and liver), eroded by
  4 mm, the most kidney-like compact component per side (position, size,
  SPECT hot spot when a SPECT is given); a wide 0-90 HU window as fallback;
- liver: soft tissue under the right lung base; its HU window (median +- 1.5
  robust SD) is learnt from 15-35 mm below the lung base; holes filled, eroded
  by 6 mm (cuts thin bridges to neighbours), the seeded component dilated back,
  one edge step into a +-3 SD window;
- spleen: the same under the left lung base, posterior and lateral;
- lesions (option): SPECT hot spots outside kidneys, liver, spleen and below
  the top of the sacrum (bladder), relative threshold.

Everything runs on a working grid of about 2 mm in-plane (block mean of the
CT) in RAS axis order; the labels are brought back to the CT grid exactly
(axis permutation and nearest-neighbour upsampling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..image import Image
from . import labels as L
from .marrow import ellipsoid_structure
from .orient import block_mean, from_ras_order, ras_order_affine, to_ras_order
from .builtin_atlas import atlas_box, bodies_from_atlas, crop, uncrop
from .native_spine import bodies_on_ct_grid, marrow_on_ct_grid, upsample_mask
from .builtin_rules import kidneys_by_rules, organ_under_lung
from .builtin_levels import (ATLAS_LEVELS_MIN_LUNG_MM, landmarks_with_atlas,
                             refuse_agreeing_levels_on_uneven_bodies, settled_levels_z, spine_or_refuse)
from .vertebral_body import complete_body_slices
from .components import component_sizes, fill_holes, select_labels
from .ct_numbers import FAT_REFERENCE_HU, FAT_TOLERANCE_HU, fat_correction_hu, fat_peak_hu

__all__ = ["BuiltinOptions", "BuiltinResult", "segment_builtin"]


@dataclass(frozen=True)
class BuiltinOptions:
    """Options of the built-in segmenter.

    Parameters
    ----------
    lumbar_count : int
        Number of lumbar vertebrae (manual override for transitional anatomy).
    marrow_method : {"eroded", "spheres"}
    marrow_margin_mm : float
        Distance of the marrow VOI from cortex, endplates, discs and lesions.
    marrow_sphere_radius_mm : float
    lesions_from_spect : bool
        Add SPECT hot spots as lesions (needs a SPECT).
    lesion_threshold : float
        Lesion threshold as a fraction of the hottest voxel outside the organs.
    working_voxel_mm : float
        In-plane voxel size of the working grid (block mean), mm.
    vertebra_level : str or (str, float), optional
        Manual level anchor, e.g. ``"L3@-215"``: the vertebra whose body contains
        z = -215 mm (RAS+ superior) is L3; overrides the level vote.
    atlas : tuple of AtlasSubject
        Labelled CTs (:mod:`pipeline.segment.atlas`); when given, kidneys, liver and
        spleen come from atlas registration and the patient's CT numbers
        (:func:`pipeline.segment.atlas_organs.atlas_organs`) instead of the rules.
    absent_organs : tuple of str
        Organs the patient does not have (nephrectomy, splenectomy). The atlas leaves them out
        of the registration's organs before the refinement (their place goes to the tissue there);
        the rules' mask of them, if any, is dropped with a note. Their mask is empty.
    """

    lumbar_count: int = 5
    marrow_method: str = "eroded"
    marrow_margin_mm: float = 4.0
    marrow_sphere_radius_mm: float = 8.0
    lesions_from_spect: bool = False
    lesion_threshold: float = 0.4
    working_voxel_mm: float = 2.0
    vertebra_level: str | tuple | None = None
    atlas: tuple = ()
    absent_organs: tuple = ()


@dataclass
class BuiltinResult:
    """Label map on the CT grid, vertebra levels and notes."""

    labels: Image
    vertebrae: dict = field(default_factory=dict)  # name -> {"k_range_ct": [lo, hi], "rib_bearing": bool}
    notes: list = field(default_factory=list)
    level_vote: dict = field(default_factory=dict)  # the spine vote (pipeline.segment.levels), for qc.json
    organ_method: dict = field(default_factory=dict)  # how kidneys, liver, spleen were found (rules or atlas record)


def _put_spine_on_ct_grid(full_box, bodies_ct, marrow):
    """Replace, in place, the upsampled working-grid L2-L4 bodies by those drawn on the CT grid.

    Only voxels labelled body or vertebra change: an organ label keeps its voxels.
    """
    free = np.isin(full_box, (L.BODY, L.VERTEBRAE_L2L4, L.MARROW_L2L4))
    full_box[free & (full_box != L.BODY)] = L.BODY
    for n, m in bodies_ct.items():
        full_box[free & m] = L.VERTEBRAE_L2L4
        full_box[free & marrow[n]] = L.MARROW_L2L4


def _largest_components(mask, keep=1):
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask), []
    sizes = component_sizes(lab, n)
    order = np.argsort(sizes)[::-1][:keep]
    return select_labels(lab, order + 1), sizes[order]


# --------------------------------------------------------------------------- geometry helpers and tissues
def _body(ct, vs):
    m = ct > -400
    m = ndi.binary_opening(m, structure=np.ones((3, 3, 1), bool), iterations=2)
    lab, n = ndi.label(m)
    if n == 0:
        raise InputError(None, "no patient found in the CT (nothing above -400 HU)")
    sizes = component_sizes(lab, n) * np.prod(vs) / 1000.0
    body = select_labels(lab, np.flatnonzero(sizes > 100.0) + 1)
    body = ndi.binary_dilation(body, np.ones((3, 3, 1), bool), iterations=2) & (ct > -400)
    return fill_holes(body, per_slice=True)


def _lungs(ct, body, vs):
    air = (ct < -500) & body
    lab, n = ndi.label(air)
    if n == 0:
        return np.zeros_like(air)
    sizes = component_sizes(lab, n) * np.prod(vs) / 1000.0
    big = np.flatnonzero((sizes >= 0.3 * sizes.max()) & (sizes > 100.0)) + 1
    lungs = select_labels(lab, big)
    # include the dense (dependent) lung and vessels: close and fill per slice
    for k in range(lungs.shape[2]):
        if lungs[:, :, k].any():
            lungs[:, :, k] = ndi.binary_fill_holes(ndi.binary_closing(lungs[:, :, k], iterations=2))
    return lungs & body


# --------------------------------------------------------------------------- main entry
def segment_builtin(ct: Image, spect: Image | None = None,
                    options: BuiltinOptions = BuiltinOptions()) -> BuiltinResult:
    """Segment body, lungs, spine (levels), L2-L4, marrow, liver, spleen and kidneys.

    Parameters
    ----------
    ct : Image
        CT in HU (any orientation; oblique grids are handled by their nearest
        axis order).
    spect : Image, optional
        Reference SPECT (Bq/mL), any grid overlapping the CT; resampled linearly
        onto the CT working grid. Helps the kidneys and enables lesions.
    options : BuiltinOptions

    Returns
    -------
    BuiltinResult
        ``labels`` on the CT grid (uint16, DESIGN ids), vertebra levels, notes.
    """
    arr, tr, vs_full = to_ras_order(ct)
    arr = np.maximum(arr.astype(np.float32), -1024.0)
    f = tuple(int(max(1, round(options.working_voxel_mm / v))) if ax < 2 else 1
              for ax, v in enumerate(vs_full))
    work = block_mean(arr, f) if f != (1, 1, 1) else arr
    vs = vs_full * np.array(f)
    notes: list[str] = []

    spect_w = spect_fov = None
    if spect is not None:
        spect_w, spect_fov = _spect_on_working_grid(ct, spect, tr, f, work.shape)
        if not spect_fov.all():
            notes.append(f"the SPECT covers {100 * spect_fov.mean():.0f} % of the CT: outside it the organs are "
                         "found on the CT alone")

    body = _body(work, vs)
    fat_peak = fat_peak_hu(work, body, vs)
    fat_offset = fat_correction_hu(fat_peak)
    if fat_offset:
        # the segmenter's fixed levels (fat, rims, bone, canal) hold for fat at about -100 HU
        # (pipeline.segment.ct_numbers); the CT itself is not changed (the QC gate reads it
        # against fat the same way)
        arr = np.maximum(arr - np.float32(fat_offset), -1024.0)
        work = np.maximum(work - np.float32(fat_offset), -1024.0)
        notes.append(f"CT numbers: the body's fat peak is at {fat_peak:.0f} HU (fat reads {FAT_REFERENCE_HU:.0f} "
                     f"+- {FAT_TOLERANCE_HU:.0f} HU at 120 kVp): the segmentation adds {-fat_offset:+.0f} HU to the "
                     "CT (calibration, beam hardening or tube voltage; the CT itself is unchanged)")
    lungs = _lungs(work, body, vs)
    lung_mm = float(np.count_nonzero(lungs.any(axis=(0, 1)))) * float(vs[2])  # lung along z in the field of view
    sm = ndi.gaussian_filter(work, sigma=tuple(float(np.clip(2.5 / v, 0.5, 1.5)) for v in vs))
    bone = (sm > 180.0) & body

    work_img = Image(work, ras_order_affine(ct, tr, f), "HU")
    transforms, registrations, vert_priors, vert_record, atlas_level = [], [], {}, {}, None
    spine, uneven = None, None
    if options.atlas:
        from .atlas_organs import atlas_vertebrae, carry_all, register_all

        # the CT's own levels first: when they settle L2-L4, they also pin the registration along z
        # (pipeline.segment.atlas.register_subject), and the atlas does not vote
        spine = spine_or_refuse(work, body, vs, options, work_img.affine, None)
        levels_z = settled_levels_z(spine, work_img.affine, float(vs[2]), options.vertebra_level)
        if levels_z is None:
            uneven = refuse_agreeing_levels_on_uneven_bodies(spine, float(vs[2]), work_img.affine, lung_mm)
            spine = None  # analysed again below, with the atlas's L3 as one more evidence
        # register on the working grid (a 0.7 mm CT is 20 times larger and no better at 4 mm);
        # carry and refine only inside the box that can hold the organs and L2-L4
        transforms, registrations = register_all(work_img, options.atlas, target_levels_z=levels_z)
        if levels_z is not None:
            spine.levels["atlas_registration"] = (
                "the atlas's superior-inferior placement was set from these L2-L4 (the atlas does not vote)")
        note = _ct_number_note(registrations)
        if note:
            notes.append(note)
        box = atlas_box(work_img, options.atlas, transforms)
        crop_img = crop(work_img, box)
        carried = carry_all(crop_img, options.atlas, transforms)
        vert_priors, vert_record = atlas_vertebrae(crop_img, options.atlas, carried)
        vert_priors = {n: uncrop(p, box, work.shape) for n, p in vert_priors.items()}
        if spine is None and "L3" in vert_priors and (vert_priors["L3"] > 0.5).any():  # the atlas votes
            c = np.argwhere(vert_priors["L3"] > 0.5).mean(axis=0)
            atlas_level = ("L3", float((work_img.affine @ np.r_[c, 1.0])[2]))
    if spine is None:
        spine = spine_or_refuse(work, body, vs, options, work_img.affine, atlas_level)
        if uneven and spine.levels.get("decision") == "pass":
            spine.levels["decision"] = "warn"
            spine.levels["message"] += "; " + uneven
            spine.notes.append("levels: warn: " + uneven)
    notes += spine.notes
    atlas_bodies = None
    if spine.levels.get("decision") == "fail":
        # the atlas names L2-L4 only where this CT's own landmarks cannot (none found, or they
        # disagree); a single landmark that the atlas contradicts is a refusal. The atlas's levels
        # are a weak evidence on real CTs: on the GE low-dose CT its L3 centre (best subject) lay
        # 32 mm above the landmarks' L3, on the TotalSegmentator CT 53 mm below (the profile and
        # mutual-information registration of a trunk atlas onto a cut field of view); it names the
        # ICRP-110 phantoms' levels right only because the two phantoms resemble each other.
        usable = spine.levels.get("rules_decision") == "fail"
        atlas_bodies = bodies_from_atlas(spine.body_mask, sm, vert_priors) if usable else None
        if atlas_bodies is None:
            raise InputError(None, f"built-in segmenter: {spine.levels['message']}")
        named, agree, z_atlas = landmarks_with_atlas(spine.levels, atlas_bodies["L3"], work_img.affine)
        if named and not agree:
            # landmarks and atlas, each on its own: every evidence disagrees with every other (the
            # issue's refusal). Before, with 150 mm of lung or more the atlas went on alone with a
            # warn: the real GE CT rebinned to 2.2 mm and read 15 HU high (before the CT numbers
            # were read against fat) had its sacrum and iliac crests agree on the right L3, the
            # ribs two levels low, and the atlas one level high named L2-L4 (kidneys +13 / +29 %)
            raise InputError(None, "built-in segmenter: vertebral levels: the atlas registration puts L3 at "
                             f"z {z_atlas:.0f} mm, where none of the CT's landmarks ({', '.join(named)}) "
                             "puts it; set vertebra_level='L3@<z mm>' (CLI --vertebra-level) after reading "
                             "the levels on the CT, or provide masks; the rules alone: " + spine.levels["message"])
        if len(named) > 1 and lung_mm < ATLAS_LEVELS_MIN_LUNG_MM:
            # the CT shows landmarks and they disagree, on a field of view whose registration has
            # little lung to hold it (:data:`ATLAS_LEVELS_MIN_LUNG_MM`): the free registration drifted
            # 10-38 mm along z on such fields of view of the ICRP-110 phantoms, as much as a vertebra,
            # so it cannot arbitrate even where it sides with one of them (AF 40/10: with the iliac
            # crests, both one level high, kidneys 0.49 / 0.44); the organs come from the same
            # registration; refuse
            raise InputError(None, "built-in segmenter: vertebral levels: the CT's landmarks "
                             f"({', '.join(named)}) disagree; the atlas registration puts L3 at z {z_atlas:.0f} mm "
                             f"(it sides with {', '.join(agree)}), but with {lung_mm:.0f} mm of lung in the field of "
                             "view the registration cannot settle it (the organs come from the same registration); "
                             "set vertebra_level='L3@<z mm>' (CLI --vertebra-level) after reading the levels on the "
                             "CT, or provide masks; the rules alone: " + spine.levels["message"])
        if agree:
            landmarks = f"landmarks that agree with it: {', '.join(agree)}; "
        else:
            landmarks = "no landmark of the CT names L3; "
        spine.levels["message"] = ("L2-L4 from the atlas registration (" + ", ".join(
            f"{n} {r['best_mad_hu']} HU" for n, r in vert_record.items()) + " mean CT difference); "
            + landmarks + "check them on the CT: on the two real CTs where the landmarks settle the levels, the "
            + "atlas's L3 was one and two vertebrae off; override with --vertebra-level; "
            + "the rules alone: " + spine.levels["message"])
        spine.levels["decision"] = "warn"
        spine.levels["source"] = "atlas"
        notes.append("vertebral levels: " + spine.levels["message"])
    if atlas_bodies is not None:
        bodies = atlas_bodies
    else:
        names = [v.name for v in spine.vertebrae]
        missing = [n for n in ("L2", "L3", "L4") if n not in names]
        if missing:
            raise InputError(None, f"built-in segmenter: vertebra(e) {', '.join(missing)} not found "
                             f"(levels found: {', '.join(names) or 'none'}); provide masks instead")
        bodies = {}
        for n in ("L2", "L3", "L4"):
            v = spine.by_name(n)
            m = np.zeros(work.shape, bool)
            m[:, :, v.k_lo:v.k_hi + 1] = spine.body_mask[:, :, v.k_lo:v.k_hi + 1]
            m, completed = complete_body_slices(m, sm, v.k_lo, v.k_hi)
            if completed:
                notes.append(f"{n}: body outline whole on too few slices (thin cortex, partial volume); {completed} of its "
                             f"{v.k_hi - v.k_lo + 1} slices completed from the nearest whole slice")
            m, _ = _largest_components(m, 1)
            bodies[n] = m
    spine_x = float(np.nanmedian(spine.centre[:, 0]))

    if options.atlas:
        from .atlas_organs import atlas_organs

        masks, organ_method = atlas_organs(crop_img, options.atlas, carried, registrations=registrations,
                                           spect=None if spect_w is None else spect_w[box],
                                           spect_fov=None if spect_fov is None else spect_fov[box],
                                           lungs=lungs[box],
                                           fat_hu=-100.0 if fat_peak is None else fat_peak - fat_offset,
                                           absent=options.absent_organs)
        organ_method["vertebrae"] = vert_record
        organ_method["box_working_voxels"] = [[int(b.start), int(b.stop)] for b in box]
        masks = {n: uncrop(m, box, work.shape) & body & ~bone for n, m in masks.items()}
        kidneys = {n: masks[n] for n in ("kidney_left", "kidney_right")}
        liver, spleen = masks["liver"], masks["spleen"]
        notes.append("kidneys, liver, spleen: atlas (" + ", ".join(
            f"{n} {r['method']}" for n, r in organ_method["organs"].items()) + ")")
    else:
        organ_method = {"method": "rules"}
        v4 = spine.by_name("L4")
        # kidneys first (tight HU window, they hold the lowest soft-tissue HU), then liver and spleen
        kidneys, knotes = kidneys_by_rules(sm, body, bone, vs, spine, np.zeros(work.shape, bool), spect_w)
        notes += knotes
        excl = kidneys["kidney_left"] | kidneys["kidney_right"]
        liver = organ_under_lung(sm, lungs, body, bone, vs, "right", spine_x, excl, k_min=v4.k_lo)
        excl |= liver
        spleen = organ_under_lung(sm, lungs, body, bone, vs, "left", spine_x, excl, posterior_only=True,
                                   max_depth_mm=150.0, erode_mm=5.0, k_min=v4.k_lo)
        for n, m in (("kidney_left", kidneys["kidney_left"]), ("kidney_right", kidneys["kidney_right"]),
                     ("liver", liver), ("spleen", spleen)):
            if n in options.absent_organs and m.any():
                notes.append(f"{n}: declared absent; the rules' {m.sum() * np.prod(vs) / 1000.0:.0f} mL "
                             "of it (other tissue there) dropped")
                m[:] = False

    organ_method["ct_numbers"] = {
        "fat_peak_hu": None if fat_peak is None else round(fat_peak, 1), "fat_reference_hu": FAT_REFERENCE_HU,
        "tolerance_hu": FAT_TOLERANCE_HU, "subtracted_hu": round(fat_offset, 1),
        "source": "pipeline.segment.ct_numbers.fat_peak_hu: subcutaneous fat peak (3-30 mm below the outline)"}

    lesions = np.zeros(work.shape, np.int32)
    if options.lesions_from_spect:
        if spect_w is None:
            raise InputError(None, "lesions from SPECT requested but no SPECT given")
        organs = liver | spleen | kidneys["kidney_left"] | kidneys["kidney_right"]
        lesions = _lesions(spect_w, body, organs, spine, vs, options.lesion_threshold)

    # the bodies are drawn again on the CT's own in-plane grid and the marrow VOI is made there:
    # on the ~2 mm working grid a 4 mm margin rounds up to whole working voxels
    # (pipeline.segment.native_spine)
    bodies_ct, spine_box = bodies_on_ct_grid(bodies, arr, f, vs_full, bone_hu=spine.levels.get("bone_hu", 150.0))
    lesions_ct = upsample_mask(lesions > 0, f, arr.shape)[spine_box]
    marrow = marrow_on_ct_grid(bodies_ct, vs_full, options.marrow_method, options.marrow_margin_mm,
                               options.marrow_sphere_radius_mm, lesions_ct)
    for n, m in marrow.items():
        if not m.any():
            notes.append(f"marrow VOI of {n} is empty (body too small for a {options.marrow_margin_mm} mm margin)")

    lab = np.zeros(work.shape, np.uint16)
    lab[body] = L.BODY
    for n in bodies:
        lab[bodies[n]] = L.VERTEBRAE_L2L4
    lab[liver] = L.LIVER
    lab[spleen] = L.SPLEEN
    lab[kidneys["kidney_left"]] = L.KIDNEY_LEFT
    lab[kidneys["kidney_right"]] = L.KIDNEY_RIGHT
    lab[lesions > 0] = lesions[lesions > 0].astype(np.uint16)

    full = upsample_mask(lab, f, arr.shape)
    _put_spine_on_ct_grid(full[spine_box], bodies_ct, marrow)
    full = from_ras_order(full, ct)
    out = ct.with_array(np.ascontiguousarray(full.astype(np.uint16)), unit="label")
    work_aff = ras_order_affine(ct, tr, f)
    levels = {}
    for v in ([] if atlas_bodies is not None else spine.vertebrae):
        levels[v.name] = {"k_range_working": [v.k_lo, v.k_hi], "rib_bearing": v.rib_bearing,
                          "centre_ras_mm": [round(float(x), 2) for x in (work_aff @ np.array(
                              [v.centre_xy[0], v.centre_xy[1], 0.5 * (v.k_lo + v.k_hi), 1.0]))[:3]],
                          "z_range_ras_mm": [round(z, 2) for z in sorted(float((work_aff @ np.array(
                              [v.centre_xy[0], v.centre_xy[1], k, 1.0]))[2]) for k in (v.k_lo - 0.5, v.k_hi + 0.5))]}
    for n, m in (atlas_bodies or {}).items():
        ks = np.flatnonzero(m.any(axis=(0, 1)))
        c = np.argwhere(m).mean(axis=0)
        levels[n] = {"k_range_working": [int(ks[0]), int(ks[-1])], "rib_bearing": False, "source": "atlas",
                     "centre_ras_mm": [round(float(x), 2) for x in (work_aff @ np.r_[c, 1.0])[:3]],
                     "z_range_ras_mm": [round(z, 2) for z in sorted(float((work_aff @ np.r_[c[0], c[1], k, 1.0])[2])
                                                                    for k in (ks[0] - 0.5, ks[-1] + 0.5))]}
    return BuiltinResult(out, levels, notes, spine.levels, organ_method)


def _ct_number_note(registrations, min_offset_hu: float = 10.0) -> str | None:
    """A note when the atlas CT's numbers were mapped onto the patient's by more than ``min_offset_hu``.

    ``registrations``: the summaries of :func:`pipeline.segment.atlas.register_subject`; the
    peaks are the same for every subject made from the same table, so the first mapped one speaks.
    """
    for r in registrations:
        m = r.get("ct_number_matching") or {}
        if m.get("applied"):
            (fa, sa), (fp, sp) = m["atlas_peaks_hu"], m["patient_peaks_hu"]
            if max(abs(fa - fp), abs(sa - sp)) < min_offset_hu:
                return None
            return (f"this CT's numbers differ from the atlas CT's (soft-tissue peak {sp:.0f} against {sa:.0f} HU, "
                    f"fat {fp:.0f} against {fa:.0f} HU: contrast, calibration or tube voltage); the atlas CT was "
                    "mapped onto them before the deformable registration")
    return None


def _spect_on_working_grid(ct, spect, tr, f, shape):
    """Linear resampling of the SPECT onto the working grid (RAS order, blocks of ``f`` CT voxels).

    Each working voxel takes the SPECT at its block's centre. Between the same SPECT sample
    centres the linear interpolant is multilinear, and its mean over a block symmetric about
    that centre is its value there, so this equals the block mean of the SPECT resampled onto
    the full CT grid (which it replaced: 7.9 s and 0.6 GB of float64 on the GE CT's 79 M
    voxels) except where a block straddles a sample centre, where the interpolant's kink makes
    a small difference (a test: at most 1.5 % of a blob's peak; GE CT: 0.2 % of the peak at the
    99.9th percentile).
    Returns the SPECT (0 outside its field of view) and its field of view (bool: the
    block's centre inside the SPECT's grid), both on the working grid.
    """
    from ..grid import resample_to

    grid = Image(np.zeros(shape, np.uint8), ras_order_affine(ct, tr, f), "1")
    a = np.asarray(resample_to(spect, grid, "linear", default_value=np.nan).array, np.float32)
    fov = np.isfinite(a)
    return np.where(fov, a, 0.0).astype(np.float32), fov


def _lesions(spect, body, organs, spine, vs, rel_threshold):
    """SPECT hot spots outside organs (and outside the bladder region below the sacrum top)."""
    s = ndi.gaussian_filter(spect, 1.0)
    allowed = body & ~ndi.binary_dilation(organs, ellipsoid_structure(6.0, vs))
    s1 = spine.by_name("S1")
    if s1 is not None:
        allowed[:, :, : s1.k_hi + 1] = False  # bladder: urinary activity, not lesions
    if not allowed.any() or s[allowed].max() <= 0:
        return np.zeros(spect.shape, np.int32)
    hot = allowed & (s >= rel_threshold * s[allowed].max())
    lab, n = ndi.label(hot)
    out = np.zeros(spect.shape, np.int32)
    next_id = L.LESION_FIRST
    for i in range(1, n + 1):
        comp = lab == i
        if comp.sum() * np.prod(vs) / 1000.0 < 1.0:
            continue
        out[comp] = next_id
        next_id += 1
    return out
