"""Built-in, weights-free CT segmenter (the default backend).

Rule-based on the CT (HU), optionally helped by the reference SPECT (uptake):

- body: HU > -400, opened, components > 100 mL, holes filled slice by slice;
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
from ..grid import bounding_box
from ..image import Image
from . import labels as L
from .marrow import ellipsoid_structure, marrow_voi
from .orient import block_mean, from_ras_order, ras_order_affine, to_ras_order
from .builtin_atlas import atlas_box, bodies_from_atlas, crop, uncrop
from .spine import analyse_spine

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


@dataclass
class BuiltinResult:
    """Label map on the CT grid, vertebra levels and notes."""

    labels: Image
    vertebrae: dict = field(default_factory=dict)  # name -> {"k_range_ct": [lo, hi], "rib_bearing": bool}
    notes: list = field(default_factory=list)
    level_vote: dict = field(default_factory=dict)  # the spine vote (pipeline.segment.levels), for qc.json
    organ_method: dict = field(default_factory=dict)  # how kidneys, liver, spleen were found (rules or atlas record)


# --------------------------------------------------------------------------- geometry helpers
def _upsample_labels(lab, f, shape):
    out = lab
    for ax, g in enumerate(f):
        if g > 1:
            out = np.repeat(out, g, axis=ax)
    pad = [(0, s - o) for s, o in zip(shape, out.shape)]
    return np.pad(out, pad, mode="edge")


def _largest_components(mask, keep=1):
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask), []
    sizes = ndi.sum_labels(mask, lab, np.arange(1, n + 1))
    order = np.argsort(sizes)[::-1][:keep]
    return np.isin(lab, order + 1), sizes[order]


# --------------------------------------------------------------------------- tissues
def _body(ct, vs):
    m = ct > -400
    m = ndi.binary_opening(m, structure=np.ones((3, 3, 1), bool), iterations=2)
    lab, n = ndi.label(m)
    if n == 0:
        raise InputError(None, "no patient found in the CT (nothing above -400 HU)")
    sizes = ndi.sum_labels(m, lab, np.arange(1, n + 1)) * np.prod(vs) / 1000.0
    body = np.isin(lab, np.flatnonzero(sizes > 100.0) + 1)
    body = ndi.binary_dilation(body, np.ones((3, 3, 1), bool), iterations=2) & (ct > -400)
    for k in range(body.shape[2]):
        body[:, :, k] = ndi.binary_fill_holes(body[:, :, k])
    return body


def _lungs(ct, body, vs):
    air = (ct < -500) & body
    lab, n = ndi.label(air)
    if n == 0:
        return np.zeros_like(air)
    sizes = ndi.sum_labels(air, lab, np.arange(1, n + 1)) * np.prod(vs) / 1000.0
    big = np.flatnonzero((sizes >= 0.3 * sizes.max()) & (sizes > 100.0)) + 1
    lungs = np.isin(lab, big)
    # include the dense (dependent) lung and vessels: close and fill per slice
    for k in range(lungs.shape[2]):
        if lungs[:, :, k].any():
            lungs[:, :, k] = ndi.binary_fill_holes(ndi.binary_closing(lungs[:, :, k], iterations=2))
    return lungs & body


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


def _organ_under_lung(sm, lungs, body, bone, vs, side, spine_x, excl, posterior_only=False,
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


def _kidneys(sm, body, bone, vs, spine, excl, spect=None):
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

    spect_w = None
    if spect is not None:
        spect_w = _spect_on_working_grid(ct, spect, tr, f, work.shape)

    body = _body(work, vs)
    lungs = _lungs(work, body, vs)
    sm = ndi.gaussian_filter(work, sigma=tuple(float(np.clip(2.5 / v, 0.5, 1.5)) for v in vs))
    bone = (sm > 180.0) & body

    work_img = Image(work, ras_order_affine(ct, tr, f), "HU")
    transforms, registrations, vert_priors, vert_record, atlas_level = [], [], {}, {}, None
    if options.atlas:
        from .atlas_organs import atlas_vertebrae, carry_all, register_all

        # register on the working grid (a 0.7 mm CT is 20 times larger and no better at 4 mm);
        # carry and refine only inside the box that can hold the organs and L2-L4
        transforms, registrations = register_all(work_img, options.atlas)
        box = atlas_box(work_img, options.atlas, transforms)
        crop_img = crop(work_img, box)
        carried = carry_all(crop_img, options.atlas, transforms)
        vert_priors, vert_record = atlas_vertebrae(crop_img, options.atlas, carried)
        vert_priors = {n: uncrop(p, box, work.shape) for n, p in vert_priors.items()}
        if "L3" in vert_priors and (vert_priors["L3"] > 0.5).any():
            c = np.argwhere(vert_priors["L3"] > 0.5).mean(axis=0)
            atlas_level = ("L3", float((work_img.affine @ np.r_[c, 1.0])[2]))
    try:
        spine = analyse_spine(work, body, vs, lumbar_count=options.lumbar_count,
                              affine=ras_order_affine(ct, tr, f), anchor_level=options.vertebra_level,
                              atlas_level=atlas_level)
    except ValueError as exc:  # a manual anchor that names no vertebra
        raise InputError(None, f"built-in segmenter: {exc}") from None
    notes += spine.notes
    atlas_bodies = None
    if spine.levels.get("decision") == "fail":
        # the atlas names L2-L4 only where this CT's own landmarks cannot (none found, or they
        # disagree); a single landmark that the atlas contradicts is a refusal
        usable = spine.levels.get("rules_decision") == "fail"
        atlas_bodies = bodies_from_atlas(spine.body_mask, sm, vert_priors) if usable else None
        if atlas_bodies is None:
            raise InputError(None, f"built-in segmenter: {spine.levels['message']}")
        spine.levels["message"] = ("L2-L4 from the atlas registration (" + ", ".join(
            f"{n} {r['best_mad_hu']} HU" for n, r in vert_record.items()) + " mean CT difference); "
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
            m, _ = _largest_components(m, 1)
            bodies[n] = m
    spine_x = float(np.nanmedian(spine.centre[:, 0]))

    if options.atlas:
        from .atlas_organs import atlas_organs

        masks, organ_method = atlas_organs(crop_img, options.atlas, carried, registrations=registrations,
                                           spect=None if spect_w is None else spect_w[box])
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
        kidneys, knotes = _kidneys(sm, body, bone, vs, spine, np.zeros(work.shape, bool), spect_w)
        notes += knotes
        excl = kidneys["kidney_left"] | kidneys["kidney_right"]
        liver = _organ_under_lung(sm, lungs, body, bone, vs, "right", spine_x, excl, k_min=v4.k_lo)
        excl |= liver
        spleen = _organ_under_lung(sm, lungs, body, bone, vs, "left", spine_x, excl, posterior_only=True,
                                   max_depth_mm=150.0, erode_mm=5.0, k_min=v4.k_lo)

    lesions = np.zeros(work.shape, np.int32)
    if options.lesions_from_spect:
        if spect_w is None:
            raise InputError(None, "lesions from SPECT requested but no SPECT given")
        organs = liver | spleen | kidneys["kidney_left"] | kidneys["kidney_right"]
        lesions = _lesions(spect_w, body, organs, spine, vs, options.lesion_threshold)

    # the thresholded outline lies up to one voxel outside the true cortex (CT blur spreads the
    # cortex into the fat around it): the VOI margin is counted from the outline eroded by one
    # in-plane voxel
    inner = {n: ndi.binary_erosion(m, np.ones((3, 3, 1), bool)) for n, m in bodies.items()}
    marrow = marrow_voi(inner, vs, options.marrow_method, options.marrow_margin_mm,
                        options.marrow_sphere_radius_mm, lesions > 0)
    for n, m in marrow.items():
        if not m.any():
            notes.append(f"marrow VOI of {n} is empty (body too small for a {options.marrow_margin_mm} mm margin)")

    lab = np.zeros(work.shape, np.uint16)
    lab[body] = L.BODY
    for n in bodies:
        lab[bodies[n]] = L.VERTEBRAE_L2L4
        lab[marrow[n]] = L.MARROW_L2L4
    lab[liver] = L.LIVER
    lab[spleen] = L.SPLEEN
    lab[kidneys["kidney_left"]] = L.KIDNEY_LEFT
    lab[kidneys["kidney_right"]] = L.KIDNEY_RIGHT
    lab[lesions > 0] = lesions[lesions > 0].astype(np.uint16)

    full = _upsample_labels(lab, f, arr.shape)
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


def _spect_on_working_grid(ct, spect, tr, f, shape):
    """Linear resampling of the SPECT onto the CT grid, then RAS order and block mean."""
    from ..grid import resample_to

    on_ct = resample_to(spect, ct, "linear", default_value=0.0).array
    from nibabel.orientations import apply_orientation

    a = apply_orientation(on_ct, tr).astype(np.float32)
    a = block_mean(a, f) if f != (1, 1, 1) else a
    return a[: shape[0], : shape[1], : shape[2]]


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
