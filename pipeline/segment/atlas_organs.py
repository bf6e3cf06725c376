"""Kidneys, liver and spleen from several atlas subjects and the patient's CT.

For every atlas subject (:mod:`pipeline.segment.atlas`): register it onto the patient,
carry its organs (priors) and its CT onto the patient's grid, and measure per organ
how well the carried CT matches the patient's around that organ: the mean absolute
difference of the two CTs (HU clipped to [-200, 200], smoothed by 2 mm) in the organ's
region (its prior above 0.5, dilated by three voxels), ``mad_hu``.

- Fusion: per organ, each subject weighs ``exp(-mad_hu / tau_hu)`` (``tau_hu`` 10 HU):
  a subject whose anatomy matches the patient's there dominates.
- Decision per organ: when the best subject's ``mad_hu`` is below ``trust_mad_hu``
  (20 HU: the carried CT matches the patient's to within its noise, as for the same
  person), the fused prior above 0.5 is the organ; otherwise the organ of another
  person is only a guide, and the mask comes from the patient's CT numbers
  (:func:`pipeline.segment.atlas_refine.refine_organs`, the prior sharpened to
  ``prior ** gamma`` after ``refine_sigma_mm`` smoothing; the liver's prior has a tail
  beyond the atlas outline, :func:`prior_with_tail`, so that a liver larger than the atlas
  person's can be taken whole).

- With the reference SPECT, for every organ refined on the CT that is clearly hot
  (its uptake at least twice that of a shell around it): voxels far below its uptake
  are vetoed, its partial-volume rim against fat is added, and it grows over connected
  tissue that has both its CT numbers and its uptake (:mod:`pipeline.segment.atlas_refine`).
  The SPECT never makes an organ on its own.
- With the reference SPECT, where two organs touch and one of them is clearly hot, their
  common boundary is put at the midpoint of their uptakes
  (:func:`pipeline.segment.uptake_boundary.split_by_uptake`, ``split_touching_by_uptake``).

Measured on the ICRP-110 phantoms (one subject registered to the other, noise-free
4 mm atlas onto the low-dose 3 mm case): ``mad_hu`` 9-11 HU for the same person,
35-68 HU for the other person; see ``sample_data.seg_regression`` for the Dice table.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..image import Image
from .atlas import ATLAS_ORGANS, ATLAS_VERTEBRAE, AtlasOptions, register_subject, single_threaded_itk
from .atlas_carry import carry_subject
from .atlas_refine import grow_partial_volume, refine_organs
from .ct_boundary import split_by_ct
from .uptake_growth import (drop_other_hot_basins, grow_together, grow_with_uptake, smoothed_ct,
                            uptake_growth_allowed, uptake_veto)
from .components import without_thin_appendages
from .fusion_options import FusionOptions
from .rib_cage import rib_cage_depth_mm
from .uptake_boundary import split_by_uptake


__all__ = ["FusionOptions", "prior_with_tail", "prior_with_caudal_tail", "register_all", "carry_all", "atlas_organs", "atlas_vertebrae", "local_mad_hu"]


def prior_with_tail(soft: np.ndarray, fused: np.ndarray, others: np.ndarray, voxel_size_mm,
                    tail_mm: float, height: float = 0.5, others_max: float = 0.05) -> np.ndarray:
    """A refinement prior that does not end at the atlas person's organ outline.

    Outside the fused prior's 0.5 outline the prior is at least
    ``height * exp(-d / tail_mm)`` (``d`` the distance to the outline, mm), except where
    another organ's fused prior exceeds ``others_max`` (the tail never competes with a
    neighbour's own ground). The patient's CT numbers then decide how far the organ
    reaches (:func:`pipeline.segment.atlas_refine.refine_organs`).

    Parameters
    ----------
    soft : numpy.ndarray
        The organ's refinement prior (values in [0, 1]).
    fused : numpy.ndarray
        The organ's fused atlas prior, same shape.
    others : numpy.ndarray
        The largest fused prior of the other organs, same shape.
    voxel_size_mm : sequence of 3 float
    tail_mm : float
        Decay length, mm.

    Returns
    -------
    numpy.ndarray, float32
    """
    d = ndi.distance_transform_edt(fused <= 0.5, sampling=np.asarray(voxel_size_mm, float))
    tail = np.where(others > others_max, 0.0, height * np.exp(-d / tail_mm))
    return np.maximum(soft, tail).astype(np.float32)


def prior_with_caudal_tail(soft: np.ndarray, fused: np.ndarray, others: np.ndarray, voxel_size_mm,
                           tail_mm: float, height: float = 0.5, others_max: float = 0.05,
                           reach: float = 3.0) -> np.ndarray:
    """A refinement prior that goes on below the atlas person's organ, and only below it.

    A voxel straight below the fused prior's 0.5 outline, ``d`` mm under its lowest voxel
    in that column, gets at least ``height * exp(-d / tail_mm)`` (up to ``reach * tail_mm``),
    except where another organ's fused prior exceeds ``others_max``. Arrays in RAS order
    (the last axis runs inferior to superior). For the spleen, whose size varies mostly at its
    lower pole while its dome lies against the diaphragm: a tail in every direction
    (:func:`prior_with_tail`) let the male phantom's spleen take the diaphragm (Dice 0.56-0.62).
    Arguments and result as :func:`prior_with_tail` (float32, values in [0, 1]).
    """
    inside = fused > 0.5
    vz = float(voxel_size_mm[2])
    tail = np.zeros(soft.shape, np.float32)
    for k in range(1, int(round(reach * tail_mm / vz)) + 1):
        below = np.zeros_like(inside)
        below[:, :, :-k] = inside[:, :, k:]  # k slices below an organ voxel
        tail = np.where(below, np.maximum(tail, height * np.exp(-k * vz / tail_mm)), tail)
    tail = np.where((others > others_max) | inside, 0.0, tail)
    return np.maximum(soft, tail).astype(np.float32)


def _smoothed_hu(hu: np.ndarray, voxel_size_mm) -> np.ndarray:
    """CT numbers clipped to [-200, 200] HU and smoothed by a 2 mm Gaussian (SD), float32."""
    return ndi.gaussian_filter(np.clip(hu, -200.0, 200.0).astype(np.float32), 2.0 / np.asarray(voxel_size_mm, float))


def local_mad_hu(target_hu: np.ndarray, carried_hu: np.ndarray, region: np.ndarray, voxel_size_mm) -> float:
    """Mean absolute difference (HU) of two CTs in ``region`` (clipped to [-200, 200], 2 mm smoothing)."""
    if not region.any():
        return float("inf")
    return _region_mad(_smoothed_hu(target_hu, voxel_size_mm), _smoothed_hu(carried_hu, voxel_size_mm), region)


def _region_mad(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference of two smoothed CTs in ``region`` (inf when it is empty)."""
    return float(np.mean(np.abs(a[region] - b[region]))) if region.any() else float("inf")


def register_all(registration_ct: Image, subjects, options: AtlasOptions = AtlasOptions(),
                 target_levels_z: dict | None = None) -> tuple[list, list]:
    """Register every atlas subject onto the patient: (transforms, registration summaries).

    ``target_levels_z``: the patient's L2-L4 centres (RAS+ z, mm), when known; they pin the
    affine along z (:func:`pipeline.segment.atlas.register_subject`). The subjects are
    registered side by side, one thread each, as many at a time as ITK's thread budget allows
    (its process default: the cores, or ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, which the
    workflow sets to the rule's threads): each registration is single-threaded in ITK so that it
    is reproducible to the bit (:func:`pipeline.segment.atlas.single_threaded_itk`), and
    SimpleITK runs without Python's lock.
    """
    subjects = list(subjects)
    workers = max(1, min(len(subjects), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()))
    with single_threaded_itk():
        if workers == 1:
            results = [register_subject(registration_ct, s, options, target_levels_z) for s in subjects]
        else:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda s: register_subject(registration_ct, s, options, target_levels_z),
                                        subjects))
    return [r[0] for r in results], [r[1] for r in results]


def carry_all(grid_ct: Image, subjects, transforms) -> list:
    """Every subject's organs, vertebrae (when it has them) and CT on ``grid_ct``:
    a list of (priors dict, CT array) per subject (:func:`pipeline.segment.atlas_carry.carry_subject`)."""
    return [carry_subject(grid_ct, s, tr, {**ATLAS_ORGANS, **ATLAS_VERTEBRAE}, AtlasOptions(prior_sigma_mm=0.5),
                          coarse=True) for s, tr in zip(subjects, transforms)]


def _fused(grid_ct: Image, subjects, carried, ids, fusion: FusionOptions):
    """Per structure: fused prior, and a record of each subject's ``mad_hu`` and weight."""
    vs = grid_ct.voxel_size_mm
    target = _smoothed_hu(np.asarray(grid_ct.array, np.float32), vs)  # once, not per subject and structure
    mads = []
    for pri, ct_s in carried:
        other = _smoothed_hu(ct_s, vs)
        mads.append({n: _region_mad(target, other, ndi.binary_dilation(pri[n] > 0.5, iterations=3)) for n in ids})
    fused, record = {}, {}
    for name in ids:
        m = np.array([d[name] for d in mads])
        if np.isfinite(m).any():
            w = np.where(np.isfinite(m), np.exp(-(m - np.min(m[np.isfinite(m)])) / fusion.tau_hu), 0.0)
        else:  # the structure lands outside the field of view for every subject
            w = np.ones(len(m))
        w = w / w.sum()
        fused[name] = sum(wi * c[0][name] for wi, c in zip(w, carried)).astype(np.float32)
        record[name] = {"mad_hu": {s.name: (round(float(v), 1) if np.isfinite(v) else None)
                                   for s, v in zip(subjects, m)},
                        "weights": {s.name: round(float(v), 3) for s, v in zip(subjects, w)},
                        "best_mad_hu": round(float(m.min()), 1) if np.isfinite(m).any() else None}
    return fused, record


def atlas_organs(grid_ct: Image, subjects, carried, fusion: FusionOptions = FusionOptions(),
                 registrations=(), spect: np.ndarray | None = None,
                 spect_fov: np.ndarray | None = None, lungs: np.ndarray | None = None,
                 fat_hu: float = -100.0, absent=()) -> tuple[dict, dict]:
    """Organ masks on the grid of ``grid_ct``.

    Parameters
    ----------
    grid_ct : Image
        The patient's CT (HU) on the grid where the masks are wanted (for example the
        built-in segmenter's 2 mm working grid).
    subjects : sequence of AtlasSubject
    carried : list
        Each subject carried onto ``grid_ct`` (:func:`carry_all`).
    fusion : FusionOptions
    registrations : sequence of dict
        The registration summaries, copied into the record.
    spect : numpy.ndarray, optional
        The reference SPECT on ``grid_ct``'s grid: where an organ refined on the CT is
        clearly hot, voxels far below its uptake are taken out of it
        (:func:`pipeline.segment.uptake_growth.uptake_veto`; recorded as ``spect_veto``),
        and its partial-volume rim against fat is added where the SPECT allows
        (:func:`pipeline.segment.atlas_refine.grow_partial_volume`; ``rim_added_voxels``),
        then connected tissue with its CT numbers and its uptake, the hot organs grown in
        lockstep (:func:`pipeline.segment.uptake_growth.grow_together`, ``FusionOptions.grow_together``;
        ``uptake_added_voxels``).
    spect_fov : numpy.ndarray of bool, optional
        Where ``spect`` has data: outside it the CT alone decides (no veto, no growth);
        the share of each organ inside it is recorded (``spect_veto.in_spect_field_of_view``).
    lungs : numpy.ndarray of bool, optional
        The lungs on ``grid_ct``'s grid: next to them the partial-volume rim is measured
        against lung, not fat (:func:`pipeline.segment.atlas_refine.grow_partial_volume`).
    fat_hu : float
        This patient's fat on ``grid_ct``, HU (the built-in segmenter passes the subcutaneous
        fat peak, :mod:`pipeline.segment.ct_numbers`): fat more than 50 HU above it is in no
        organ, and the partial-volume rim ends half-way to it. With the fixed -100 HU, the GE
        CT rebinned to 2.2 mm and read 10 HU high (fat at -96 HU, inside the correction's
        tolerance) grew its kidneys from 144 / 161 to 150 / 170 mL; with the two levels moved
        by the same 10 HU, 144 / 161 mL.
    absent : iterable of str
        Organs the patient does not have (nephrectomy, splenectomy: ``spectdose segment
        --absent-organ``). Their prior is dropped before the refinement, so no mask of them is
        made and their atlas place goes to the "other" class (fat, bowel, the organs that moved
        into it) instead of being taken by a hallucinated organ; their mask is empty and their
        ``method`` is ``"absent (declared)"``.

    Returns
    -------
    masks : dict
        Organ name -> bool array on ``grid_ct``; organs overlap nowhere.
    record : dict
        ``subjects`` (registration summaries); per organ ``method`` ("atlas" or
        "atlas+CT"), ``mad_hu`` per subject, ``weights``, and the intensity model.
    """
    hu = np.asarray(grid_ct.array, np.float32)
    vs = grid_ct.voxel_size_mm
    fused, organs = _fused(grid_ct, subjects, carried, ATLAS_ORGANS, fusion)
    for n, r in organs.items():
        trusted = r["best_mad_hu"] is not None and r["best_mad_hu"] < fusion.trust_mad_hu
        r["method"] = "absent (declared)" if n in absent else "atlas" if trusted else "atlas+CT"
        if n in absent:
            fused[n] = np.zeros_like(fused[n])
    present = [n for n in ATLAS_ORGANS if n not in absent]
    record = {"subjects": list(registrations), "organs": organs}

    refine = [n for n in ATLAS_ORGANS if organs[n]["method"] == "atlas+CT"]
    masks = {n: fused[n] > 0.5 for n in ATLAS_ORGANS if n not in refine}
    veto, rib_limit = {}, {}
    outside_ribs = outside_ribs_hot = np.zeros(hu.shape, bool)
    if refine and fusion.inside_ribs_organs:
        depth = rib_cage_depth_mm(hu, vs)
        outside_ribs, outside_ribs_hot = depth > fusion.rib_margin_mm, depth > fusion.rib_margin_hot_mm
        del depth
    if refine:
        soft = {n: np.clip(ndi.gaussian_filter(fused[n], fusion.refine_sigma_mm / np.asarray(vs)), 0.0, 1.0)
                ** fusion.refine_gamma for n in present}
        # "other" learns its CT numbers in the organs' neighbourhood without the tails
        total = sum(soft.values())
        other_region = (total > 0.01) & (total < 0.5)
        def others(n):  # the largest fused prior of the organs other than n
            return np.max([fused[o] for o in ATLAS_ORGANS if o != n], axis=0)

        for n in [o for o in fusion.tail_organs if o in soft] if fusion.tail_mm > 0 else ():
            soft[n] = prior_with_tail(soft[n], fused[n], others(n), vs, fusion.tail_mm, fusion.tail_height)
        for n in [o for o in fusion.caudal_tail_organs if o in soft] if fusion.caudal_tail_mm > 0 else ():
            soft[n] = prior_with_caudal_tail(soft[n], fused[n], others(n), vs, fusion.caudal_tail_mm,
                                             fusion.caudal_tail_height)
        for n in refine if spect is not None else ():
            v, organs[n]["spect_veto"] = uptake_veto(spect, fused[n], vs, valid=spect_fov,
                                                     above_surroundings=n in fusion.veto_above_surroundings,
                                                     percentile=dict(fusion.veto_percentile).get(n, 75.0))
            if v is not None:
                veto[n] = v
        # where each organ kept inside the ribs may not be: a hot organ's uptake, not the CT, decides under the ribs
        rib_limit = {n: outside_ribs_hot if n in veto else outside_ribs for n in fusion.inside_ribs_organs if n in soft}
        for n, outside in rib_limit.items():
            soft[n] = np.where(outside, 0.0, soft[n])
        # every organ competes in the refinement (a trusted one with its own prior), so neighbours stay apart
        refined, models = refine_organs(hu, vs, soft, veto=veto, other_region=other_region,
                                        max_fat_hu=fat_hu + 50.0)
        for n in refine:
            masks[n] = without_thin_appendages(refined[n], vs, fusion.appendage_radius_mm)
            organs[n]["intensity_model"] = models[n]
            organs[n]["thin_appendages_removed_voxels"] = int(refined[n].sum() - masks[n].sum())
    # no overlaps: a voxel claimed twice goes to the organ with the higher fused prior
    names = list(ATLAS_ORGANS)  # an absent organ's mask is empty: it claims nothing and touches nothing
    stack = np.stack([np.where(masks[n], fused[n] + 1e-3, 0.0) for n in names])
    owner = np.argmax(stack, axis=0)
    claimed = stack.max(axis=0) > 0
    for i, n in enumerate(names):
        masks[n] = claimed & (owner == i)
    # organs refined on the CT: add their partial-volume rim against fat; for an organ hot on
    # the SPECT not where the SPECT vetoes (without the veto the rim also grows the leaks: on the
    # male phantom's right kidney the uptake error went from -16 % to -20 %); for the others
    # (no SPECT, or not hot) with only the other organs blocking (``rim_without_spect``)
    rim_organs = [n for n in refine if n not in veto] if fusion.rim_without_spect else []
    hot_rim = dict(fusion.rim_hot_mm)
    for n in list(veto) + rim_organs:
        mu = organs[n].get("intensity_model", {}).get("median_hu")
        if mu is None:
            continue
        blocked = _blocked_for(n, masks, rib_limit.get(n))
        if n in veto:
            blocked |= veto[n] < 0.5
        before = int(masks[n].sum())
        rim = {"rim_mm": hot_rim[n]} if n in veto and n in hot_rim else {}  # else grow_partial_volume's own
        masks[n] = grow_partial_volume(masks[n], hu, vs, mu, blocked, fat_hu=fat_hu, lungs=lungs, **rim)
        organs[n]["rim_added_voxels"] = int(masks[n].sum()) - before
    # then over connected tissue with the organ's CT numbers and its uptake (the veto now from
    # the organ itself rather than from the atlas prior)
    sm = smoothed_ct(hu, vs) if (veto or fusion.split_touching_by_ct) else None  # growth and CT boundary
    if fusion.grow_together and veto:
        _grow_hot_organs_together(masks, organs, veto, sm, vs, spect, spect_fov, rib_limit, fusion=fusion)
    elif veto:  # one after the other (the comparison of ``FusionOptions.grow_together``)
        for n in veto:
            model, v = _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion)
            if v is None:
                continue
            blocked = _blocked_for(n, masks, rib_limit.get(n))
            before = int(masks[n].sum())
            masks[n] = grow_with_uptake(masks[n], hu, vs, model["median_hu"], model["sd_hu"], v, blocked,
                                        spect=spect)
            organs[n]["uptake_added_voxels"] = int(masks[n].sum()) - before
    # where two organs touch and one is hot, their common boundary at the midpoint of their uptakes
    if spect is not None and veto and fusion.split_touching_by_uptake:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if a not in veto and b not in veto:
                    continue
                lesions = dict(fusion.veto_percentile)  # the organs whose level sheds hot lesions
                masks[a], masks[b], rec = split_by_uptake(spect, masks[a], masks[b], vs, valid=spect_fov,
                                                          lesions_possible_a=lesions.get(a) == "bulk",
                                                          lesions_possible_b=lesions.get(b) == "bulk")
                if rec["used"]:
                    organs[a].setdefault("uptake_boundary", {})[b] = rec
    # where two touching organs' CT numbers differ clearly and no SPECT placed their boundary
    if fusion.split_touching_by_ct:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if b in organs[a].get("uptake_boundary", {}):
                    continue
                ma, mb = organs[a].get("intensity_model", {}), organs[b].get("intensity_model", {})
                masks[a], masks[b], rec = split_by_ct(sm, masks[a], masks[b], ma, mb, vs)
                if rec["used"]:
                    organs[a].setdefault("ct_boundary", {})[b] = rec
    return masks, record


def _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion: FusionOptions = FusionOptions()):
    """Organ ``n``'s intensity model and its veto from its own mask (not the atlas prior), 0 outside
    the SPECT's field of view (no growth on the CT alone there); ``(model, None)`` when it has none.

    This veto decides where the organ may grow by its uptake, so it measures uptake above the
    surroundings' level for every organ (``FusionOptions.grow_above_surroundings``)."""
    model = organs[n].get("intensity_model", {})
    v, _ = uptake_veto(spect, masks[n].astype(np.float32), vs, valid=spect_fov,
                       above_surroundings=n in fusion.veto_above_surroundings or fusion.grow_above_surroundings,
                       percentile=dict(fusion.veto_percentile).get(n, 75.0))
    if model.get("median_hu") is None or v is None:
        return model, None
    if spect_fov is not None:
        v = np.where(spect_fov, v, 0.0)
    return model, v


def _grow_hot_organs_together(masks, organs, veto, sm, vs, spect, spect_fov, rib_limit, max_mm: float = 20.0,
                              fusion: FusionOptions = FusionOptions()):
    """The hot organs grown in lockstep over connected tissue with their CT numbers and uptake
    (:func:`pipeline.segment.uptake_growth.grow_together`), then each without what it took from
    another hot structure's uptake basin; ``masks`` and ``organs`` (``uptake_added_voxels``) updated."""
    before = {n: masks[n].copy() for n in veto}
    allowed, closeness, static = {}, {}, {}
    for n in veto:
        model, v = _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion)
        if v is None:
            continue
        static[n] = _blocked_for(n, masks, rib_limit.get(n))
        allowed[n] = uptake_growth_allowed(sm, model["median_hu"], model["sd_hu"], v, static[n])
        closeness[n] = np.abs(sm - model["median_hu"]) / model["sd_hu"]
    grown = grow_together(masks, allowed, vs, max_mm, closeness)
    for n in allowed:
        others = static[n] | _blocked_for(n, grown)
        m = grown[n]
        if (m & ~before[n]).any():
            m = drop_other_hot_basins(spect, before[n], m, vs, others=others)
        masks[n] = m
        organs[n]["uptake_added_voxels"] = int(m.sum()) - int(before[n].sum())


def _blocked_for(name: str, masks: dict, also: np.ndarray | None = None) -> np.ndarray:
    """Where organ ``name`` may not grow: every other organ's mask, and ``also`` when given."""
    blocked = np.zeros_like(masks[name]) if also is None else also.copy()
    for o, m in masks.items():
        if o != name:
            blocked |= m
    return blocked


def atlas_vertebrae(grid_ct: Image, subjects, carried, fusion: FusionOptions = FusionOptions()):
    """L2, L3 and L4 bodies carried from the subjects that have them (ids :data:`ATLAS_VERTEBRAE`).

    Returns
    -------
    priors : dict
        Level name -> fused prior on ``grid_ct`` (empty when no subject has vertebra labels).
    record : dict
        Per level ``mad_hu``, ``weights``, ``best_mad_hu``.
    """
    have = [i for i, s in enumerate(subjects)
            if all(np.any(np.asarray(s.labels.array) == v) for v in ATLAS_VERTEBRAE.values())]
    if not have:
        return {}, {}
    return _fused(grid_ct, [subjects[i] for i in have], [carried[i] for i in have], ATLAS_VERTEBRAE, fusion)
